import math

import pytest
import torch

from tutorial_pkg import nets


def _inputs(B=8, D=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=g), torch.randint(0, 100, (B,), generator=g)


def test_unconditional_net_shape_and_determinism():
    torch.manual_seed(0)
    a = nets.MLPEpsModel(3)
    torch.manual_seed(0)
    b = nets.MLPEpsModel(3)
    x, t = _inputs(D=3)
    assert a(x, t).shape == (8, 3)
    assert torch.equal(a(x, t), b(x, t))
    assert a.null_value is None


def test_zero_null_cannot_tell_no_condition_from_energy_zero():
    """The lecture's null: E = 0 *is* the null, so 'no condition' and 'E = 0' give the same eps."""
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="energy", null="zero")
    x, t = _inputs()
    assert net.null_value == 0.0
    assert torch.equal(net(x, t, None), net(x, t, torch.zeros(8)))


def test_learned_null_is_distinct_from_energy_zero_and_masked_per_row():
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="energy", null="learned")
    with torch.no_grad():
        net.cond_embedding.null_embedding.normal_()
    x, t = _inputs()
    assert math.isnan(net.null_value)
    assert not torch.allclose(net(x, t, None), net(x, t, torch.zeros(8)))
    E = torch.tensor([0.5, float("nan")] * 4)
    mixed = net(x, t, E)
    assert torch.allclose(mixed[1::2], net(x, t, None)[1::2], atol=1e-6)
    assert torch.allclose(mixed[0::2], net(x, t, torch.full((8,), 0.5))[0::2], atol=1e-6)


def test_label_nets_use_minus_one_for_the_learned_null():
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="label", num_classes=3)
    x, t = _inputs()
    assert net.null_value == -1
    assert torch.allclose(net(x, t, None), net(x, t, torch.full((8,), -1)))
    zero = nets.MLPEpsModel(2, cond="label", num_classes=3, null="zero")
    assert zero.null_value == 0


def test_condition_changes_the_output():
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="label", num_classes=3)
    x, t = _inputs()
    assert not torch.allclose(net(x, t, torch.zeros(8, dtype=torch.long)), net(x, t, torch.ones(8, dtype=torch.long)))


def test_classifier_log_prob_is_a_log_softmax():
    torch.manual_seed(0)
    clf = nets.NoiseAwareClassifier(2, 4)
    x, t = _inputs()
    logp = torch.stack([clf.log_prob(x, t, torch.full((8,), k)) for k in range(4)], 1)
    assert torch.allclose(logp.exp().sum(1), torch.ones(8), atol=1e-5)


