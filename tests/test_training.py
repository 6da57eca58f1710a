import math
import numpy as np
import pytest
import torch

from tutorial_pkg import nets, sampling, training
from tutorial_pkg.analytic import GaussianMixture
from tutorial_pkg.schedules import cosine_schedule


@pytest.fixture(scope="module")
def two_blobs():
    gm = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [[[0.1, 0.0], [0.0, 0.1]]] * 2)
    x, y = gm.sample(4000, generator=torch.Generator().manual_seed(0))
    return gm, x.float(), y


def test_drop_condition_rate_and_null():
    cond = torch.ones(20_000)
    dropped = training.drop_condition(cond, 0.25, float("nan"), generator=torch.Generator().manual_seed(0))
    assert abs(torch.isnan(dropped).float().mean().item() - 0.25) < 0.01
    assert torch.equal(training.drop_condition(cond, 0.0, 0.0), cond)


def test_training_is_seeded_and_learns_the_exact_conditional_eps(two_blobs):
    """A smoke test against the exact answer: the trained eps is close to the mixture's exact eps."""
    gm, x, y = two_blobs
    s = cosine_schedule(50)

    def run():
        torch.manual_seed(0)
        net = nets.MLPEpsModel(2, cond="label", num_classes=2)
        return training.train_eps_model(net, x, s, cond=y, p_uncond=0.2, steps=600, progress=False)

    a, b = run(), run()
    np.testing.assert_array_equal(a.losses, b.losses)
    assert a.losses.shape == (600,) and a.losses[-100:].mean() < 0.7 * a.losses[:20].mean()
    xs, ts = 1.5 * torch.randn(512, 2), torch.randint(5, 50, (512,))
    exact = gm.eps_model(s)
    with torch.no_grad():
        for k in (None, torch.zeros(512, dtype=torch.long), torch.ones(512, dtype=torch.long)):
            err = (a.model(xs, ts, k) - exact(xs, ts, k)).pow(2).sum(1).mean()
            base = exact(xs, ts, k).pow(2).sum(1).mean()
            assert err < 0.15 * base


def test_ema_returns_an_averaged_copy(two_blobs):
    _, x, y = two_blobs
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="label", num_classes=2)
    res = training.train_eps_model(net, x, cosine_schedule(20), cond=y, steps=50, ema_decay=0.9, progress=False)
    assert res.model is not net
    assert not torch.equal(res.model.embed[0].weight, net.embed[0].weight)


def test_noise_aware_classifier_learns_the_exact_posterior(two_blobs):
    gm, x, y = two_blobs
    s = cosine_schedule(50)
    torch.manual_seed(0)
    clf = nets.NoiseAwareClassifier(2, 2)
    res = training.train_predictor(clf, x, y, s, steps=400, progress=False)
    xs, ts = 2 * torch.randn(512, 2), torch.randint(0, 50, (512,))
    ab = s.alpha_bars[ts]
    with torch.no_grad():
        learned = torch.softmax(res.model(xs, ts), 1)
    exact = gm.class_posterior(xs.double(), ab).float()
    assert (learned - exact).abs().mean() < 0.05


def test_gaussian_regressor_learns_a_linear_energy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 2, generator=g)
    E = x @ torch.tensor([1.0, -2.0])
    s = cosine_schedule(50)
    torch.manual_seed(0)
    reg = nets.NoiseAwareRegressor(2)
    res = training.train_predictor(reg, x, E, s, steps=600, progress=False)
    with torch.no_grad():
        f, log_sigma = res.model(x[:500], torch.zeros(500, dtype=torch.long))
    assert (f - E[:500]).abs().mean() < 0.25
    assert res.losses[-50:].mean() < res.losses[:20].mean()


def test_a_regressor_trains_through_a_loss_written_by_hand():
    """``loss=`` replaces -log_prob: the Gaussian NLL written out trains the same network as the default (the same
    formula, the same draws), and another loss trains another network."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 2, generator=g)
    E = x @ torch.tensor([1.0, -2.0])
    s = cosine_schedule(50)

    def train(loss=None):
        torch.manual_seed(0)
        return training.train_predictor(nets.NoiseAwareRegressor(2), x, E, s, steps=50, progress=False, loss=loss).model

    nll = lambda f, log_sigma, E: 0.5 * ((E - f) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)
    default, by_hand = train(), train(nll)
    for a, b in zip(default.parameters(), by_hand.parameters()):
        assert torch.allclose(a, b, atol=1e-4)
    other = train(lambda f, log_sigma, E: (E - f) ** 2)
    assert any(not torch.allclose(a, b, atol=1e-4) for a, b in zip(default.parameters(), other.parameters()))
    with pytest.raises(TypeError, match="loss"):
        training.train_predictor(nets.NoiseAwareRegressor(2), x, E, s, steps=1, progress=False, loss="nll")


@pytest.mark.parametrize("kwargs, match", [
    ({"p_uncond": 1.5}, "p_uncond"),
    ({"p_uncond": float("nan")}, "p_uncond"),
    ({"steps": 0}, "steps"),
    ({"lr": -1.0}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"lr_decay": "linear"}, "lr_decay"),
    ({"cond": torch.zeros(3, dtype=torch.long)}, "cond must have shape"),
])
def test_bad_input_names_the_argument(kwargs, match):
    net = nets.MLPEpsModel(2, cond="label", num_classes=2)
    args = dict(cond=torch.zeros(10, dtype=torch.long), steps=1, progress=False)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        training.train_eps_model(net, torch.zeros(10, 2), cosine_schedule(10), **args)


def test_dropout_without_a_condition_is_refused():
    with pytest.raises(ValueError, match="p_uncond"):
        training.train_eps_model(nets.MLPEpsModel(2), torch.zeros(10, 2), cosine_schedule(10), p_uncond=0.1,
                                 steps=1, progress=False)
