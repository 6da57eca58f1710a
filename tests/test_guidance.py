import pytest
import torch

from tutorial_pkg import guidance, nets, sampling
from tutorial_pkg.analytic import GaussianMixture, LinearGaussianLikelihood
from tutorial_pkg.guidance import (cfg, cfg_model, classifier_guided_eps, classifier_guided_model, convert_scale,
                                   grad_log_likelihood, shifted_mean)
from tutorial_pkg.schedules import cosine_schedule


def _grid_batch(gen, T, n_per_t=4):
    t = torch.arange(T).repeat_interleave(n_per_t)
    x = 2.0 * torch.randn(t.numel(), 2, generator=gen, dtype=torch.float64)
    return x, t


def test_cfg_endpoints_and_convention(gen):
    ec, eu = torch.randn(2, 5, 3, generator=gen)
    assert torch.allclose(cfg(ec, eu, 1.0), ec)
    assert torch.allclose(cfg(ec, eu, 0.0), eu)
    assert torch.allclose(cfg(ec, eu, 3.0), 3 * ec - 2 * eu, atol=1e-6)
    # Ho & Salimans: (1 + w) eps_c - w eps_u with w = gamma - 1
    w = convert_scale(3.0, from_="gamma", to="w")
    assert w == 2.0 and torch.allclose(cfg(ec, eu, 3.0), (1 + w) * ec - w * eu, atol=1e-6)
    # diffusers: eps_u + guidance_scale (eps_c - eps_u)
    gs = convert_scale(3.0, from_="gamma", to="guidance_scale")
    assert torch.allclose(cfg(ec, eu, 3.0), eu + gs * (ec - eu), atol=1e-6)
    assert convert_scale(2.0, from_="w", to="classifier_scale") == 3.0


def test_cfg_runs_in_float32_under_half_inputs(gen):
    ec, eu = torch.randn(2, 4, 2, generator=gen).to(torch.bfloat16)
    assert cfg(ec, eu, 2.0).dtype == torch.float32


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.5, 7.0])
def test_cfg_equals_classifier_guidance_with_s_equal_gamma_on_exact_mixtures(mixture, gen, gamma):
    """Chapter 5, eq. (cfg-equals-cg): with exact scores the two guidances are one."""
    s = cosine_schedule(40)
    x, t = _grid_batch(gen, s.T)
    k = torch.randint(0, 3, (t.numel(),), generator=gen)
    exact = mixture.eps_model(s)
    free = cfg_model(exact, gamma)(x, t, k)
    classifier = classifier_guided_model(exact, mixture.classifier(s), s, gamma)(x, t, k)
    assert torch.allclose(free, classifier, atol=1e-9)


def test_exact_classifier_with_scale_one_turns_unconditional_into_conditional_eps(mixture, gen):
    s = cosine_schedule(40)
    x, t = _grid_batch(gen, s.T)
    k = torch.randint(0, 3, (t.numel(),), generator=gen)
    exact = mixture.eps_model(s)
    guided = classifier_guided_model(exact, mixture.classifier(s), s, 1.0)(x, t, k)
    assert torch.allclose(guided, exact(x, t, k), atol=1e-9)


def test_linear_gaussian_guidance_gives_the_exact_posterior_eps(mixture, gen):
    s = cosine_schedule(40)
    lik = LinearGaussianLikelihood(mixture, h=[1.0, -0.5], b=0.2, tau=0.7)
    x, t = _grid_batch(gen, s.T)
    E = torch.randn(t.numel(), generator=gen, dtype=torch.float64)
    guided = classifier_guided_model(mixture.eps_model(s), lik.predictor(s), s, 1.0)(x, t, E)
    assert torch.allclose(guided, lik.eps_model(s)(x, t, E), atol=1e-9)


