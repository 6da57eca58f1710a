"""DDPM and DDIM: one reverse step each, and the sampling loops that repeat it.

Every sampler takes a model with the book's one contract, ``eps_model(x_t, t, cond) -> eps``, where
``t`` is a long tensor of shape ``(B,)`` and ``cond`` is whatever the model understands (``None``
for an unconditional call). Guidance wraps a model and returns another one with the same contract
(:mod:`tutorial_pkg.guidance`), so every sampler here works with every kind of guidance.

Derived in chapter 1 (``book/01_score_based_diffusion``), equations ``ddpm-step`` and ``ddim-step``.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from tqdm.auto import tqdm

from . import _checks
from .schedules import NoiseSchedule

Tensor = torch.Tensor
EpsModel = Callable[[Tensor, Tensor, object], Tensor]
Callback = Callable[[int, Tensor, Tensor], None]

__all__ = ["ddpm_step", "ddim_step", "ddpm_coefficients", "ddim_coefficients", "ddim_timesteps", "ddpm_sample", "ddim_sample", "Trajectory",
           "VARIANCES"]

VARIANCES = ("small", "large")


def _coefs(schedule: NoiseSchedule, t: int, t_prev: int) -> tuple[float, float]:
    """(alpha_bar_t, alpha_bar_{t_prev}) as Python floats; t_prev = -1 is the clean data (ab = 1)."""
    ab = schedule.alpha_bars[t].item()
    ab_prev = schedule.alpha_bars[t_prev].item() if t_prev >= 0 else 1.0
    return ab, ab_prev


def _check_schedule(schedule) -> NoiseSchedule:
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    return schedule


def _check_step_inputs(eps: Tensor, x_t: Tensor) -> None:
    _checks.tensor("x_t", x_t, floating=True)
    _checks.tensor("eps", eps, floating=True)
    _checks.same_tensor_kind("eps", eps, "x_t", x_t, dtype=False)


def ddpm_step(eps: Tensor, x_t: Tensor, t: int, schedule: NoiseSchedule, *, noise: Optional[Tensor],
              variance: str = "small") -> Tensor:
    """One ancestral step x_t -> x_{t-1} of Ho et al. (2020), Algorithm 2; eq. (ddpm-step).

    The mean is the posterior mean of q(x_{t-1} | x_t, x0_hat) with x0_hat predicted from ``eps``;
    the variance is ``"small"`` (the posterior variance beta_tilde_t) or ``"large"`` (beta_t). At
    ``t = 0`` no noise is added. With the same ``noise`` this equals diffusers'
    ``DDPMScheduler.step`` (``clip_sample=False``, ``variance_type="fixed_small"`` or ``"fixed_large"``).

    Shapes: ``eps``, ``x_t`` and ``noise`` are ``(B, ...)``; ``noise`` may be ``None`` only at t = 0.
    """
    _check_step_inputs(eps, x_t)
    t = _check_schedule(schedule).check_t(_checks.integer("t", t))
    _checks.choice("variance", variance, VARIANCES)
    if t > 0:
        if noise is None:
            raise ValueError(f"noise must be a tensor for t={t} > 0, got None")
        _checks.tensor("noise", noise, floating=True)
        _checks.same_tensor_kind("noise", noise, "x_t", x_t, dtype=False)
    return _ddpm_update(eps, x_t, t, schedule, noise, variance)


def ddpm_coefficients(schedule: NoiseSchedule, t: int, variance: str = "small") -> tuple[float, float, float]:
    """The DDPM step as an affine map: x_{t-1} = c_x x_t + c_eps eps + std * noise. Eq. (ddpm-step).

    From the posterior mean with x0_hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t):
    c_x = 1 / sqrt(alpha_t), c_eps = -beta_t / (sqrt(alpha_t) sqrt(1 - ab_t)), and std^2 = beta_tilde_t
    (``"small"``) or beta_t (``"large"``), with std = 0 at t = 0. Chapter 8 uses the same map to push a
    Gaussian through a sampler exactly.
    """
    t = _check_schedule(schedule).check_t(_checks.integer("t", t))
    _checks.choice("variance", variance, VARIANCES)
    return _ddpm_coefficients(schedule, t, variance)


def _ddpm_coefficients(schedule: NoiseSchedule, t: int, variance: str) -> tuple[float, float, float]:
    """The arithmetic of :func:`ddpm_coefficients`, without the argument checks."""
    ab, ab_prev = _coefs(schedule, t, t - 1)
    beta = schedule.betas[t].item()
    c_x0 = ab_prev ** 0.5 * beta / (1.0 - ab)             # posterior-mean weight on x0_hat
    c_xt = (1.0 - beta) ** 0.5 * (1.0 - ab_prev) / (1.0 - ab)
    c_x = c_x0 / ab ** 0.5 + c_xt
    c_eps = -c_x0 * (1.0 - ab) ** 0.5 / ab ** 0.5
    if t == 0:
        return c_x, c_eps, 0.0
    var = max(beta * (1.0 - ab_prev) / (1.0 - ab), 1e-20) if variance == "small" else beta
    return c_x, c_eps, var ** 0.5


def _ddpm_update(eps: Tensor, x_t: Tensor, t: int, schedule: NoiseSchedule, noise: Optional[Tensor],
                 variance: str) -> Tensor:
    """The arithmetic of :func:`ddpm_step`, without the argument checks (the loop checks once)."""
    c_x, c_eps, std = _ddpm_coefficients(schedule, t, variance)
    x_prev = c_x * x_t + c_eps * eps
    return x_prev + std * noise if std > 0 else x_prev


def ddim_step(eps: Tensor, x_t: Tensor, t: int, t_prev: int, schedule: NoiseSchedule, *, eta: float = 0.0,
              noise: Optional[Tensor] = None) -> Tensor:
    """One step x_t -> x_{t_prev} of Song, Meng & Ermon (2021), eq. (12); eq. (ddim-step) of the book.

    ``t_prev = -1`` steps to clean data (alpha_bar = 1). ``eta = 0`` is the deterministic DDIM, ``eta = 1``
    matches DDPM's "small" variance when ``t_prev = t - 1``. With the same ``noise`` this equals diffusers'
    ``DDIMScheduler.step`` (``clip_sample=False``, ``set_alpha_to_one=True``).
    """
    _check_step_inputs(eps, x_t)
    t = _check_schedule(schedule).check_t(_checks.integer("t", t))
    t_prev = _checks.integer("t_prev", t_prev, low=-1, high=t - 1)
    eta = _checks.real("eta", eta, low=0.0)
    if eta > 0 and t_prev >= 0:
        if noise is None:
            raise ValueError(f"noise must be a tensor when eta > 0 (eta={eta}), got None")
        _checks.tensor("noise", noise, floating=True)
        _checks.same_tensor_kind("noise", noise, "x_t", x_t, dtype=False)
    return _ddim_update(eps, x_t, t, t_prev, schedule, eta, noise)


def ddim_coefficients(schedule: NoiseSchedule, t: int, t_prev: int, eta: float = 0.0) -> tuple[float, float, float]:
    """The DDIM step as an affine map: x_{t_prev} = c_x x_t + c_eps eps + sigma * noise. Eq. (ddim-step).

    c_x = sqrt(ab_prev / ab_t), c_eps = sqrt(1 - ab_prev - sigma^2) - sqrt(ab_prev (1 - ab_t) / ab_t),
    sigma = eta sqrt((1 - ab_prev) / (1 - ab_t) (1 - ab_t / ab_prev)); ``t_prev = -1`` has ab_prev = 1.
    """
    t = _check_schedule(schedule).check_t(_checks.integer("t", t))
    t_prev = _checks.integer("t_prev", t_prev, low=-1, high=t - 1)
    return _ddim_coefficients(schedule, t, t_prev, _checks.real("eta", eta, low=0.0))


def _ddim_coefficients(schedule: NoiseSchedule, t: int, t_prev: int, eta: float) -> tuple[float, float, float]:
    """The arithmetic of :func:`ddim_coefficients`, without the argument checks."""
    ab, ab_prev = _coefs(schedule, t, t_prev)
    sigma = eta * ((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev)) ** 0.5
    c_x = (ab_prev / ab) ** 0.5
    c_eps = max(1.0 - ab_prev - sigma ** 2, 0.0) ** 0.5 - (ab_prev * (1.0 - ab) / ab) ** 0.5
    return c_x, c_eps, sigma


def _ddim_update(eps: Tensor, x_t: Tensor, t: int, t_prev: int, schedule: NoiseSchedule, eta: float,
                 noise: Optional[Tensor]) -> Tensor:
    """The arithmetic of :func:`ddim_step`, without the argument checks (the loop checks once)."""
    c_x, c_eps, sigma = _ddim_coefficients(schedule, t, t_prev, eta)
    x_prev = c_x * x_t + c_eps * eps
    return x_prev + sigma * noise if sigma > 0 else x_prev


def ddim_timesteps(T: int, num_steps: int) -> list[int]:
    """The decreasing timesteps of a ``num_steps``-step DDIM run over a ``T``-step schedule.

    Evenly spaced with stride ``T // num_steps``, starting at 0 and counted downwards: diffusers'
    ``timestep_spacing="leading"``, so that both libraries visit the same steps.
    """
    T = _checks.integer("T", T, low=1)
    num_steps = _checks.integer("num_steps", num_steps, low=1, high=T)
    stride = T // num_steps
    return [i * stride for i in range(num_steps)][::-1]


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
        _checks.tensor("x", x, finite=False)
        self.timesteps.append(t)
        self.states.append(x.detach().cpu())
        if self.keep_x0:
            self.x0_predictions.append(x0.detach().cpu())

    def stacked(self) -> Tensor:
        """All recorded states as one tensor of shape ``(steps, B, ...)``."""
        return torch.stack(self.states)


def _initial_state(shape, x_T, generator, device, dtype) -> Tensor:
    if x_T is not None:
        _checks.tensor("x_T", x_T, floating=True)
        if tuple(x_T.shape) != tuple(shape):
            raise ValueError(f"x_T has shape {tuple(x_T.shape)}, but shape is {tuple(shape)}")
        if x_T.device.type != device.type or device.index not in (None, x_T.device.index):
            raise ValueError(f"x_T is on device {x_T.device}, but device is {device}")
        return x_T
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def _check_sample_args(eps_model, shape, schedule, cond, generator, device):
    if not callable(eps_model):
        raise TypeError(f"eps_model must be callable as eps_model(x_t, t, cond), got {type(eps_model).__name__}")
    if not isinstance(shape, Sequence) or len(shape) < 1 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"shape must be a sequence of positive ints such as (B, D), got {shape!r}")
    _check_schedule(schedule)
    _checks.batch("cond", cond, shape[0])
    if generator is not None and torch.device(device).type != generator.device.type:
        raise ValueError(f"generator is on device {generator.device}, but the samples go to {device}")


def _call_model(eps_model, x: Tensor, t: int, cond) -> Tensor:
    t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
    eps = eps_model(x, t_batch, cond)
    if not isinstance(eps, Tensor) or eps.shape != x.shape:
        got = tuple(eps.shape) if isinstance(eps, Tensor) else type(eps).__name__
        raise ValueError(f"eps_model returned {got} at t={t}, expected a tensor of shape {tuple(x.shape)}")
    return eps


def _check_finite(x: Tensor, t: int, sampler: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(f"{sampler}: the state became NaN or infinite at step t={t}; "
                                 "check the model's output and the guidance scale")


@torch.no_grad()
def ddpm_sample(eps_model: EpsModel, shape: Sequence[int], schedule: NoiseSchedule, *, cond=None,
                variance: str = "small", generator: Optional[torch.Generator] = None, device=None,
                dtype: torch.dtype = torch.float32, x_T: Optional[Tensor] = None,
                callback: Optional[Callback] = None, progress: bool = False) -> Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) from t = T-1 down to t = 0.

    Args:
        eps_model: ``eps_model(x_t, t, cond) -> eps``, any model or guided wrapper of the package.
        shape: ``(B, ...)``, the shape of the samples.
        schedule: the noise schedule the model was trained with.
        cond: the condition passed to the model at every step, e.g. a ``(B,)`` tensor of energies.
        variance: ``"small"`` (beta_tilde_t) or ``"large"`` (beta_t).
        generator: a ``torch.Generator`` on ``device`` for the initial state and the step noise.
        device, dtype: where and in which precision the state lives (default: the CPU, float32).
        x_T: an initial state to start from instead of drawing one.
        callback: called as ``callback(t, x_{t-1}, x0_hat)`` after every step, e.g. a :class:`Trajectory`.
        progress: show a tqdm progress bar.

    Returns:
        The samples x_0, shape ``shape``. Raises ``FloatingPointError`` naming the step if the state
        becomes non-finite. Chapter 1, eq. (ddpm-step).
    """
    device = torch.device(device) if device is not None else (x_T.device if x_T is not None else torch.device("cpu"))
    _check_sample_args(eps_model, shape, schedule, cond, generator, device)
    _checks.choice("variance", variance, VARIANCES)
    x = _initial_state(shape, x_T, generator, device, dtype)
    for t in tqdm(range(schedule.T - 1, -1, -1), desc="DDPM", disable=not progress, leave=False):
        eps = _call_model(eps_model, x, t, cond)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) if t > 0 else None
        x_next = _ddpm_update(eps, x, t, schedule, noise, variance).to(x.dtype)
        _check_finite(x_next, t, "ddpm_sample")
        if callback is not None:
            callback(t, x_next, schedule.predict_x0(x, t, eps.to(x.dtype)))
        x = x_next
    return x


