"""Tweedie's moments and guidance through x0_hat, against exact answers.

The exact side is independent of the code under test: ``GaussianMixture.posterior_moments`` (Gaussian
conditioning of each component, not the score), the posterior of a Gaussian prior under a linear-Gaussian
likelihood (written here by hand), ``LinearGaussianLikelihood`` and ``sampling.gaussian_sampler_moments``.
"""

import pytest
import torch

from tutorial_pkg import analytic, guidance, models, sampling, schedules, tweedie

S = schedules.linear_schedule(1000)
f64 = torch.float64


def mixture():
    return analytic.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, -0.5]],
                                    [[[0.3, 0.1], [0.1, 0.2]], [[0.5, -0.2], [-0.2, 0.4]]])


def points(n=6, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=f64)


def linear_gaussian():
    """A Gaussian prior, y = A x_0 + N(0, sigma_y^2 I) with three observations of two coordinates, and the
    exact posterior p(x_0 | y) by Gaussian conditioning."""
    m, Sig = torch.tensor([0.5, -0.3], dtype=f64), torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=f64)
    A = torch.tensor([[1.0, 0.5], [0.0, 1.0], [0.3, -1.0]], dtype=f64)
    sigma_y, y = 0.3, torch.tensor([1.0, -0.5, 0.2], dtype=f64)
    post_cov = torch.linalg.inv(torch.linalg.inv(Sig) + A.T @ A / sigma_y ** 2)
    post_mean = post_cov @ (torch.linalg.solve(Sig, m) + A.T @ y / sigma_y ** 2)
    prior = analytic.GaussianMixture([1.0], m[None], Sig[None])
    posterior = analytic.GaussianMixture([1.0], post_mean[None], post_cov[None])
    return prior, posterior, A, sigma_y, y


@pytest.mark.parametrize("t", [0, 50, 300, 700, 999])
def test_tweedie_mean_and_jacobian_are_the_posterior_moments_of_a_mixture(t):
    gm, x = mixture(), points()
    ab = S.value("alpha_bars", t)
    mean, cov = gm.posterior_moments(x, ab)
    eps, x0, vjp = tweedie.tweedie_vjp(gm.eps_model(S), x, t, None, S)
    torch.testing.assert_close(x0, mean, rtol=0, atol=1e-10 / ab ** 0.5)
    v = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=f64)
    # J = (sqrt(ab) / (1 - ab)) Cov[x_0 | x_t]; Cov is symmetric, so J^T v = J v
    torch.testing.assert_close(vjp(v), ab ** 0.5 / (1 - ab) * torch.einsum("bij,bj->bi", cov, v),
                               rtol=1e-7, atol=1e-9)
    x0_again, cov_tweedie = tweedie.posterior_covariance(gm.eps_model(S), x, t, None, S)
    torch.testing.assert_close(cov_tweedie, cov, rtol=1e-7, atol=1e-10 / ab)
    torch.testing.assert_close(x0_again, x0)


def test_posterior_covariance_takes_a_timestep_per_row():
    gm, x = mixture(), points(3)
    t = torch.tensor([20, 400, 900])
    _, cov = tweedie.posterior_covariance(gm.eps_model(S), x, t, None, S)
    for i in range(3):
        _, row = tweedie.posterior_covariance(gm.eps_model(S), x[i:i + 1], int(t[i]), None, S)
        torch.testing.assert_close(cov[i], row[0])