def test_taylor_shift_is_exact_for_an_exponential_tilt(gen):
    """N(x; mu, Sigma) exp(s a.x) is N(x; mu + s Sigma a, Sigma) up to a constant; chapter 4, eq. (taylor-shift)."""
    mu = torch.tensor([[0.3, -1.0]], dtype=torch.float64)
    var = torch.tensor([[0.4, 0.9]], dtype=torch.float64)      # diagonal Sigma, as in DDPM
    a = torch.tensor([1.5, -0.7], dtype=torch.float64)
    s = 2.0
    x = torch.randn(100, 2, generator=gen, dtype=torch.float64)
    g = grad_log_likelihood(lambda x, t, target: x @ a, x, torch.zeros(100, dtype=torch.long), None)
    assert torch.allclose(g, a.expand(100, 2))
    shifted = shifted_mean(mu, var, a[None], s)
    log_normal = lambda x, m: (-0.5 * (x - m) ** 2 / var).sum(1)
    difference = log_normal(x, mu) + s * (x @ a) - log_normal(x, shifted)
    assert torch.allclose(difference, difference[0].expand(100), atol=1e-10)


def test_classifier_guided_eps_formula(gen):
    eps, grad = torch.randn(2, 6, 2, generator=gen, dtype=torch.float64)
    ab = torch.rand(6, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    out = classifier_guided_eps(eps, grad, ab[:, None], 1.7)
    assert torch.allclose(out, eps - 1.7 * (1 - ab[:, None]).sqrt() * grad)


def test_mean_form_shifts_the_ddpm_mean_by_sigma_g(mixture, gen):
    """form='mean' makes a DDPM step land at mu + s Sigma_t g (eq. taylor-shift)."""
    s = cosine_schedule(40)
    exact = mixture.eps_model(s)
    clf = mixture.classifier(s)
    x = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    k = torch.randint(0, 3, (8,), generator=gen)
    for t in (39, 20, 1):
        tt = torch.full((8,), t)
        eps_hat = classifier_guided_model(exact, clf, s, 2.0, form="mean")(x, tt, k)
        mean_guided = sampling.ddpm_step(eps_hat, x, t, s, noise=torch.zeros_like(x))
        mu = sampling.ddpm_step(exact(x, tt, None), x, t, s, noise=torch.zeros_like(x))
        g = grad_log_likelihood(clf, x, tt, k)
        assert torch.allclose(mean_guided, shifted_mean(mu, s.posterior_variances[t].item(), g, 2.0), atol=1e-9)


def test_grad_log_likelihood_sums_so_each_sample_keeps_its_gradient(mixture, gen):
    s = cosine_schedule(20)
    clf = mixture.classifier(s)
    x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    t, k = torch.full((5,), 10), torch.tensor([0, 1, 2, 0, 1])
    batch = grad_log_likelihood(clf, x, t, k)
    alone = torch.cat([grad_log_likelihood(clf, x[i:i + 1], t[i:i + 1], k[i:i + 1]) for i in range(5)])
    assert torch.allclose(batch, alone, atol=1e-12)


@pytest.mark.parametrize("null", ["zero", "learned"])
def test_batched_cfg_pass_equals_two_separate_passes(null, gen):
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="energy", null=null).eval()
    x = torch.randn(16, 2, generator=gen)
    t = torch.randint(0, 50, (16,), generator=gen)
    E = torch.randn(16, generator=gen)
    calls = []
    counting = lambda x, t, c: (calls.append(x.shape[0]), net(x, t, c))[1]
    counting.null_value = net.null_value
    with torch.no_grad():
        one_pass = cfg_model(counting, 4.0)(x, t, E)
        two_passes = cfg(net(x, t, E), net(x, t, torch.full_like(E, net.null_value)), 4.0)
    assert calls == [32]
    assert torch.allclose(one_pass, two_passes, atol=1e-5)


