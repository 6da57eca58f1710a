"""DDPM and DDIM: one reverse step each, the sampling loops that repeat it, and their exact Gaussian moments.

Every sampler takes a model with the book's one contract, ``eps_model(x_t, t, cond) -> eps``
(:class:`tutorial_pkg.models.EpsModel`). The samplers pass ``t`` as an ``int``, the same step for the whole
batch, so that a wrapper knows on the host which branches a step needs. Guidance wraps a model and returns
another one with the same contract (:mod:`tutorial_pkg.guidance`), so every sampler here works with every
kind of guidance.

A step is an affine map, ``x' = c_x x + c_eps eps + std z``, with numbers that depend on the step only
(:func:`ddpm_coefficients`, :func:`ddim_coefficients`). The samplers compute them once, at the door, with
every argument check; the loop holds only the step's arithmetic, draws no host sync, and watches for
divergence with one flag on the samples' device, read once at the end.

Derived in chapter 1 (``book/01_score_based_diffusion``), equations ``ddpm-step`` and ``ddim-step``;
the exact moments in chapter 8 (``book/08_what_guidance_samples``), eq. ``affine-recursion``.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
from tqdm.auto import tqdm

from . import _checks, models
from .schedules import NoiseSchedule

Tensor = torch.Tensor
Callback = Callable[[int, Tensor, Tensor], None]

__all__ = ["ddpm_step", "ddim_step", "ddpm_coefficients", "ddim_coefficients", "ddim_timesteps", "sampler_steps",
           "ddpm_sample", "ddim_sample", "gaussian_sampler_moments", "Trajectory", "VARIANCES", "SPACINGS"]

VARIANCES = ("small", "large")
SPACINGS = ("leading", "trailing")


def _check_schedule(schedule) -> NoiseSchedule:
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    return schedule


# -- one step as an affine map -------------------------------------------------------------------
def ddpm_coefficients(schedule: NoiseSchedule, t: int, variance: str = "small") -> tuple[float, float, float]:
    """The DDPM step as an affine map: x_{t-1} = c_x x_t + c_eps eps + std * noise. Eq. (ddpm-step).

    From the posterior q(x_{t-1} | x_t, x0_hat) (:meth:`NoiseSchedule.posterior_coefficients`) with
    x0_hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t): c_x = 1 / sqrt(alpha_t),
    c_eps = -beta_t / (sqrt(alpha_t) sqrt(1 - ab_t)), and std^2 = beta_tilde_t (``"small"``) or beta_t
    (``"large"``), with std = 0 at t = 0. Chapter 8 pushes a Gaussian through a sampler with the same map.
    """
    _checks.choice("variance", variance, VARIANCES)
    c_x0, c_xt, posterior_var = _check_schedule(schedule).posterior_coefficients(t)
    ab = schedule.value("alpha_bars", t)
    c_x = c_x0 / math.sqrt(ab) + c_xt
    c_eps = -c_x0 * math.sqrt((1.0 - ab) / ab)
    if t == 0:
        return c_x, c_eps, 0.0
    var = max(posterior_var, 1e-20) if variance == "small" else schedule.value("betas", t)
    return c_x, c_eps, math.sqrt(var)


def ddim_coefficients(schedule: NoiseSchedule, t: int, t_prev: int, eta: float = 0.0) -> tuple[float, float, float]:
    """The DDIM step as an affine map: x_{t_prev} = c_x x_t + c_eps eps + sigma * noise. Eq. (ddim-step).

    c_x = sqrt(ab_prev / ab_t), c_eps = sqrt(1 - ab_prev - sigma^2) - sqrt(ab_prev (1 - ab_t) / ab_t),
    sigma = eta sqrt((1 - ab_prev) / (1 - ab_t) (1 - ab_t / ab_prev)); ``t_prev = -1`` has ab_prev = 1.
    """
    ab = _check_schedule(schedule).value("alpha_bars", t)
    t_prev = _checks.integer("t_prev", t_prev, low=-1, high=t - 1)
    eta = _checks.real("eta", eta, low=0.0)
    ab_prev = schedule.value("alpha_bars", t_prev) if t_prev >= 0 else 1.0
    sigma = eta * math.sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev))
    c_x = math.sqrt(ab_prev / ab)
    c_eps = math.sqrt(max(1.0 - ab_prev - sigma ** 2, 0.0)) - math.sqrt(ab_prev * (1.0 - ab) / ab)
    return c_x, c_eps, sigma


def _check_step_inputs(eps: Tensor, x_t: Tensor, noise: Optional[Tensor], needs_noise: bool, why: str) -> None:
    _checks.tensor("x_t", x_t, floating=True)
    _checks.tensor("eps", eps, floating=True)
    _checks.same_tensor_kind("eps", eps, "x_t", x_t, dtype=False)
    if needs_noise:
        if noise is None:
            raise ValueError(f"noise must be a tensor {why}, got None")
        _checks.tensor("noise", noise, floating=True)
        _checks.same_tensor_kind("noise", noise, "x_t", x_t, dtype=False)


def ddpm_step(eps: Tensor, x_t: Tensor, t: int, schedule: NoiseSchedule, *, noise: Optional[Tensor],
              variance: str = "small") -> Tensor:
    """One ancestral step x_t -> x_{t-1} of Ho et al. (2020), Algorithm 2; eq. (ddpm-step).

    The mean is the posterior mean of q(x_{t-1} | x_t, x0_hat) with x0_hat predicted from ``eps``;
    the variance is ``"small"`` (the posterior variance beta_tilde_t) or ``"large"`` (beta_t). At
    ``t = 0`` no noise is added. With the same ``noise`` this equals diffusers'
    ``DDPMScheduler.step`` (``clip_sample=False``, ``variance_type="fixed_small"`` or ``"fixed_large"``).

    Shapes: ``eps``, ``x_t`` and ``noise`` are ``(B, ...)``; ``noise`` may be ``None`` only at t = 0.
    """
    c_x, c_eps, std = ddpm_coefficients(schedule, t, variance)
    _check_step_inputs(eps, x_t, noise, std > 0, f"for t={t} > 0")
    x_prev = c_x * x_t + c_eps * eps
    return x_prev + std * noise if std > 0 else x_prev


def ddim_step(eps: Tensor, x_t: Tensor, t: int, t_prev: int, schedule: NoiseSchedule, *, eta: float = 0.0,
              noise: Optional[Tensor] = None) -> Tensor:
    """One step x_t -> x_{t_prev} of Song, Meng & Ermon (2021), eq. (12); eq. (ddim-step) of the book.

    ``t_prev = -1`` steps to clean data (alpha_bar = 1). ``eta = 0`` is the deterministic DDIM, ``eta = 1``
    matches DDPM's "small" variance when ``t_prev = t - 1``. With the same ``noise`` this equals diffusers'
    ``DDIMScheduler.step`` (``clip_sample=False``, ``set_alpha_to_one=True``).
    """
    c_x, c_eps, sigma = ddim_coefficients(schedule, t, t_prev, eta)
    _check_step_inputs(eps, x_t, noise, sigma > 0, f"when eta > 0 (eta={eta})")
    x_prev = c_x * x_t + c_eps * eps
    return x_prev + sigma * noise if sigma > 0 else x_prev


# -- which steps a sampler visits -------------------------------------------------------------------
def ddim_timesteps(T: int, num_steps: int, spacing: str = "leading") -> list[int]:
    """The decreasing timesteps of a ``num_steps``-step DDIM run over a ``T``-step schedule.

    ``"leading"``: stride ``T // num_steps`` from 0 upwards, run downwards, diffusers'
    ``timestep_spacing="leading"`` (the first step is below T-1, so the run never starts from pure noise).
    ``"trailing"``: evenly spaced down from T-1, diffusers' ``"trailing"``, which Lin et al. (2024) recommend
    so that the first step sees the noisiest level; chapter 8.
    """
    T = _checks.integer("T", T, low=1)
    num_steps = _checks.integer("num_steps", num_steps, low=1, high=T)
    _checks.choice("spacing", spacing, SPACINGS)
    if spacing == "leading":
        stride = T // num_steps
        return [i * stride for i in range(num_steps)][::-1]
    return [int(round(T - i * T / num_steps)) - 1 for i in range(num_steps)]


def sampler_steps(schedule: NoiseSchedule, *, sampler: str, num_steps: Optional[int] = None,
                  timesteps: Optional[Sequence[int]] = None, spacing: str = "leading") -> list[tuple[int, int]]:
    """The ``(t, t_prev)`` pairs that a sampler visits, checked: the one pairing of the samplers and of
    :func:`gaussian_sampler_moments`. ``t_prev = -1`` is the clean data.

    ``"ddpm"`` visits every step (``num_steps`` and ``timesteps`` are refused: it cannot skip steps; DDIM
    with ``eta=1`` can). ``"ddim"`` takes ``timesteps`` (strictly decreasing, in 0..T-1) or ``num_steps``
    (default 50) with ``spacing``, not both.
    """
    _check_schedule(schedule)
    _checks.choice("sampler", sampler, ("ddpm", "ddim"))
    if sampler == "ddpm":
        if num_steps is not None or timesteps is not None:
            raise ValueError("ddpm visits every step of the schedule: num_steps and timesteps are for ddim "
                             f"(got num_steps={num_steps!r}, timesteps={timesteps!r}); DDIM with eta=1 skips steps")
        ts = list(range(schedule.T - 1, -1, -1))
    else:
        if num_steps is not None and timesteps is not None:
            raise ValueError(f"pass timesteps or num_steps, not both (got num_steps={num_steps} and "
                             f"{len(timesteps)} timesteps)")
        if timesteps is None:
            ts = ddim_timesteps(schedule.T, 50 if num_steps is None else num_steps, spacing)
        else:
            if isinstance(timesteps, Tensor):
                timesteps = timesteps.tolist()
            ts = [schedule.check_t(t, "timesteps") for t in timesteps]
            if not ts or any(a <= b for a, b in zip(ts, ts[1:])):
                raise ValueError(f"timesteps must be a non-empty, strictly decreasing sequence, got {ts}")
    return list(zip(ts, ts[1:] + [-1]))


# -- recording and watching a run -------------------------------------------------------------------
class Trajectory:
    """A callback that records the states of a sampling run: ``states[i]`` is x after step i.

    Pass it as ``callback=`` to a sampler. Nothing is stored unless you ask for it this way, so a
    plain sampling call keeps its memory flat in the number of steps.
    """

    def __init__(self, *, keep_x0: bool = False):
        if not isinstance(keep_x0, bool):
            raise TypeError(f"keep_x0 must be True or False, got {type(keep_x0).__name__} {keep_x0!r}")
        self.timesteps: list[int] = []
        self.states: list[Tensor] = []
        self.x0_predictions: list[Tensor] = []
        self.keep_x0 = keep_x0

    def __call__(self, t: int, x: Tensor, x0: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        self.timesteps.append(t)
        self.states.append(x.detach().cpu())
        if self.keep_x0:
            self.x0_predictions.append(x0.detach().cpu())

    def stacked(self) -> Tensor:
        """All recorded states as one tensor of shape ``(steps, B, ...)``."""
        return torch.stack(self.states)


class _Guard:
    """Watches a run without a host sync: the model's output shape (metadata), and the sum of the state after
    every step, kept on the samples' device and read once, at the end. A sum is finite exactly when no entry
    is NaN or infinite (or so large that the state has diverged anyway), so the first step with a non-finite
    sum is the first step at which the state stopped being finite."""

    def __init__(self, sampler: str, x: Tensor):
        self.sampler, self.shape = sampler, x.shape
        self.sums, self.steps = [], []

    def step(self, t: int, eps: Tensor, x_next: Tensor) -> None:
        if not isinstance(eps, Tensor) or eps.shape != self.shape:
            got = tuple(eps.shape) if isinstance(eps, Tensor) else type(eps).__name__
            raise ValueError(f"eps_model returned {got} at t={t}, expected a tensor of shape {tuple(self.shape)}")
        self.sums.append(x_next.sum())
        self.steps.append(t)

    def check(self) -> None:
        bad = ~torch.isfinite(torch.stack(self.sums))
        if bad.any().item():
            first = self.steps[int(bad.int().argmax().item())]
            raise FloatingPointError(f"{self.sampler}: the state became NaN or infinite at step t={first}; "
                                     "check the model's output and the guidance scale")


def _start(eps_model, shape, schedule, cond, generator, device, dtype, x_T, sampler: str, variance=None) -> Tensor:
    """Every check of a sampling run, at the door; returns the initial state x_T."""
    if not callable(eps_model):
        raise TypeError(f"eps_model must be callable as eps_model(x_t, t, cond), got {type(eps_model).__name__}")
    if not isinstance(shape, Sequence) or len(shape) < 1 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"shape must be a sequence of positive ints such as (B, D), got {shape!r}")
    _check_schedule(schedule)
    models.check_sampler(eps_model, sampler, variance)
    models.check_condition(eps_model, cond, shape[0])
    _checks.generator("generator", generator, device)
    if x_T is not None:
        _checks.tensor("x_T", x_T, floating=True, finite=x_T.device.type == "cpu")
        if tuple(x_T.shape) != tuple(shape):
            raise ValueError(f"x_T has shape {tuple(x_T.shape)}, but shape is {tuple(shape)}")
        if x_T.device.type != device.type or device.index not in (None, x_T.device.index):
            raise ValueError(f"x_T is on device {x_T.device}, but device is {device}")
        return x_T
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def _device(device, x_T) -> torch.device:
    if device is not None:
        return torch.device(device)
    return x_T.device if isinstance(x_T, Tensor) else torch.device("cpu")


# -- the samplers ------------------------------------------------------------------------------------
@torch.no_grad()
def ddpm_sample(eps_model: models.EpsModel, shape: Sequence[int], schedule: NoiseSchedule, *, cond=None,
                variance: str = "small", generator: Optional[torch.Generator] = None, device=None,
                dtype: torch.dtype = torch.float32, x_T: Optional[Tensor] = None,
                callback: Optional[Callback] = None, progress: bool = False) -> Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) from t = T-1 down to t = 0.

    Args:
        eps_model: ``eps_model(x_t, t, cond) -> eps``, any model or guided wrapper of the package.
        shape: ``(B, ...)``, the shape of the samples.
        schedule: the noise schedule the model was trained with.
        cond: the condition passed to the model at every step: ``None``, or a tensor of shape ``(B,)``
            or ``(B, ...)``, e.g. a ``(B,)`` tensor of energies.
        variance: ``"small"`` (beta_tilde_t) or ``"large"`` (beta_t).
        generator: a ``torch.Generator`` on ``device`` for the initial state and the step noise.
        device, dtype: where and in which precision the state lives (default: the CPU, float32).
        x_T: an initial state to start from instead of drawing one.
        callback: called as ``callback(t, x_{t-1}, x0_hat)`` after every step, e.g. a :class:`Trajectory`.
        progress: show a tqdm progress bar.

    Returns:
        The samples x_0, shape ``shape``. Raises ``FloatingPointError`` naming the first step at which the
        state became non-finite. Chapter 1, eq. (ddpm-step).
    """
    device = _device(device, x_T)
    _checks.choice("variance", variance, VARIANCES)
    x = _start(eps_model, shape, schedule, cond, generator, device, dtype, x_T, "ddpm", variance)
    steps = sampler_steps(schedule, sampler="ddpm")
    coefficients = [ddpm_coefficients(schedule, t, variance) for t, _ in steps]
    guard = _Guard("ddpm_sample", x)
    for (t, _), (c_x, c_eps, std) in tqdm(list(zip(steps, coefficients)), desc="DDPM", disable=not progress,
                                          leave=False):
        eps = eps_model(x, t, cond)
        x_next = c_x * x + c_eps * eps                                  # the posterior mean, eq. (ddpm-step)
        if std > 0:
            x_next = x_next + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_next = x_next if x_next.dtype == x.dtype else x_next.to(x.dtype)
        guard.step(t, eps, x_next)
        if callback is not None:
            callback(t, x_next, schedule.predict_x0(x, t, eps.to(x.dtype)))
        x = x_next
    guard.check()
    return x


