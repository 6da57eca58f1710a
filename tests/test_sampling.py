import math
import weakref

import pytest
import torch

from tutorial_pkg import sampling
from tutorial_pkg.analytic import GaussianMixture
from tutorial_pkg.sampling import gaussian_sampler_moments
from tutorial_pkg.guidance import cfg_model
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
    M, V = gaussian_sampler_moments(0.7, 0.2, s, sampler=sampler, variance=variance,
                                    num_steps=15 if sampler == "ddim" else None)
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
        return torch.full_like(x, float("inf")) if t < 12 else torch.zeros_like(x)   # the samplers pass an int t

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
    M, V = gaussian_sampler_moments(0.5, 0.3, s, sampler=sampler, gamma=gamma, mean_u=0.0, var_u=1.0,
                                    num_steps=10 if sampler == "ddim" else None)
    assert abs(x.mean().item() - M.item()) < 4 * math.sqrt(V.item() / n)
    assert abs(x.var().item() - V.item()) < 4 * V.item() * math.sqrt(2 / n)


# -- hardening: a non-finite state names its step, memory stays flat in T, the same seed gives the same run --
def _blows_up_at(t_bad, value=float("inf"), base=None):
    """An eps-model that returns ``value`` at step ``t_bad`` only (and ``base``'s eps, or 0, elsewhere)."""
    def model(x, t, cond):
        eps = base(x, t, cond) if base is not None else torch.zeros_like(x)
        hit = torch.as_tensor(t == t_bad).reshape(-1, *[1] * (x.ndim - 1))   # an int t, or a (B,) tensor under CFG
        return torch.where(hit, torch.full_like(eps, value), eps)
    model.null_value = -1
    return model


@pytest.mark.parametrize("sampler, kwargs", [("ddpm", {}), ("ddim", {"num_steps": 5}),
                                             ("ddim", {"num_steps": 5, "eta": 0.5})])
def test_a_single_infinite_step_is_named(sampler, kwargs):
    s = cosine_schedule(20)   # DDIM with 5 steps visits 16, 12, 8, 4, 0
    sample = sampling.ddpm_sample if sampler == "ddpm" else sampling.ddim_sample
    with pytest.raises(FloatingPointError, match=rf"{sampler}_sample: .* at step t=8;"):
        sample(_blows_up_at(8), (4, 2), s, generator=torch.Generator().manual_seed(0), **kwargs)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_nan_inside_a_guided_model_is_named(sampler, mixture):
    """NaN from the network inside cfg_model: the guided eps is NaN, and the sampler names the step."""
    s = cosine_schedule(20)
    guided = cfg_model(_blows_up_at(12, float("nan"), base=mixture.eps_model(s)), 3.0)
    sample = sampling.ddpm_sample if sampler == "ddpm" else sampling.ddim_sample
    kwargs = {"num_steps": 5} if sampler == "ddim" else {}
    with pytest.raises(FloatingPointError, match=r"at step t=12;"):
        sample(guided, (4, 2), s, cond=torch.ones(4, dtype=torch.long), generator=torch.Generator().manual_seed(0),
               **kwargs)


class _LiveTensorBytes(torch.overrides.TorchFunctionMode):
    """The bytes held by the tensors that torch calls return while the mode is on, and their peak.

    Each new storage is counted once, until it is freed (a view keeps its storage, and so its bytes, alive):
    a portable stand-in for an allocator's statistics, which torch keeps for CUDA but not for the CPU.
    """

    def __init__(self):
        super().__init__()
        self.now = self.peak = 0
        self._held = set()

    def _free(self, key, nbytes):
        self._held.discard(key)
        self.now -= nbytes

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(value, torch.Tensor):
                storage = value.untyped_storage()
                if id(storage) not in self._held and storage.nbytes():
                    self._held.add(id(storage))
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(storage, self._free, id(storage), storage.nbytes())
        return out


def _peak_bytes(sample, *args, **kwargs):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # the states are small: a second thread only adds waiting on a busy machine
    try:
        with _LiveTensorBytes() as live:
            sample(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)
    return live.peak


def test_sampling_memory_is_flat_in_the_number_of_steps_and_a_trajectory_keeps_every_state(mixture):
    """Without a callback a sampler holds a few states, whatever T; a Trajectory holds all T of them."""
    n = 500
    state = n * 2 * 4                                            # one float32 state of shape (n, 2), in bytes
    schedule = {T: cosine_schedule(T) for T in (50, 400)}
    model = {T: mixture.eps_model(schedule[T]) for T in (50, 400)}
    g = lambda: torch.Generator().manual_seed(0)
    ddpm = {T: _peak_bytes(sampling.ddpm_sample, model[T], (n, 2), schedule[T], generator=g()) for T in (50, 400)}
    ddim = {k: _peak_bytes(sampling.ddim_sample, model[400], (n, 2), schedule[400], num_steps=k, eta=1.0,
                           generator=g()) for k in (25, 200)}
    assert ddpm[400] < 1.5 * ddpm[50] + 64 * 1024, ddpm
    assert ddim[200] < 1.5 * ddim[25] + 64 * 1024, ddim
    traj = sampling.Trajectory()
    with_traj = _peak_bytes(sampling.ddpm_sample, model[400], (n, 2), schedule[400], generator=g(), callback=traj)
    assert len(traj.states) == 400 and len({s.data_ptr() for s in traj.states}) == 400
    assert with_traj - ddpm[400] >= 0.9 * 400 * state, (with_traj, ddpm[400])


def test_same_seed_same_ddim_samples_with_step_noise(mixture):
    s = cosine_schedule(40)
    guided = cfg_model(mixture.eps_model(s), 3.0)
    cond = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(1))
    run = lambda seed: sampling.ddim_sample(guided, (64, 2), s, num_steps=10, eta=0.7, cond=cond,
                                            generator=torch.Generator().manual_seed(seed))
    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b) and not torch.equal(a, c)
