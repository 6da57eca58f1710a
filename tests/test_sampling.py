import math

import pytest
import torch

from tutorial_pkg import sampling
from tutorial_pkg.analytic import GaussianMixture, gaussian_sampler_moments
from tutorial_pkg.schedules import cosine_schedule, linear_schedule

diffusers = pytest.importorskip("diffusers")


def _diffusers_schedule(cls, T, *, float64, **kwargs):
    sched = cls(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                clip_sample=False, **kwargs)
    if float64:
        # diffusers keeps alpha_bar in float32; give it our float64 table to compare the formulas exactly
        sched.alphas_cumprod = linear_schedule(T).alpha_bars
        sched.one = sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return sched


# With diffusers' own float32 alpha_bar table, 1 - alpha_bar near t = 0 carries a relative rounding error
# of about 1e-4 (alpha_bar is 0.9999 there), so the stock comparison is 1e-5 only for larger t.
CASES = [(True, (999, 500, 10, 1, 0), 1e-10), (False, (999, 700, 400, 100), 1e-5)]


@pytest.mark.parametrize("float64, steps, tol", CASES)
@pytest.mark.parametrize("variance, vtype", [("small", "fixed_small"), ("large", "fixed_large")])
def test_ddpm_step_equals_diffusers(variance, vtype, float64, steps, tol, gen):
    T = 1000
    sched = _diffusers_schedule(diffusers.DDPMScheduler, T, float64=float64, variance_type=vtype)
    ours = linear_schedule(T)
    dtype = torch.float64 if float64 else torch.float32
    x = torch.randn(32, 4, generator=gen, dtype=dtype)
    for t in steps:
        eps = torch.randn(32, 4, generator=gen, dtype=dtype)
        # diffusers draws its noise from a generator: give it one in the same state as ours
        noise = torch.randn(32, 4, generator=torch.Generator().manual_seed(t), dtype=dtype)
        ref = sched.step(eps, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        got = sampling.ddpm_step(eps, x, t, ours, noise=noise, variance=variance)
        assert torch.allclose(got, ref, rtol=tol, atol=tol), t


@pytest.mark.parametrize("float64, tol", [(True, 1e-10), (False, 1e-5)])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_equals_diffusers(eta, float64, tol, gen):
    T, n = 1000, 50
    sched = _diffusers_schedule(diffusers.DDIMScheduler, T, float64=float64, set_alpha_to_one=True)
    sched.set_timesteps(n)
    ours = linear_schedule(T)
    steps = sampling.ddim_timesteps(T, n)
    assert steps == sched.timesteps.tolist()
    dtype = torch.float64 if float64 else torch.float32
    x = torch.randn(32, 4, generator=gen, dtype=dtype)
    # the float32 comparison stops before the last steps, where float32 alpha_bar rounds (see CASES)
    pairs = list(zip(steps, steps[1:] + [-1]))
    for t, t_prev in pairs if float64 else pairs[:40]:
        eps = torch.randn(32, 4, generator=gen, dtype=dtype)
        noise = torch.randn(32, 4, generator=gen, dtype=dtype)
        ref = sched.step(eps, t, x, eta=eta, variance_noise=noise).prev_sample
        got = sampling.ddim_step(eps, x, t, t_prev, ours, eta=eta, noise=noise)
        assert torch.allclose(got, ref, rtol=tol, atol=tol), t
        x = ref


def test_ddim_with_eta_one_on_consecutive_steps_is_ddpm_small(gen):
    s = cosine_schedule(50)
    x, eps, noise = (torch.randn(8, 2, generator=gen, dtype=torch.float64) for _ in range(3))
    for t in (49, 20, 1):
        assert torch.allclose(sampling.ddim_step(eps, x, t, t - 1, s, eta=1.0, noise=noise),
                              sampling.ddpm_step(eps, x, t, s, noise=noise, variance="small"))


def test_step_coefficients_are_the_posterior_mean(gen):
    """c_x x + c_eps eps equals the posterior mean at x0_hat, eq. (ddpm-step)."""
    s = linear_schedule(100)
    x, eps = (torch.randn(8, 2, generator=gen, dtype=torch.float64) for _ in range(2))
    for t in (99, 50, 3):
        mean, _ = s.posterior_mean_variance(s.predict_x0(x, t, eps), x, t)
        c_x, c_eps, std = sampling.ddpm_coefficients(s, t)
        assert torch.allclose(c_x * x + c_eps * eps, mean)
        assert std ** 2 == pytest.approx(s.posterior_variances[t].item())


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_on_exact_mixture_eps_reproduce_its_moments(sampler, mixture):
    s = cosine_schedule(200)
    n = 20_000
    g = torch.Generator().manual_seed(0)
    model = mixture.eps_model(s)
    if sampler == "ddpm":
        x = sampling.ddpm_sample(model, (n, 2), s, generator=g, dtype=torch.float64)
    else:
        x = sampling.ddim_sample(model, (n, 2), s, num_steps=100, generator=g, dtype=torch.float64)
    cov = mixture.covariance()
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert torch.all((x.mean(0) - mixture.mean()).abs() < 5 * se_mean + 0.01)
    # standard error of a covariance entry: sqrt((S_ii S_jj + S_ij^2) / n); plus a small discretisation allowance
    se_cov = ((torch.outer(torch.diagonal(cov), torch.diagonal(cov)) + cov ** 2) / n).sqrt()
    assert torch.all((torch.cov(x.T) - cov).abs() < 5 * se_cov + 0.03)


@pytest.mark.parametrize("sampler, variance", [("ddpm", "small"), ("ddpm", "large"), ("ddim", "small")])
def test_single_gaussian_output_matches_the_affine_recursion(sampler, variance):
    s = cosine_schedule(60)
    g = torch.Generator().manual_seed(3)
    gauss = GaussianMixture([1.0], [[0.7]], [[[0.2]]])
    n = 100_000
    if sampler == "ddpm":
        x = sampling.ddpm_sample(gauss.eps_model(s), (n, 1), s, generator=g, variance=variance, dtype=torch.float64)
    else:
        x = sampling.ddim_sample(gauss.eps_model(s), (n, 1), s, num_steps=15, generator=g, dtype=torch.float64)
    M, V = gaussian_sampler_moments(0.7, 0.2, s, sampler=sampler, variance=variance, num_steps=15)
    assert abs(x.mean().item() - M.item()) < 4 * math.sqrt(V.item() / n)
    assert abs(x.var().item() - V.item()) < 4 * V.item() * math.sqrt(2 / n)


def test_same_seed_same_samples_and_trajectory(mixture):
    s = cosine_schedule(30)
    model = mixture.eps_model(s)
    a = sampling.ddpm_sample(model, (64, 2), s, generator=torch.Generator().manual_seed(7))
    traj = sampling.Trajectory(keep_x0=True)
    b = sampling.ddpm_sample(model, (64, 2), s, generator=torch.Generator().manual_seed(7), callback=traj)
    c = sampling.ddpm_sample(model, (64, 2), s, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert traj.timesteps == list(range(29, -1, -1))
    assert traj.stacked().shape == (30, 64, 2) and torch.equal(traj.states[-1], b)
    assert len(traj.x0_predictions) == 30


def test_sampler_raises_naming_the_step_when_the_state_blows_up():
    s = cosine_schedule(20)

    def bad_model(x, t, cond):
        return torch.where(t[:, None] < 12, torch.full_like(x, float("inf")), torch.zeros_like(x))

    with pytest.raises(FloatingPointError, match="t=11"):
        sampling.ddpm_sample(bad_model, (4, 2), s, generator=torch.Generator().manual_seed(0))
    with pytest.raises(FloatingPointError, match="ddim_sample"):
        sampling.ddim_sample(bad_model, (4, 2), s, num_steps=20, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("call, match", [
    (lambda s, m: sampling.ddpm_sample(m, (4, 2), s, variance="medium"), "variance"),
    (lambda s, m: sampling.ddpm_sample(m, (0, 2), s), "shape"),
    (lambda s, m: sampling.ddpm_sample("model", (4, 2), s), "eps_model"),
    (lambda s, m: sampling.ddpm_sample(m, (4, 2), s, cond=torch.zeros(5, dtype=torch.long)), "cond has batch size 5"),
    (lambda s, m: sampling.ddim_sample(m, (4, 2), s, num_steps=99), "num_steps"),
    (lambda s, m: sampling.ddim_sample(m, (4, 2), s, timesteps=[3, 5]), "strictly decreasing"),
    (lambda s, m: sampling.ddim_sample(m, (4, 2), s, timesteps=[30, 5]), "timesteps must lie"),
    (lambda s, m: sampling.ddim_sample(m, (4, 2), s, num_steps=10, eta=float("nan")), "eta"),
    (lambda s, m: sampling.ddpm_sample(m, (4, 2), s, x_T=torch.zeros(3, 2)), "x_T has shape"),
    (lambda s, m: sampling.ddpm_sample(lambda x, t, c: x[:, :1], (4, 2), s), "eps_model returned"),
    (lambda s, m: sampling.ddpm_step(torch.zeros(4, 2), torch.zeros(4, 2), 5, s, noise=None), "noise"),
    (lambda s, m: sampling.ddpm_step(torch.zeros(4, 3), torch.zeros(4, 2), 5, s, noise=None), "eps has shape"),
    (lambda s, m: sampling.ddim_step(torch.zeros(4, 2), torch.zeros(4, 2), 5, 7, s), "t_prev"),
])
def test_bad_input_names_the_argument(call, match, mixture):
    s = cosine_schedule(20)
    with pytest.raises((ValueError, TypeError), match=match):
        call(s, mixture.eps_model(s))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
@pytest.mark.parametrize("gamma", [3.0, 5.0])
def test_guided_gaussian_output_matches_the_affine_recursion_within_monte_carlo_error(sampler, gamma):
    """CFG between two Gaussians keeps every step affine: chapter 8, eq. (affine-recursion)."""
    from tutorial_pkg.guidance import autoguidance_model

    s = cosine_schedule(50)
    cond_g, uncond_g = GaussianMixture([1.0], [[0.5]], [[[0.3]]]), GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    # gamma * eps_c + (1 - gamma) * eps_u with exact Gaussian eps-models on both branches
    model = autoguidance_model(cond_g.eps_model(s), uncond_g.eps_model(s), gamma)
    n = 100_000
    g = torch.Generator().manual_seed(11)
    if sampler == "ddpm":
        x = sampling.ddpm_sample(model, (n, 1), s, generator=g, dtype=torch.float64)
    else:
        x = sampling.ddim_sample(model, (n, 1), s, num_steps=10, generator=g, dtype=torch.float64)
    M, V = gaussian_sampler_moments(0.5, 0.3, s, sampler=sampler, gamma=gamma, mean_u=0.0, var_u=1.0, num_steps=10)
    assert abs(x.mean().item() - M.item()) < 4 * math.sqrt(V.item() / n)
    assert abs(x.var().item() - V.item()) < 4 * V.item() * math.sqrt(2 / n)