@torch.no_grad()
def ddim_sample(eps_model: models.EpsModel, shape: Sequence[int], schedule: NoiseSchedule, *,
                num_steps: Optional[int] = None, timesteps: Optional[Sequence[int]] = None,
                spacing: str = "leading", eta: float = 0.0, cond=None, generator: Optional[torch.Generator] = None,
                device=None, dtype: torch.dtype = torch.float32, x_T: Optional[Tensor] = None,
                callback: Optional[Callback] = None, progress: bool = False) -> Tensor:
    """DDIM sampling (Song, Meng & Ermon 2021) over ``num_steps`` (default 50) of the schedule's T steps.

    ``timesteps`` gives the steps instead (strictly decreasing; not together with ``num_steps``);
    ``spacing`` is that of :func:`ddim_timesteps`. The other arguments are those of :func:`ddpm_sample`;
    ``eta`` scales the step noise (0 = deterministic). Chapter 1, eq. (ddim-step).
    """
    device = _device(device, x_T)
    eta = _checks.real("eta", eta, low=0.0)
    steps = sampler_steps(schedule, sampler="ddim", num_steps=num_steps, timesteps=timesteps, spacing=spacing)
    x = _start(eps_model, shape, schedule, cond, generator, device, dtype, x_T, "ddim")
    coefficients = [ddim_coefficients(schedule, t, t_prev, eta) for t, t_prev in steps]
    guard = _Guard("ddim_sample", x)
    for (t, _), (c_x, c_eps, sigma) in tqdm(list(zip(steps, coefficients)), desc="DDIM", disable=not progress,
                                            leave=False):
        eps = eps_model(x, t, cond)
        x_next = c_x * x + c_eps * eps                   # x0_hat moved to the level of t_prev, eq. (ddim-step)
        if sigma > 0:
            x_next = x_next + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_next = x_next if x_next.dtype == x.dtype else x_next.to(x.dtype)
        guard.step(t, eps, x_next)
        if callback is not None:
            callback(t, x_next, schedule.predict_x0(x, t, eps.to(x.dtype)))
        x = x_next
    guard.check()
    return x