def test_guided_models_plug_into_every_sampler(mixture):
    s = cosine_schedule(30)
    exact = mixture.eps_model(s)
    k = torch.full((100,), 1)
    for model in (cfg_model(exact, 3.0), classifier_guided_model(exact, mixture.classifier(s), s, 3.0)):
        for sample in (sampling.ddpm_sample, sampling.ddim_sample):
            kw = {"num_steps": 10} if sample is sampling.ddim_sample else {}
            x = sample(model, (100, 2), s, cond=k, generator=torch.Generator().manual_seed(0),
                       dtype=torch.float64, **kw)
            # guidance towards class 1 puts nearly all samples in its basin
            assert mixture.class_posterior(x)[:, 1].mean() > 0.95


@pytest.mark.parametrize("call, match", [
    (lambda e: cfg(e, e, float("nan")), "gamma"),
    (lambda e: cfg(e, e, -1.0), "gamma"),
    (lambda e: cfg(e, e[:, :1], 2.0), "eps_uncond has shape"),
    (lambda e: cfg(e, e.double(), 2.0).dtype, None),
    (lambda e: classifier_guided_eps(e, e, 0.5, float("inf")), "scale"),
    (lambda e: classifier_guided_eps(e, e, 1.5, 1.0), "alpha_bar_t"),
    (lambda e: shifted_mean(e, -1.0, e, 1.0), "variance"),
    (lambda e: convert_scale(1.0, from_="cfg", to="w"), "from_"),
    (lambda e: convert_scale(-3.0, from_="w", to="gamma"), "gamma"),
    (lambda e: cfg_model(lambda x, t, c: x, 2.0), "null"),
    (lambda e: cfg_model(lambda x, t, c: x, 2.0, null=0.0)(e, torch.zeros(4, dtype=torch.long), None), "cond"),
    (lambda e: grad_log_likelihood(lambda x, t, y: x, e, None, None), "log_prob must return"),
    (lambda e: classifier_guided_model(lambda x, t, c: x, object(), cosine_schedule(5), 1.0), "predictor"),
    (lambda e: classifier_guided_model(lambda x, t, c: x, lambda x, t, y: x[:, 0], cosine_schedule(5), 1.0,
                                       form="taylor"), "form"),
])
def test_bad_input_names_the_argument(call, match, gen):
    e = torch.randn(4, 2, generator=gen)
    if match is None:  # a mixed-precision pair is fine: the result is promoted
        assert call(e) == torch.float64
        return
    with pytest.raises((ValueError, TypeError), match=match):
        call(e)


# -- chapter 8: gamma(t) schedules, CFG rescale, autoguidance ------------------------------------------
def test_constant_gamma_schedule_reduces_to_cfg(mixture, gen):
    s = cosine_schedule(40)
    x, t = _grid_batch(gen, s.T)
    k = torch.randint(0, 3, (t.numel(),), generator=gen)
    exact = mixture.eps_model(s)
    constant = guidance.cfg_model(exact, lambda t: torch.full(t.shape, 3.0, dtype=torch.float64))(x, t, k)
    everywhere = guidance.cfg_model(exact, guidance.guidance_interval(3.0, 0, s.T - 1))(x, t, k)
    plain = cfg(exact(x, t, k), exact(x, t, None), 3.0)
    assert torch.allclose(constant, plain) and torch.allclose(everywhere, plain)


def test_guidance_interval_is_conditional_outside_and_cfg_inside(mixture, gen):
    s = cosine_schedule(40)
    x, t = _grid_batch(gen, s.T)
    k = torch.randint(0, 3, (t.numel(),), generator=gen)
    exact = mixture.eps_model(s)
    out = guidance.cfg_model(exact, guidance.guidance_interval(4.0, 10, 25))(x, t, k)
    inside = (t >= 10) & (t <= 25)
    assert torch.allclose(out[inside], cfg(exact(x, t, k), exact(x, t, None), 4.0)[inside])
    assert torch.allclose(out[~inside], exact(x, t, k)[~inside])