@torch.no_grad()
def ddim_sample(eps_model: EpsModel, shape: Sequence[int], schedule: NoiseSchedule, *, num_steps: int = 50,
                timesteps: Optional[Sequence[int]] = None, eta: float = 0.0, cond=None,
                generator: Optional[torch.Generator] = None, device=None, dtype: torch.dtype = torch.float32,
                x_T: Optional[Tensor] = None, callback: Optional[Callback] = None,
                progress: bool = False) -> Tensor:
    """DDIM sampling (Song, Meng & Ermon 2021) over ``num_steps`` of the schedule's T steps.

    ``timesteps`` overrides the default :func:`ddim_timesteps`; it must be strictly decreasing. The
    other arguments are those of :func:`ddpm_sample`; ``eta`` scales the step noise (0 = deterministic).
    Chapter 1, eq. (ddim-step).
    """
    device = torch.device(device) if device is not None else (x_T.device if x_T is not None else torch.device("cpu"))
    _check_sample_args(eps_model, shape, schedule, cond, generator, device)
    if timesteps is None:
        timesteps = ddim_timesteps(schedule.T, num_steps)
    timesteps = [schedule.check_t(int(t), "timesteps") for t in timesteps]
    if any(a <= b for a, b in zip(timesteps, timesteps[1:])) or not timesteps:
        raise ValueError(f"timesteps must be a non-empty, strictly decreasing sequence, got {timesteps}")
    eta = _checks.real("eta", eta, low=0.0)
    x = _initial_state(shape, x_T, generator, device, dtype)
    steps = list(zip(timesteps, timesteps[1:] + [-1]))
    for t, t_prev in tqdm(steps, desc="DDIM", disable=not progress, leave=False):
        eps = _call_model(eps_model, x, t, cond)
        noise = (torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                 if eta > 0 and t_prev >= 0 else None)
        x_next = _ddim_update(eps, x, t, t_prev, schedule, eta, noise).to(x.dtype)
        _check_finite(x_next, t, "ddim_sample")
        if callback is not None:
            callback(t, x_next, schedule.predict_x0(x, t, eps.to(x.dtype)))
        x = x_next
    return x
