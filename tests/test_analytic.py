import math

import pytest
import torch

from tutorial_pkg.analytic import GaussianMixture, LinearGaussianLikelihood, point_set_classifier
from tutorial_pkg.sampling import gaussian_sampler_moments
from tutorial_pkg.schedules import cosine_schedule


def _points(gen, n=64):
    return 2.0 * torch.randn(n, 2, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("alpha_bar", [1.0, 0.6, 0.05])
def test_score_is_the_autograd_gradient_of_log_prob(mixture, gen, alpha_bar):
    x = _points(gen).requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture.log_prob(x, alpha_bar).sum(), x)
    assert torch.allclose(mixture.score(x.detach(), alpha_bar), grad, atol=1e-12)


def test_noised_mixture_is_the_convolution(mixture, gen):
    """q_t(x) computed as a noised mixture equals the mixture of noised components; and per-sample alpha_bar."""
    x = _points(gen, 8)
    ab = torch.linspace(0.1, 1.0, 8, dtype=torch.float64)
    per_sample = mixture.log_prob(x, ab)
    one_by_one = torch.stack([mixture.noised(a.item()).log_prob(x[i:i + 1])[0] for i, a in enumerate(ab)])
    assert torch.allclose(per_sample, one_by_one, atol=1e-12)


def test_log_prob_integrates_to_one(mixture):
    """A Riemann sum over a wide grid: the density is normalised."""
    g = torch.linspace(-8, 8, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.ravel(), yy.ravel()], 1)
    total = mixture.log_prob(pts, 0.5).exp().sum() * (g[1] - g[0]) ** 2
    assert total.item() == pytest.approx(1.0, abs=1e-6)


def test_class_posterior_is_bayes_rule(mixture, gen):
    x = _points(gen)
    ab = 0.3
    joint = mixture.component_log_prob(x, ab) + mixture.weights.log()
    expected = joint - torch.logsumexp(joint, 1, keepdim=True)
    assert torch.allclose(mixture.class_log_posterior(x, ab), expected, atol=1e-12)
    assert torch.allclose(mixture.class_posterior(x, ab).sum(1), torch.ones(64, dtype=torch.float64))


@pytest.mark.parametrize("alpha_bar", [0.99, 0.5, 0.02])
def test_bayes_identity_conditional_score_is_score_plus_classifier_gradient(mixture, gen, alpha_bar):
    """grad log q_t(x | k) = grad log q_t(x) + grad log p_t(k | x); chapter 3, eq. (bayes-score)."""
    x = _points(gen).requires_grad_(True)
    for k in range(mixture.K):
        (grad_cls,) = torch.autograd.grad(mixture.class_log_posterior(x, alpha_bar)[:, k].sum(), x)
        lhs = mixture.conditional_score(x.detach(), k, alpha_bar)
        assert torch.allclose(lhs, mixture.score(x.detach(), alpha_bar) + grad_cls, atol=1e-6, rtol=0)


def test_sample_has_the_mixture_moments(mixture):
    x, labels = mixture.sample(200_000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x.mean(0), mixture.mean(), atol=0.02)
    assert torch.allclose(torch.cov(x.T), mixture.covariance(), atol=0.03)
    freq = torch.bincount(labels, minlength=3).double() / 200_000
    assert torch.allclose(freq, mixture.weights, atol=0.005)


def test_eps_model_is_minus_root_one_minus_alpha_bar_times_score(mixture, gen):
    s = cosine_schedule(50)
    model = mixture.eps_model(s)
    x = _points(gen, 10)
    t = torch.arange(0, 50, 5)
    ab = s.alpha_bars[t]
    labels = torch.tensor([0, 1, 2, -1, 0, 1, 2, -1, 0, 1])
    eps = model(x, t, labels)
    for i in range(10):
        score = (mixture.score(x[i:i + 1], ab[i].item()) if labels[i] < 0
                 else mixture.conditional_score(x[i:i + 1], labels[i].item(), ab[i].item()))
        assert torch.allclose(eps[i], -(1 - ab[i]).sqrt() * score[0], atol=1e-12)
    assert torch.allclose(model(x, t, None), model(x, t, torch.full((10,), -1)))


def test_linear_gaussian_posterior_is_exact(mixture):
    """p(x0 | E) from the formulas equals prior x likelihood / evidence, pointwise."""
    lik = LinearGaussianLikelihood(mixture, h=[1.0, -0.5], b=0.3, tau=0.6)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for E in (-2.0, 0.0, 1.7):
        log_lik = -0.5 * ((E - x @ lik.h - lik.b) ** 2 / lik.tau ** 2 + math.log(2 * math.pi * lik.tau ** 2))
        expected = mixture.log_prob(x) + log_lik - lik.log_evidence(E)
        assert torch.allclose(lik.posterior(E).log_prob(x), expected, atol=1e-10)