def test_the_conditional_branch_gives_the_class_posterior_moments():
    gm, x = mixture(), points()
    cond = torch.ones(6, dtype=torch.long)
    _, cov = tweedie.posterior_covariance(gm.eps_model(S), x, 500, cond, S)
    torch.testing.assert_close(cov, gm.posterior_moments(x, S.value("alpha_bars", 500), cond)[1], rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("t", [5, 200, 600, 950])
def test_mmps_is_the_exact_posterior_eps_and_dps_drops_a_sigma_term(t):
    prior, posterior, A, sigma_y, y = linear_gaussian()
    x, Y = points(), y.expand(6, 3)
    exact = posterior.eps_model(S)(x, t, None)
    mmps = tweedie.mmps_model(prior.eps_model(S), A, sigma_y, S)(x, t, Y)
    torch.testing.assert_close(mmps, exact, rtol=0, atol=1e-11)
    # DPS: eps - sqrt(1 - ab) J^T A^T (y - A x0_hat) / sigma_y^2, with the exact J and x0_hat
    ab = S.value("alpha_bars", t)
    mean, cov = prior.posterior_moments(x, ab)
    J = ab ** 0.5 / (1 - ab) * cov
    grad = torch.einsum("bji,bj->bi", J, (Y - mean @ A.T) @ A) / sigma_y ** 2
    loglik = lambda x0, y: -0.5 * ((y - x0 @ A.T) ** 2).sum(1) / sigma_y ** 2
    dps = tweedie.dps_model(prior.eps_model(S), loglik, S)(x, t, Y)
    torch.testing.assert_close(dps, prior.eps_model(S)(x, t, None) - (1 - ab) ** 0.5 * grad, rtol=1e-9, atol=1e-11)
    assert (dps - exact).abs().max() > 1e-3         # the dropped A Sigma A^T term matters at every step here


def test_mmps_sampler_moments_are_the_exact_posterior_ones_and_dps_is_biased():
    prior, posterior, A, sigma_y, y = linear_gaussian()
    loglik = lambda x0, y: -0.5 * ((y - x0 @ A.T) ** 2).sum(1) / sigma_y ** 2
    kw = dict(sampler="ddim", num_steps=20)
    M_exact, V_exact = tweedie.affine_sampler_moments(posterior.eps_model(S), S, 2, **kw)
    M_mmps, V_mmps = tweedie.affine_sampler_moments(tweedie.mmps_model(prior.eps_model(S), A, sigma_y, S), S, 2,
                                                    cond=y, **kw)
    M_dps, V_dps = tweedie.affine_sampler_moments(tweedie.dps_model(prior.eps_model(S), loglik, S), S, 2, cond=y, **kw)
    torch.testing.assert_close(M_mmps, M_exact, rtol=0, atol=1e-10)
    torch.testing.assert_close(V_mmps, V_exact, rtol=0, atol=1e-10)
    assert (M_dps - M_exact).norm() > 0.01 and (V_dps - V_exact).abs().max() > 0.01


@pytest.mark.parametrize("sampler, kw", [("ddpm", dict(variance="small")), ("ddpm", dict(variance="large")),
                                         ("ddim", dict(num_steps=25, eta=0.0)), ("ddim", dict(num_steps=25, eta=1.0))])
def test_affine_sampler_moments_match_the_diagonal_recursion(sampler, kw):
    """A diagonal Gaussian under CFG (gamma = 2): the D-dimensional recursion against chapter 8's scalar one."""
    s = schedules.linear_schedule(200)
    mc, vc, mu, vu = [1.0, -0.5], [0.3, 0.8], [0.0, 0.2], [1.0, 1.5]
    cond = analytic.GaussianMixture([1.0], [mc], [torch.diag(torch.tensor(vc, dtype=f64))]).eps_model(s)
    unc = analytic.GaussianMixture([1.0], [mu], [torch.diag(torch.tensor(vu, dtype=f64))]).eps_model(s)
    guided = lambda x, t, c: guidance.cfg(cond(x, t, None), unc(x, t, None), 2.0)
    M, V = tweedie.affine_sampler_moments(guided, s, 2, sampler=sampler, **kw)
    M1, V1 = sampling.gaussian_sampler_moments(mc, vc, s, sampler=sampler, gamma=2.0, mean_u=mu, var_u=vu, **kw)
    torch.testing.assert_close(M, M1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(V, torch.diag(V1), rtol=1e-10, atol=1e-12)


def test_affine_sampler_moments_refuse_a_model_that_is_not_affine():
    with pytest.raises(ValueError, match="not affine"):
        tweedie.affine_sampler_moments(mixture().eps_model(S), S, 2, sampler="ddim", num_steps=5)


def test_energy_guidance_with_a_linear_energy_is_the_exact_posterior():
    """V(x) = h.x + b: the band N(E*; V(x_0), tau^2) is the linear-Gaussian likelihood of analytic."""
    prior = analytic.GaussianMixture([1.0], [[0.5, -0.3]], [[[1.0, 0.6], [0.6, 0.8]]])
    h, b, tau = torch.tensor([1.5, -0.7], dtype=f64), 0.4, 0.5
    lik = analytic.LinearGaussianLikelihood(prior, h, b, tau)
    x, E = points(), torch.full((6,), 1.2, dtype=f64)
    model = tweedie.energy_guided_model(prior.eps_model(S), lambda x0: x0 @ h + b, S, tau)
    for t in (10, 400, 900):
        torch.testing.assert_close(model(x, t, E), lik.eps_model(S)(x, t, E), rtol=0, atol=1e-11)
    torch.testing.assert_close(model(x, 400, 1.2), lik.eps_model(S)(x, 400, E), rtol=0, atol=1e-11)  # a number


def _energy(x0):
    """A nonlinear energy (Müller-Brown-like: wells and a trigonometric ridge)."""
    return (x0 ** 2).sum(-1) ** 2 / 4 - 2 * x0[..., 0] + torch.sin(3 * x0[..., 1])


@pytest.mark.parametrize("covariance", [False, True])
@pytest.mark.parametrize("t", [30, 500])
def test_energy_guidance_is_the_gradient_of_the_band_through_x0_hat(covariance, t):
    """Against central finite differences of the band's log-likelihood at the exact x0_hat(x_t) (denoiser by
    Gaussian conditioning, no autograd); MMPS's variance tau^2 + grad V^T Cov grad V held fixed, as in the paper."""
    gm, x, tau, E = mixture(), points(4), 0.3, torch.full((4,), -0.5, dtype=f64)
    ab = S.value("alpha_bars", t)
    denoise = lambda x: gm.posterior_moments(x, ab)[0]
    mean, cov = gm.posterior_moments(x, ab)
    if covariance:
        xg = mean.clone().requires_grad_(True)
        (gV,) = torch.autograd.grad(_energy(xg).sum(), xg)
        var = tau ** 2 + torch.einsum("bi,bij,bj->b", gV, cov, gV)
    else:
        var = torch.full((4,), tau ** 2, dtype=f64)
    band = lambda x: -0.5 * (E - _energy(denoise(x))) ** 2 / var
    h, grad = 1e-5, torch.zeros_like(x)
    for i in range(2):
        d = torch.zeros_like(x)
        d[:, i] = h
        grad[:, i] = (band(x + d) - band(x - d)) / (2 * h)
    model = tweedie.energy_guided_model(gm.eps_model(S), _energy, S, tau, covariance=covariance)
    expected = gm.eps_model(S)(x, t, None) - (1 - ab) ** 0.5 * grad
    torch.testing.assert_close(model(x, t, E), expected, rtol=1e-6, atol=1e-7)


def test_energy_guidance_accepts_an_energy_in_another_dtype():
    gm, tau = mixture(), 0.3
    energy64 = lambda x0: _energy(x0.double())
    x = points(4).float()
    eps32 = lambda x, t, c: gm.eps_model(S)(x, t, c)
    for covariance in (False, True):
        out = tweedie.energy_guided_model(eps32, energy64, S, tau, covariance=covariance)(x, 300, torch.zeros(4))
        ref = tweedie.energy_guided_model(gm.eps_model(S), _energy, S, tau, covariance=covariance)(
            x.double(), 300, torch.zeros(4, dtype=f64))
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)


def test_counted_counts_the_backward_passes_of_guidance_through_x0_hat():
    prior, _, A, sigma_y, y = linear_gaussian()
    counted = models.Counted(prior.eps_model(S))
    x = points(5)
    tweedie.mmps_model(counted, A, sigma_y, S)(x, 300, y.expand(5, 3))
    assert (counted.calls, counted.rows, counted.backward_calls, counted.backward_rows) == (1, 5, 3, 15)  # dy = 3
    counted = models.Counted(prior.eps_model(S))
    model = tweedie.energy_guided_model(counted, _energy, S, 0.3)
    sampling.ddim_sample(model, (5, 2), S, num_steps=4, cond=torch.zeros(5), dtype=f64,
                         generator=torch.Generator().manual_seed(0))
    assert (counted.calls, counted.rows, counted.backward_calls, counted.backward_rows) == (4, 20, 4, 20)
    counted = models.Counted(prior.eps_model(S))
    sampling.ddim_sample(counted, (5, 2), S, num_steps=4, dtype=f64)          # no guidance, no backward pass
    assert (counted.rows, counted.backward_calls) == (20, 0)


def test_counted_counts_the_backward_passes_of_classifier_guidance():
    gm = mixture()
    counted = models.Counted(gm.classifier(S))
    model = guidance.classifier_guided_model(gm.eps_model(S), counted, S, 1.0)
    sampling.ddim_sample(model, (3, 2), S, num_steps=5, cond=torch.zeros(3, dtype=torch.long), dtype=f64)
    assert (counted.rows, counted.backward_calls, counted.backward_rows) == (15, 5, 15)


def test_wrappers_stack_and_pass_on_the_null_value():
    prior, _, A, sigma_y, _ = linear_gaussian()
    model = tweedie.mmps_model(models.Counted(prior.eps_model(S)), A, sigma_y, S)
    assert models.null_value(model) == -1 and "MMPSModel" in repr(model)