def test_rescale_with_phi_zero_is_the_identity_and_phi_one_matches_the_conditional_std(gen):
    guided, cond = torch.randn(2, 6, 5, generator=gen, dtype=torch.float64)
    guided = 3 * guided
    assert torch.equal(guidance.rescale_cfg(guided, cond, 0.0), guided)
    full = guidance.rescale_cfg(guided, cond, 1.0)
    assert torch.allclose(full.std(dim=1), cond.std(dim=1))
    # the direction of each sample's prediction is kept
    cos = torch.nn.functional.cosine_similarity(full, guided, dim=1)
    assert torch.allclose(cos, torch.ones(6, dtype=torch.float64))
    half = guidance.rescale_cfg(guided, cond, 0.5)
    assert torch.allclose(half, 0.5 * full + 0.5 * guided)


def test_cfg_model_with_rescale_zero_equals_plain_cfg(mixture, gen):
    s = cosine_schedule(20)
    x, t = _grid_batch(gen, s.T)
    k = torch.randint(0, 3, (t.numel(),), generator=gen)
    exact = mixture.eps_model(s)
    assert torch.equal(guidance.cfg_model(exact, 5.0, rescale=0.0)(x, t, k), guidance.cfg_model(exact, 5.0)(x, t, k))


def test_autoguidance_with_the_unconditional_model_as_weak_model_is_cfg(mixture, gen):
    s = cosine_schedule(20)
    x, t = _grid_batch(gen, s.T)
    k = torch.randint(0, 3, (t.numel(),), generator=gen)
    exact = mixture.eps_model(s)
    auto = guidance.autoguidance_model(exact, lambda x, t, c: exact(x, t, None), 2.5)(x, t, k)
    assert torch.allclose(auto, guidance.cfg_model(exact, 2.5)(x, t, k))
    # a weak model identical to the strong one makes any gamma the model itself
    assert torch.allclose(guidance.autoguidance_model(exact, exact, 7.0)(x, t, k), exact(x, t, k))


@pytest.mark.parametrize("call, match", [
    (lambda: guidance.guidance_interval(2.0, 10, 5), "t_high"),
    (lambda: guidance.guidance_interval(float("nan"), 0, 5), "gamma"),
    (lambda: guidance.rescale_cfg(torch.zeros(2, 2), torch.zeros(2, 2), 1.5), "phi"),
    (lambda: guidance.cfg_model(lambda x, t, c: x, 2.0, null=0.0, rescale=-0.1), "rescale"),
    (lambda: guidance.autoguidance_model(lambda x, t, c: x, None, 2.0), "weak_model"),
    (lambda: guidance.autoguidance_model(lambda x, t, c: x, lambda x, t, c: x, -2.0), "gamma"),
])
def test_chapter8_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("variance", ["small", "large"])
def test_mean_form_leaves_the_noiseless_last_step_alone_and_shifts_the_others_by_its_variance(mixture, gen, variance):
    """The mean form shifts a DDPM step by s Sigma_t g with Sigma_t the variance of the noise that step adds:
    beta_tilde_t or beta_t, and 0 at t = 0, where ddpm_coefficients adds no noise."""
    s = cosine_schedule(40)
    exact, clf = mixture.eps_model(s), mixture.classifier(s)
    x = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    k = torch.randint(0, 3, (8,), generator=gen)
    model = classifier_guided_model(exact, clf, s, 2.0, form="mean", variance=variance)
    for t in (0, 1, 20, 39):
        tt = torch.full((8,), t)
        std = sampling.ddpm_coefficients(s, t, variance)[2]
        assert (std == 0.0) == (t == 0)
        landed = sampling.ddpm_step(model(x, tt, k), x, t, s, noise=torch.zeros_like(x), variance=variance)
        mu = sampling.ddpm_step(exact(x, tt, None), x, t, s, noise=torch.zeros_like(x), variance=variance)
        g = grad_log_likelihood(clf, x, tt, k)
        assert torch.allclose(landed, shifted_mean(mu, std ** 2, g, 2.0), atol=1e-9, rtol=0)
        if t == 0:
            assert torch.equal(model(x, tt, k), exact(x, tt, None).to(model(x, tt, k).dtype))