def test_regressor_gradient_is_residual_over_variance_times_grad_f():
    """grad log N(E; f, sigma^2) = (E - f) / sigma^2 grad f, sigma depending on t only; chapter 3."""
    torch.manual_seed(0)
    reg = nets.NoiseAwareRegressor(2, energy_shift=1.0, energy_scale=3.0)
    x, t = _inputs()
    x.requires_grad_(True)
    E = torch.linspace(-2, 2, 8)
    (g,) = torch.autograd.grad(reg.log_prob(x, t, E).sum(), x)
    f, log_sigma = reg(x, t)
    (grad_f,) = torch.autograd.grad(f.sum(), x)
    expected = ((E - f) / log_sigma.exp() ** 2)[:, None] * grad_f
    assert torch.allclose(g, expected.detach(), atol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: nets.MLPEpsModel(2, cond="spin"), "cond"),
    (lambda: nets.MLPEpsModel(2, cond="energy", null="none"), "null"),
    (lambda: nets.MLPEpsModel(2, cond="label"), "num_classes"),
    (lambda: nets.MLPEpsModel(2)(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)), r"x_t must be .* shape \(B, 2\)"),
    (lambda: nets.MLPEpsModel(2)(torch.zeros(4, 2, 1), torch.zeros(4, dtype=torch.long)), r"got shape \(4, 2, 1\)"),
    (lambda: nets.MLPEpsModel(2)(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long)), "t must be"),
    (lambda: nets.MLPEpsModel(2)(torch.zeros(4, 2), torch.zeros(4)), "t must be an int or an integer tensor"),
    (lambda: nets.MLPEpsModel(2)(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), torch.ones(4)), "cond must be None"),
    (lambda: nets.MLPEpsModel(2, cond="energy", null="zero").check_condition(torch.full((4,), float("nan"))),
     "null='zero'"),
    (lambda: nets.MLPEpsModel(2, cond="energy")(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long),
                                                torch.zeros(4, dtype=torch.long)), "float tensor"),
    (lambda: nets.MLPEpsModel(2, cond="energy")(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long),
                                                torch.zeros(3)), r"cond must have shape \(4,\)"),
    (lambda: nets.MLPEpsModel(2, cond="label", num_classes=3).check_condition(torch.full((4,), 3)), "labels must lie"),
    (lambda: nets.MLPEpsModel(2, cond="label", num_classes=3, null="zero").check_condition(torch.full((4,), -1)),
     "labels must lie"),
    (lambda: nets.NoiseAwareClassifier(2, 3).check_target(torch.full((4,), 5)), "y must hold"),
    (lambda: nets.NoiseAwareRegressor(2).check_target(torch.full((4,), float("nan"))), "E holds"),
    (lambda: nets.MLPEpsModel(2, cond="vector", cond_features=3)(torch.zeros(4, 2), 5, torch.zeros(4, 2)),
     r"cond must have shape \(4, 3\)"),
    (lambda: nets.SinusoidalEmbedding(7), "dim must be even"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_a_heteroscedastic_regressor_gradient_has_the_spread_term():
    """With sigma(x_t, t), grad log N(E; f, sigma^2) = (E - f)/sigma^2 grad f + ((E - f)^2/sigma^2 - 1) grad log sigma."""
    from tutorial_pkg import guidance

    torch.manual_seed(0)
    reg = nets.NoiseAwareRegressor(2, spread="x_t", energy_shift=1.0, energy_scale=3.0).double()
    x = torch.randn(16, 2, dtype=torch.float64, requires_grad=True)
    E = torch.randn(16, dtype=torch.float64)
    f, log_sigma = reg(x, 40)
    (grad_f,) = torch.autograd.grad(f.sum(), x, retain_graph=True)
    (grad_ls,) = torch.autograd.grad(log_sigma.sum(), x)
    r = ((E - f) / log_sigma.exp()).detach()
    by_formula = (r / log_sigma.exp().detach())[:, None] * grad_f + (r ** 2 - 1)[:, None] * grad_ls
    assert torch.allclose(guidance.grad_log_likelihood(reg, x.detach(), 40, E), by_formula, atol=1e-10)
    assert not torch.allclose(grad_ls, torch.zeros_like(grad_ls))      # the spread does depend on x_t
    t_only = nets.NoiseAwareRegressor(2, spread="t").double()
    (g_ls,) = torch.autograd.grad(t_only(x, 40)[1].sum(), x, allow_unused=True)
    assert g_ls is None                                                  # sigma(t) does not see x_t at all


def test_energy_features_default_is_fourier_with_seed_0_and_linear_embeds_e_affinely():
    torch.manual_seed(0)
    default = nets.MLPEpsModel(2, cond="energy")
    assert default.cond_embedding.energy_features == "fourier"
    expected = torch.randn(16, generator=torch.Generator().manual_seed(0))          # FourierFeatures(32), scale 1
    assert torch.equal(default.cond_embedding.fourier.freqs, expected)
    other = nets.MLPEpsModel(2, cond="energy", fourier_seed=3).cond_embedding.fourier.freqs
    assert torch.equal(other, torch.randn(16, generator=torch.Generator().manual_seed(3)))
    # a shipped Fourier network's state dict holds its frequencies and loads into the default build
    assert "cond_embedding.fourier.freqs" in default.state_dict()
    lin = nets.MLPEpsModel(2, cond="energy", energy_features="linear", energy_shift=1.0, energy_scale=2.0).double()
    emb = lin.cond_embedding
    assert not hasattr(emb, "fourier") and emb.proj.in_features == 1
    E = torch.tensor([-7.0, 0.5, 1.0, 40.0], dtype=torch.float64)
    e = (E - 1.0) / 2.0
    want = e[:, None] * emb.proj.weight[:, 0] + emb.proj.bias
    assert torch.allclose(emb(E, 4, "cpu"), want, atol=1e-12)
    # affine in E: second differences vanish however far outside any range
    out = emb(torch.tensor([100.0, 200.0, 300.0], dtype=torch.float64), 3, "cpu")
    assert torch.allclose(out[2] - 2 * out[1] + out[0], torch.zeros_like(out[0]), atol=1e-9)
    null = emb(torch.tensor([float("nan"), 0.0], dtype=torch.float64), 2, "cpu")
    assert torch.equal(null[0], emb.null_embedding) and not torch.equal(null[1], emb.null_embedding)
    x = torch.randn(4, 2, dtype=torch.float64)
    assert lin(x, 5, E).shape == (4, 2)
