"""Noise schedules of the forward process and the identities that every chapter uses.

Timesteps are indexed ``t = 0 .. T-1`` as in diffusers and guided-diffusion:
``alpha_bars[t] = prod(alphas[:t+1])`` and ``t = 0`` is the last denoising step. The book writes the
papers' ``1 .. T``; the notation page of the book maps one onto the other (book ``t`` = package ``t+1``).

Derived in chapter 1 (``book/01_score_based_diffusion``), equations ``forward-marginal``,
``eps-score`` and ``posterior``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import _checks

Tensor = torch.Tensor

__all__ = ["NoiseSchedule", "linear_schedule", "cosine_schedule", "make_schedule", "SCHEDULES"]


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A frozen noise schedule: ``betas``, ``alphas = 1 - betas``, ``alpha_bars = cumprod(alphas)``.

    All three are float64 tensors of shape ``(T,)`` that stay on the CPU: a schedule serves samples on any
    device, and its methods cast a table to the sample's dtype while moving it to the sample's device, so
    no float64 tensor lands on an accelerator (MPS has none). Methods take a timestep ``t`` that is an ``int``
    (the same step for the whole batch) or a long tensor of shape ``(B,)`` (one step per sample), and
    return tensors in the dtype and on the device of their tensor arguments.
    """

    betas: Tensor

    def __post_init__(self):
        betas = _checks.tensor("betas", self.betas, ndim=1, floating=True)
        if betas.numel() < 1:
            raise ValueError("betas must hold at least one step, got an empty tensor")
        if bool(((betas <= 0) | (betas >= 1)).any()):
            raise ValueError("betas must lie in the open interval (0, 1)")
        betas = betas.to(torch.float64)
        object.__setattr__(self, "betas", betas)
        # derived once: the samplers read alpha_bar at every step
        object.__setattr__(self, "_alphas", 1.0 - betas)
        object.__setattr__(self, "_alpha_bars", torch.cumprod(1.0 - betas, dim=0))

    # -- the stored sequences ------------------------------------------------------------------
    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.betas.numel()

    @property
    def alphas(self) -> Tensor:
        return self._alphas

    @property
    def alpha_bars(self) -> Tensor:
        return self._alpha_bars

    @property
    def alpha_bars_prev(self) -> Tensor:
        """``alpha_bar`` of step ``t - 1``, with ``alpha_bar_{-1} = 1`` (clean data)."""
        return torch.cat([self.alpha_bars.new_ones(1), self.alpha_bars[:-1]])

    @property
    def posterior_variances(self) -> Tensor:
        """The variance of q(x_{t-1} | x_t, x_0), eq. (posterior): ``beta_t (1 - ab_{t-1}) / (1 - ab_t)``."""
        return self.betas * (1.0 - self.alpha_bars_prev) / (1.0 - self.alpha_bars)

    def __repr__(self) -> str:
        return (f"NoiseSchedule(T={self.T}, beta_0={self.betas[0].item():.3g}, "
                f"beta_T-1={self.betas[-1].item():.3g}, alpha_bar_T-1={self.alpha_bars[-1].item():.3g})")

    # -- indexing --------------------------------------------------------------------------------
    def check_t(self, t, name: str = "t"):
        """Validate a timestep: an int or an integer tensor with values in ``0 .. T-1``."""
        if isinstance(t, Tensor):
            if t.is_floating_point() or t.dtype == torch.bool:
                raise TypeError(f"{name} must be an integer tensor, got dtype {t.dtype}")
            if t.ndim > 1:
                raise ValueError(f"{name} must be an int or a tensor of shape (B,), got shape {tuple(t.shape)}")
            if t.numel() and (t.min().item() < 0 or t.max().item() >= self.T):
                raise ValueError(f"{name} must lie in 0..{self.T - 1}, got values in "
                                 f"{t.min().item()}..{t.max().item()}")
            return t
        t = _checks.integer(name, t)
        if not 0 <= t < self.T:
            raise ValueError(f"{name} must lie in 0..{self.T - 1}, got {t}")
        return t

    def gather(self, values: Tensor, t, like: Tensor) -> Tensor:
        """``values[t]`` shaped to broadcast against ``like`` (batch first), in its dtype and device."""
        t = self.check_t(t)
        if isinstance(t, Tensor) and t.ndim == 1:
            _checks.batch("t", t, like.shape[0])
            # cast while moving: a float64 table never lands on an accelerator (MPS has no float64)
            out = values.to(device=like.device, dtype=like.dtype).index_select(0, t.to(like.device))
            return out.reshape(-1, *([1] * (like.ndim - 1)))
        return values[int(t)].to(device=like.device, dtype=like.dtype)

    # -- the forward process, eq. (forward-marginal) -------------------------------------------
    def q_sample(self, x0: Tensor, t, eps: Tensor) -> Tensor:
        """Draw x_t ~ q(x_t | x_0) = N(sqrt(ab_t) x_0, (1 - ab_t) I) with the given noise ``eps``."""
        _checks.tensor("x0", x0, floating=True)
        _checks.tensor("eps", eps, floating=True)
        _checks.same_tensor_kind("eps", eps, "x0", x0)
        ab = self.gather(self.alpha_bars, t, x0)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps

    def predict_x0(self, x_t: Tensor, t, eps: Tensor) -> Tensor:
        """Invert eq. (forward-marginal): x_0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)."""
        _checks.tensor("x_t", x_t, floating=True)
        _checks.tensor("eps", eps, floating=True)
        _checks.same_tensor_kind("eps", eps, "x_t", x_t)
        ab = self.gather(self.alpha_bars, t, x_t)
        return (x_t - (1.0 - ab).sqrt() * eps) / ab.sqrt()

    def predict_eps(self, x_t: Tensor, t, x0: Tensor) -> Tensor:
        """The noise that maps x_0 to x_t: eps = (x_t - sqrt(ab_t) x_0) / sqrt(1 - ab_t)."""
        _checks.tensor("x_t", x_t, floating=True)
        _checks.tensor("x0", x0, floating=True)
        _checks.same_tensor_kind("x0", x0, "x_t", x_t)
        ab = self.gather(self.alpha_bars, t, x_t)
        return (x_t - ab.sqrt() * x0) / (1.0 - ab).sqrt()

    def posterior_mean_variance(self, x0: Tensor, x_t: Tensor, t) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x_0), eq. (posterior) of chapter 1.

        mean = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x_0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t,
        variance = beta_t (1 - ab_{t-1}) / (1 - ab_t), broadcast to the shape of x_t.
        """
        _checks.tensor("x0", x0, floating=True)
        _checks.tensor("x_t", x_t, floating=True)
        _checks.same_tensor_kind("x0", x0, "x_t", x_t)
        ab = self.gather(self.alpha_bars, t, x_t)
        ab_prev = self.gather(self.alpha_bars_prev, t, x_t)
        beta = self.gather(self.betas, t, x_t)
        coef_x0 = ab_prev.sqrt() * beta / (1.0 - ab)
        coef_xt = (1.0 - beta).sqrt() * (1.0 - ab_prev) / (1.0 - ab)
        variance = self.gather(self.posterior_variances, t, x_t)
        return coef_x0 * x0 + coef_xt * x_t, variance.expand_as(x_t)

    # -- eps <-> score, eq. (eps-score) ----------------------------------------------------------
    def eps_to_score(self, eps: Tensor, t) -> Tensor:
        """score = grad log q_t(x_t) = -eps / sqrt(1 - ab_t)."""
        _checks.tensor("eps", eps, floating=True)
        return -eps / (1.0 - self.gather(self.alpha_bars, t, eps)).sqrt()

    def score_to_eps(self, score: Tensor, t) -> Tensor:
        """eps = -sqrt(1 - ab_t) * score."""
        _checks.tensor("score", score, floating=True)
        return -(1.0 - self.gather(self.alpha_bars, t, score)).sqrt() * score


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """The linear schedule of Ho et al. (2020): betas evenly spaced from ``beta_start`` to ``beta_end``.

    Equal, for the same ``T``, to diffusers' ``DDPMScheduler(beta_schedule="linear")``.
    """
    T = _checks.integer("T", T, low=1)
    beta_start = _checks.real("beta_start", beta_start, low=0.0, high=1.0, low_open=True, high_open=True)
    beta_end = _checks.real("beta_end", beta_end, low=0.0, high=1.0, low_open=True, high_open=True)
    return NoiseSchedule(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """The cosine schedule of Nichol & Dhariwal (2021): ab(t) = cos^2((t/T + s) / (1 + s) pi/2).

    Betas are clipped at ``max_beta`` as in the paper; equal to diffusers' ``squaredcos_cap_v2``.
    """
    T = _checks.integer("T", T, low=1)
    s = _checks.real("s", s, low=0.0)
    max_beta = _checks.real("max_beta", max_beta, low=0.0, high=1.0, low_open=True, high_open=True)
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return NoiseSchedule(betas)


SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}


def make_schedule(name: str, T: int = 1000, **kwargs) -> NoiseSchedule:
    """Build a schedule by name: ``"linear"`` or ``"cosine"``."""
    _checks.choice("name", name, SCHEDULES)
    return SCHEDULES[name](T, **kwargs)