def test_linear_gaussian_noisy_likelihood_is_bayes_rule(mixture, gen):
    """log p_t(E | x_t) = log q_t(x_t | E) + log p(E) - log q_t(x_t), two independent routes."""
    lik = LinearGaussianLikelihood(mixture, h=[0.8, 0.4], b=-0.2, tau=0.5)
    x = _points(gen, 20)
    for ab in (0.95, 0.4, 0.03):
        for E in (-1.0, 0.5):
            direct = lik.log_prob(E, x, ab)
            via_posterior = lik.posterior(E).log_prob(x, ab) + lik.log_evidence(E) - mixture.log_prob(x, ab)
            assert torch.allclose(direct, via_posterior, atol=1e-10)


def test_gaussian_recursion_reduces_to_the_ode_for_fine_ddim():
    """A deterministic DDIM run with many steps maps N(0, 1) at t = T-1 to nearly the data Gaussian."""
    s = cosine_schedule(1000)
    M, V = gaussian_sampler_moments(1.2, 0.25, s, sampler="ddim", num_steps=1000)
    assert M.item() == pytest.approx(1.2, abs=5e-3) and V.item() == pytest.approx(0.25, abs=5e-3)


@pytest.mark.parametrize("alpha_bar", [0.9, 0.3])
def test_point_set_classifier_of_two_points_is_a_logistic_curve(alpha_bar):
    # points -1 (class 0) and +1 (class 1): p_t(1 | x) = sigmoid(2 sqrt(ab) x / (1 - ab)), and the gradient of
    # log p_t(1 | x) is (1 - p_t(1 | x)) 2 sqrt(ab) / (1 - ab)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    posterior, grad = point_set_classifier(x, alpha_bar, torch.tensor([[-1.0], [1.0]]), torch.tensor([0, 1]), 1)
    a = 2 * alpha_bar ** 0.5 / (1 - alpha_bar)
    p1 = torch.sigmoid(a * x[:, 0])
    assert torch.allclose(posterior[:, 1], p1, atol=1e-12) and torch.allclose(posterior.sum(1), torch.ones(9, dtype=torch.float64))
    assert torch.allclose(grad[:, 0], (1 - p1) * a, atol=1e-12)


def test_point_set_classifier_gradient_is_the_autograd_gradient_of_its_log_posterior(gen):
    points = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    labels = torch.arange(12) % 3
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64).requires_grad_()
    target = torch.tensor([0, 1, 2, 1, 0])
    posterior, grad = point_set_classifier(x, 0.4, points, labels, target)
    # the same posterior by Bayes' rule over the points, differentiable
    log_w = torch.log_softmax(-((x[:, None] - 0.4 ** 0.5 * points) ** 2).sum(-1) / (2 * 0.6), dim=1)
    log_p = torch.stack([torch.logsumexp(log_w[:, labels == k], 1) for k in range(3)], 1)
    assert torch.allclose(posterior, log_p.exp().detach(), atol=1e-12)
    (auto,) = torch.autograd.grad(log_p.gather(1, target[:, None]).sum(), x)
    assert torch.allclose(grad, auto, atol=1e-10)


@pytest.mark.parametrize("call, match", [
    (lambda: GaussianMixture([1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, -1.0]]]), "positive definite"),
    (lambda: GaussianMixture([1.0, 1.0], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]]), "weights"),
    (lambda: GaussianMixture([-1.0], [[0.0]], [[[1.0]]]), "weights"),
    (lambda: GaussianMixture([1.0], [[float("nan")]], [[[1.0]]]), "means"),
    (lambda: GaussianMixture([1.0], [[0.0]], [[[1.0]]]).score(torch.zeros(3, 2)), "x must have shape"),
    (lambda: GaussianMixture([1.0], [[0.0]], [[[1.0]]]).score(torch.zeros(3, 1), 1.5), "alpha_bar"),
    (lambda: GaussianMixture([1.0], [[0.0]], [[[1.0]]]).conditional_score(torch.zeros(3, 1), 2), "class labels"),
    (lambda: LinearGaussianLikelihood(GaussianMixture([1.0], [[0.0]], [[[1.0]]]), [1.0], tau=0.0), "tau"),
    (lambda: point_set_classifier(torch.zeros(3, 2), 0.5, torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), 0),
     "x must have shape"),
    (lambda: point_set_classifier(torch.zeros(3, 1), 1.0, torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), 0),
     "alpha_bar"),
    (lambda: point_set_classifier(torch.zeros(3, 1), 0.5, torch.zeros(4, 1), torch.zeros(3, dtype=torch.long), 0),
     "labels"),
    (lambda: point_set_classifier(torch.zeros(3, 1), 0.5, torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), 2),
     "target"),
    (lambda: gaussian_sampler_moments(0.0, 1.0, cosine_schedule(10), gamma=3.0), "mean_u"),
    (lambda: gaussian_sampler_moments(0.0, 1.0, cosine_schedule(10), sampler="euler"), "sampler"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_a_seed_where_a_generator_belongs_is_refused_with_the_line_that_makes_one():
    mixture = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None, got int 3; make one with "
                                        r"torch.Generator\(\).manual_seed\(3\)"):
        mixture.sample(4, generator=3)