# -- the exact output of a sampler for Gaussian data, eq. (affine-recursion) -------------------------------
def gaussian_sampler_moments(mean_c, var_c, schedule: NoiseSchedule, *, sampler: str = "ddpm",
                             gamma: float | Callable[[int], float] = 1.0, mean_u=None, var_u=None,
                             variance: str = "small",
                             num_steps: Optional[int] = None, timesteps=None, spacing: str = "leading",
                             eta: float = 0.0, init_mean=0.0, init_var=1.0) -> tuple[Tensor, Tensor]:
    """The exact mean and variance of a DDPM or DDIM sampler's output for Gaussian data, with CFG.

    With a conditional N(mean_c, var_c) and an unconditional N(mean_u, var_u) (per coordinate), the
    exact eps of each is affine in x_t, eps(x) = a_t x + c_t with a_t = sqrt(1 - ab) / (ab var + 1 - ab)
    and c_t = -a_t sqrt(ab) mean, and so is the guided gamma eps_c + (1 - gamma) eps_u. Every step
    x' = c_x x + c_eps eps(x) + std z then maps N(M, V) to N(A M + B, A^2 V + std^2), with
    A = c_x + c_eps a_t and B = c_eps c_t. Chapter 8, eq. (affine-recursion).

    The steps are those the samplers visit (:func:`sampler_steps`, with the same checks), and the step
    maps are theirs (:func:`ddpm_coefficients`, :func:`ddim_coefficients`). Returns (M, V) as float64
    tensors of the broadcast shape of the inputs. ``gamma = 1`` needs no unconditional model. ``gamma`` may
    also be a function ``gamma(t)`` of the package step, a number for each step (a guidance interval, or the
    per-step scale of CFG++, chapter 9b): the guided eps is still affine at every step.
    """
    as64 = lambda v: torch.as_tensor(v, dtype=torch.float64)
    per_step = callable(gamma)
    gamma = gamma if per_step else _checks.real("gamma", gamma, low=0.0)
    _checks.choice("variance", variance, VARIANCES)
    steps = sampler_steps(schedule, sampler=sampler, num_steps=num_steps, timesteps=timesteps, spacing=spacing)
    mean_c, var_c = as64(mean_c), as64(var_c)
    if (per_step or gamma != 1.0) and (mean_u is None or var_u is None):
        raise ValueError(f"gamma={'a schedule gamma(t)' if per_step else gamma} needs the unconditional mean_u "
                         "and var_u")
    mean_u = as64(mean_u) if mean_u is not None else mean_c
    var_u = as64(var_u) if var_u is not None else var_c
    for name, v in (("var_c", var_c), ("var_u", var_u)):
        if bool((v <= 0).any()):
            raise ValueError(f"{name} must be > 0")

    M = torch.zeros_like(mean_c + mean_u) + as64(init_mean)
    V = torch.zeros_like(M) + as64(init_var)
    for t, t_prev in steps:
        c_x, c_eps, std = (ddpm_coefficients(schedule, t, variance) if sampler == "ddpm"
                           else ddim_coefficients(schedule, t, t_prev, eta))
        gamma_t = _checks.real("gamma(t)", gamma(t), low=0.0) if per_step else gamma
        ab = schedule.alpha_bars[t]
        a_c = (1 - ab).sqrt() / (ab * var_c + 1 - ab)
        a_u = (1 - ab).sqrt() / (ab * var_u + 1 - ab)
        a = gamma_t * a_c + (1 - gamma_t) * a_u                               # the guided eps, a x + c
        c = -(gamma_t * a_c * mean_c + (1 - gamma_t) * a_u * mean_u) * ab.sqrt()
        A, B = c_x + c_eps * a, c_eps * c
        M, V = A * M + B, A ** 2 * V + std ** 2
    return M, V
