"""Tweedie's moments and guidance through x0_hat, against exact answers.

The exact side is independent of the code under test: ``GaussianMixture.posterior_moments`` (Gaussian
conditioning of each component, not the score), the posterior of a Gaussian prior under a linear-Gaussian
likelihood (written here by hand), ``LinearGaussianLikelihood`` and ``sampling.gaussian_sampler_moments``.
The ladder's rungs (PiGDM, TMPD) are also compared with azula's implementations where azula is installed
(it is no dependency of the package: those tests skip without it).
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
    assert models.null_value(model) is None and "MMPSModel" in repr(model)
    conditional = tweedie.mmps_model(models.Counted(prior.eps_model(S)), A, sigma_y, S, model_cond=True)
    assert models.null_value(conditional) == -1


def test_a_guidance_interval_skips_the_backward_pass_outside_it():
    gm = mixture()
    counted = models.Counted(gm.eps_model(S))
    interval = guidance.guidance_interval(1.0, 0, 400, outside=0.0)
    model = tweedie.energy_guided_model(counted, _energy, S, 0.3, scale=interval)
    x, E = points(4), torch.zeros(4, dtype=f64)
    torch.testing.assert_close(model(x, 700, E), gm.eps_model(S)(x, 700, None))
    torch.testing.assert_close(model(x, 300, E), tweedie.energy_guided_model(gm.eps_model(S), _energy, S, 0.3)(x, 300, E))
    assert (counted.calls, counted.backward_calls) == (2, 1)
    per_row = model(x, torch.tensor([700, 300, 700, 300]), E)      # a tensor t: a scale per row
    torch.testing.assert_close(per_row[1::2], model(x, 300, E)[1::2])
    torch.testing.assert_close(per_row[::2], gm.eps_model(S)(x, 700, None)[::2])


# The ladder of covariance closures, C_t = sigma_y^2 I + A Sigma_t A^T: PiGDM (Sigma_t = (1 - ab_t) I), TMPD (the
# row sums of A Sigma_t A^T on the diagonal), MMPS (all of it). Three Gaussian priors, each with the exact
# posterior by Gaussian conditioning, and the rungs that are exact for it:
#   correlated: a full prior covariance and three non-orthogonal rows: MMPS only;
#   unit:       prior covariance I, so Cov[x_0 | x_t] = (1 - ab_t) I exactly: PiGDM (and MMPS), not TMPD,
#               whose row sums add the off-diagonal A A^T;
#   diagonal:   a diagonal prior covariance other than I and a diagonal A (rows on disjoint coordinates), so
#               A Sigma_t A^T is diagonal at every t: TMPD (and MMPS), not PiGDM.
RUNGS = {"pigdm": tweedie.pigdm_model, "tmpd": tweedie.tmpd_model, "mmps": tweedie.mmps_model}
LADDER = {"correlated": ([[1.0, 0.6], [0.6, 0.8]], [[1.0, 0.5], [0.0, 1.0], [0.3, -1.0]], [1.0, -0.5, 0.2], {"mmps"}),
          "unit": ([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.5], [0.0, 1.0], [0.3, -1.0]], [1.0, -0.5, 0.2], {"pigdm", "mmps"}),
          "diagonal": ([[1.0, 0.0], [0.0, 0.3]], [[2.0, 0.0], [0.0, -1.5]], [1.0, -0.5], {"tmpd", "mmps"})}


def ladder_case(name):
    """(prior, exact posterior, A, sigma_y, y, the rungs exact here) for a case of LADDER."""
    Sig, A, y, exact = LADDER[name]
    m, Sig, A, y, sigma_y = torch.tensor([0.5, -0.3], dtype=f64), torch.tensor(Sig, dtype=f64), \
        torch.tensor(A, dtype=f64), torch.tensor(y, dtype=f64), 0.3
    post_cov = torch.linalg.inv(torch.linalg.inv(Sig) + A.T @ A / sigma_y ** 2)
    post_mean = post_cov @ (torch.linalg.solve(Sig, m) + A.T @ y / sigma_y ** 2)
    return (analytic.GaussianMixture([1.0], m[None], Sig[None]),
            analytic.GaussianMixture([1.0], post_mean[None], post_cov[None]), A, sigma_y, y, exact)


@pytest.mark.parametrize("case", list(LADDER))
@pytest.mark.parametrize("t", [5, 50, 300, 700, 950])
def test_each_rung_is_the_exact_posterior_eps_where_its_closure_holds(case, t):
    prior, posterior, A, sigma_y, y, exact_rungs = ladder_case(case)
    x, Y = points(), y.expand(6, -1)
    exact = posterior.eps_model(S)(x, t, None)
    for rung, make in RUNGS.items():
        error = (make(prior.eps_model(S), A, sigma_y, S)(x, t, Y) - exact).abs().max()
        if rung in exact_rungs:
            assert error < 1e-11, (rung, error)
        elif t >= 50:                   # near t = 0, Sigma_t ~ 0 and every closure nearly agrees
            assert error > 1e-3, (rung, error)


@pytest.mark.parametrize("case, rung", [("unit", "pigdm"), ("diagonal", "tmpd")])
def test_an_exact_rung_gives_the_exact_posterior_sampler_moments(case, rung):
    prior, posterior, A, sigma_y, y, _ = ladder_case(case)
    kw = dict(sampler="ddim", num_steps=20)
    M_exact, V_exact = tweedie.affine_sampler_moments(posterior.eps_model(S), S, 2, **kw)
    M, V = tweedie.affine_sampler_moments(RUNGS[rung](prior.eps_model(S), A, sigma_y, S), S, 2, cond=y, **kw)
    torch.testing.assert_close(M, M_exact, rtol=0, atol=1e-10)
    torch.testing.assert_close(V, V_exact, rtol=0, atol=1e-10)


def test_pigdm_and_tmpd_take_a_linear_callable_as_its_matrix():
    gm, A, Y = mixture(), torch.tensor([[1.0, 0.5], [0.3, -1.0]], dtype=f64), points(6, seed=2)
    for make in (tweedie.pigdm_model, tweedie.tmpd_model):
        torch.testing.assert_close(make(gm.eps_model(S), lambda x0: x0 @ A.T, 0.2, S)(points(), 400, Y),
                                   make(gm.eps_model(S), A, 0.2, S)(points(), 400, Y), rtol=1e-12, atol=1e-12)


def test_tmpd_is_dps_when_the_rows_of_a_sum_to_zero():
    """The row sums A Sigma_t A^T 1 vanish when A^T 1 = 0, whatever Sigma_t: TMPD's C_t is sigma_y^2 I, DPS's."""
    gm, A, sigma_y = mixture(), torch.tensor([[1.0, 0.5], [-1.0, -0.5]], dtype=f64), 0.3
    x, Y = points(), points(6, seed=3)
    loglik = lambda x0, y: -0.5 * ((y - x0 @ A.T) ** 2).sum(1) / sigma_y ** 2
    for t in (100, 600):
        torch.testing.assert_close(tweedie.tmpd_model(gm.eps_model(S), A, sigma_y, S)(x, t, Y),
                                   tweedie.dps_model(gm.eps_model(S), loglik, S)(x, t, Y), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("t", [40, 300, 800])
def test_tmpd_is_its_formula_with_the_exact_moments_of_a_mixture_and_clips_negative_row_sums(t):
    """Against Gaussian conditioning of the mixture (no autograd): eps - sqrt(1 - ab) J^T A^T (r / c), with
    J = (sqrt(ab) / (1 - ab)) Cov[x_0 | x_t] and c = sigma_y^2 + max(A Cov A^T 1, 0). With these rows of A some
    row sums are negative at every t here, where an unclipped c could vanish or change sign."""
    gm, x = mixture(), points()
    A, sigma_y = torch.tensor([[1.0, 0.5], [0.0, 1.0], [0.3, -1.0]], dtype=f64), 0.3
    Y = points(6, seed=4) @ A.T
    ab = S.value("alpha_bars", t)
    mean, cov = gm.posterior_moments(x, ab)
    row_sums = torch.einsum("ij,bjk,k->bi", A, cov, A.sum(0))
    assert (row_sums < 0).any() and (row_sums > 0).any()
    c = sigma_y ** 2 + row_sums.clamp(min=0)
    grad = ab ** 0.5 / (1 - ab) * torch.einsum("bij,bj->bi", cov, ((Y - mean @ A.T) / c) @ A)
    expected = gm.eps_model(S)(x, t, None) - (1 - ab) ** 0.5 * grad
    torch.testing.assert_close(tweedie.tmpd_model(gm.eps_model(S), A, sigma_y, S)(x, t, Y), expected,
                               rtol=1e-9, atol=1e-10)


def test_the_rungs_cost_one_one_two_and_dy_backward_passes():
    prior, _, A, sigma_y, y, _ = ladder_case("correlated")          # dy = 3
    loglik = lambda x0, y: -0.5 * ((y - x0 @ A.T) ** 2).sum(1) / sigma_y ** 2
    rungs = {"dps": lambda m: tweedie.dps_model(m, loglik, S), **{k: (lambda m, f=f: f(m, A, sigma_y, S))
                                                                  for k, f in RUNGS.items()}}
    cost = {}
    for name, make in rungs.items():
        counted = models.Counted(prior.eps_model(S))
        make(counted)(points(5), 300, y.expand(5, 3))
        assert (counted.calls, counted.rows) == (1, 5)
        cost[name] = counted.backward_calls
    assert cost == {"dps": 1, "pigdm": 1, "tmpd": 2, "mmps": 3}, cost


def test_the_new_rungs_stack_and_pass_on_the_null_value():
    prior, _, A, sigma_y, _, _ = ladder_case("correlated")
    for make, name in ((tweedie.pigdm_model, "PiGDMModel"), (tweedie.tmpd_model, "TMPDModel")):
        model = make(models.Counted(prior.eps_model(S)), A, sigma_y, S)
        assert models.null_value(model) is None and repr(model).startswith(name)
        assert models.null_value(make(prior.eps_model(S), A, sigma_y, S, model_cond=True)) == -1


# Agreement with azula (0.11), where it is installed: its guided denoisers around the same exact mixture
# denoiser, its schedule alpha_t = sqrt(ab_t), sigma_t = sqrt(1 - ab_t) read off S at integer t.
def _azula():
    azula = pytest.importorskip("azula")
    import azula.denoise, azula.guidance, azula.linalg.covariance, azula.noise

    class Schedule(azula.noise.Schedule):
        def __call__(self, t):
            ab = S.alpha_bars.to(f64)[torch.as_tensor(t).long()]
            return ab.sqrt(), (1 - ab).sqrt()

    class Denoiser(azula.denoise.Denoiser):
        def __init__(self, eps_model):
            super().__init__()
            self.eps_model, self.schedule = eps_model, Schedule()

        def forward(self, x_t, t, **kwargs):
            t = int(t)
            return azula.denoise.DiracPosterior(mean=S.predict_x0(x_t, t, self.eps_model(x_t, t, None)))

    return azula, Denoiser


def _azula_eps(q, x, t):
    ab = S.value("alpha_bars", t)
    return (x - ab ** 0.5 * q.mean) / (1 - ab) ** 0.5


@pytest.mark.parametrize("t", [40, 300, 800])
def test_tmpd_and_mmps_agree_with_azula_on_an_exact_mixture(t):
    azula, Denoiser = _azula()
    gm, x = mixture(), points()
    A, sigma_y = torch.tensor([[1.0, 0.5], [0.0, 1.0], [0.3, 1.0]], dtype=f64), 0.3
    Y = points(6, seed=4) @ A.T
    observe = lambda x0: x0 @ A.T
    q = azula.guidance.TMPDenoiser(Denoiser(gm.eps_model(S)), Y, observe, sigma_y ** 2)(x, torch.tensor(float(t)))
    ours = tweedie.tmpd_model(gm.eps_model(S), A, sigma_y, S)
    torch.testing.assert_close(ours(x, t, Y), _azula_eps(q, x, t), rtol=1e-10, atol=1e-10)
    # azula does not clip the row sums at 0: check that none was clipped here, so the comparison is of the formula
    _, cov = gm.posterior_moments(x, S.value("alpha_bars", t))
    assert (torch.einsum("ij,bjk,k->bi", A, cov, A.sum(0)) > 0).all()
    cov_y = azula.linalg.covariance.IsotropicCovariance(torch.tensor(sigma_y ** 2, dtype=f64))
    q = azula.guidance.MMPSDenoiser(Denoiser(gm.eps_model(S)), Y, observe, cov_y, solver="cg", iterations=3)(
        x, torch.tensor(float(t)))                                  # CG with dy = 3 iterations solves C exactly
    torch.testing.assert_close(tweedie.mmps_model(gm.eps_model(S), A, sigma_y, S)(x, t, Y), _azula_eps(q, x, t),
                               rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("t, s", [(300, 250), (800, 700)])
def test_pigdm_agrees_with_azulas_noiseless_pgdm_ddim_step(t, s):
    """azula's PGDMSampler is the paper's noiseless DDIM algorithm: x_s = DDIM(x_t) + sqrt(ab_s ab_t) J^T A^+ (y -
    A x0_hat). With sigma_y -> 0, PiGDM's C_t^{-1} A = A^{+T} / (1 - ab_t), so one DDIM step of pigdm_model is
    azula's step at scale = sqrt(ab_s ab_t) (1 - ab_t) / (-c_eps sqrt(1 - ab_t)), c_eps DDIM's eps coefficient."""
    azula, Denoiser = _azula()
    gm, x = mixture(), points()
    A = torch.tensor([[1.0, 0.5]], dtype=f64)
    Y = points(6, seed=5) @ A.T
    sampler = azula.guidance.PGDMSampler(Denoiser(gm.eps_model(S)), Y, lambda x0: x0 @ A.T,
                                         lambda y: y @ torch.linalg.pinv(A).T)
    expected = sampler.step(x, torch.tensor(float(t)), torch.tensor(float(s)))
    c_x, c_eps, _ = sampling.ddim_coefficients(S, t, s, 0.0)
    ab_t, ab_s = S.value("alpha_bars", t), S.value("alpha_bars", s)
    scale = (ab_s * ab_t) ** 0.5 * (1 - ab_t) ** 0.5 / -c_eps
    model = tweedie.pigdm_model(gm.eps_model(S), A, 1e-7, S, scale=scale)
    torch.testing.assert_close(c_x * x + c_eps * model(x, t, Y), expected, rtol=1e-9, atol=1e-10)
