"""Noise schedules of the forward process and the identities that every chapter uses.

Timesteps are indexed ``t = 0 .. T-1`` as in diffusers and guided-diffusion:
``alpha_bars[t] = prod(alphas[:t+1])`` and ``t = 0`` is the last denoising step. The book writes the
papers' ``1 .. T``; the notation page of the book maps one onto the other (book ``t`` = package ``t+1``).

Each identity has one implementation here, and the samplers, wrappers and exact models call it: the
forward marginal, the conversions between the four parameterisations (eps, x0, v and the score), and the
coefficients of the posterior q(x_{t-1} | x_t, x_0).

Derived in chapter 1 (``book/01_score_based_diffusion``), equations ``forward-marginal``,
``eps-score``, ``x0-from-eps`` and ``posterior``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import _checks

Tensor = torch.Tensor

__all__ = ["NoiseSchedule", "linear_schedule", "cosine_schedule", "make_schedule", "SCHEDULES"]

_CACHED_TABLES = 32      # cast copies kept per schedule: tables x devices x dtypes in use


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A frozen noise schedule: ``betas``, ``alphas = 1 - betas``, ``alpha_bars = cumprod(alphas)``.

    All three are float64 tensors of shape ``(T,)`` that stay on the CPU: a schedule serves samples on any
    device, and its methods cast a table to the sample's dtype while moving it to the sample's device (once
    per device and dtype; the copy is kept), so no float64 tensor lands on an accelerator (MPS has none).

    Methods take a timestep ``t`` that is an ``int`` (the same step for the whole batch, as the samplers pass
    it) or a long tensor of shape ``(B,)`` (one step per sample, as training passes it), and return tensors
    in the dtype and on the device of their tensor arguments. They check shapes and devices, which costs
    nothing, but never read values: they run at every step, so the values of ``t`` are checked where a
    public loop is entered (:meth:`check_t`).
    """

    betas: Tensor

    def __post_init__(self):
        betas = _checks.tensor("betas", self.betas, ndim=1, floating=True)
        if betas.numel() < 1:
            raise ValueError("betas must hold at least one step, got an empty tensor")
        betas = betas.detach().to(device="cpu", dtype=torch.float64)
        if bool(((betas <= 0) | (betas >= 1)).any()):
            raise ValueError("betas must lie in the open interval (0, 1)")
        alpha_bars = torch.cumprod(1.0 - betas, dim=0)
        alpha_bars_prev = torch.cat([alpha_bars.new_ones(1), alpha_bars[:-1]])
        # eq. (posterior): q(x_{t-1} | x_t, x_0) = N(c_x0 x_0 + c_xt x_t, beta_tilde_t)
        tables = {
            "betas": betas, "alphas": 1.0 - betas, "alpha_bars": alpha_bars, "alpha_bars_prev": alpha_bars_prev,
            "posterior_x0": alpha_bars_prev.sqrt() * betas / (1.0 - alpha_bars),
            "posterior_xt": (1.0 - betas).sqrt() * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars),
            "posterior_variances": betas * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars),
        }
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "_tables", tables)
        # the same tables as Python floats (float64), read by the coefficients of a sampler's steps
        object.__setattr__(self, "_floats", {name: tuple(table.tolist()) for name, table in tables.items()})
        object.__setattr__(self, "_on_device", {})       # (id of table, device, dtype) -> (table, cast copy)

    # -- the stored sequences ------------------------------------------------------------------
    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.betas.numel()

    @property
    def alphas(self) -> Tensor:
        return self._tables["alphas"]

    @property
    def alpha_bars(self) -> Tensor:
        return self._tables["alpha_bars"]

    @property
    def alpha_bars_prev(self) -> Tensor:
        """``alpha_bar`` of step ``t - 1``, with ``alpha_bar_{-1} = 1`` (clean data)."""
        return self._tables["alpha_bars_prev"]

    @property
    def posterior_variances(self) -> Tensor:
        """The variance of q(x_{t-1} | x_t, x_0), eq. (posterior): ``beta_t (1 - ab_{t-1}) / (1 - ab_t)``."""
        return self._tables["posterior_variances"]

    def __repr__(self) -> str:
        return (f"NoiseSchedule(T={self.T}, beta_0={self.betas[0].item():.3g}, "
                f"beta_T-1={self.betas[-1].item():.3g}, alpha_bar_T-1={self.alpha_bars[-1].item():.3g})")

    # -- indexing --------------------------------------------------------------------------------
    def check_t(self, t, name: str = "t"):
        """Validate a timestep, once, where a public loop is entered: an int in ``0 .. T-1``, or an integer
        tensor of shape ``(B,)`` with values there (reading them is a host sync on an accelerator)."""
        if isinstance(t, Tensor):
            self._check_t_kind(t, name)
            if t.numel() and (t.min().item() < 0 or t.max().item() >= self.T):
                raise ValueError(f"{name} must lie in 0..{self.T - 1}, got values in "
                                 f"{t.min().item()}..{t.max().item()}")
            return t
        t = _checks.integer(name, t)
        if not 0 <= t < self.T:
            raise ValueError(f"{name} must lie in 0..{self.T - 1}, got {t}")
        return t

    @staticmethod
    def _check_t_kind(t: Tensor, name: str) -> None:
        if t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer tensor, got dtype {t.dtype}")
        if t.ndim > 1:
            raise ValueError(f"{name} must be an int or a tensor of shape (B,), got shape {tuple(t.shape)}")

    def gather(self, values: Tensor, t, like: Tensor) -> Tensor:
        """``values[t]`` in the dtype and on the device of ``like``, shaped to broadcast against it.

        ``values`` is a per-step table of shape ``(T,)`` (one of this schedule's, or any other); ``t`` an int
        (a 0-d result) or a long tensor of shape ``(B,)`` (a result of shape ``(B, 1, ..., 1)``). The table is
        cast while it moves to ``like``'s device, once; the copy is reused at every later step. This is the
        one lookup of a per-step quantity in the package.
        """
        table = self._cast(values, like)
        if isinstance(t, Tensor):
            self._check_t_kind(t, "t")
            if t.ndim == 0:
                return table[t.to(table.device)]
            _checks.batch("t", t, like.shape[0] if like.ndim else 1)
            return table.index_select(0, t.to(table.device)).reshape(-1, *([1] * (like.ndim - 1)))
        t = _checks.integer("t", t)
        if not 0 <= t < self.T:
            raise ValueError(f"t must lie in 0..{self.T - 1}, got {t}")
        return table[t]

    def _cast(self, values: Tensor, like: Tensor) -> Tensor:
        key = (id(values), like.device, like.dtype)
        hit = self._on_device.get(key)
        if hit is not None and hit[0] is values:
            return hit[1]
        if not isinstance(values, Tensor) or values.ndim != 1 or values.numel() != self.T:
            got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise ValueError(f"values must be a per-step table of shape ({self.T},), got {got}")
        # cast while moving: a float64 table never lands on an accelerator
        cast = values.detach().to(device=like.device, dtype=like.dtype)
        if len(self._on_device) >= _CACHED_TABLES:     # a bounded cache: a table made anew at every call
            self._on_device.pop(next(iter(self._on_device)))   # (1 - alpha_bars, say) must not pile up
        self._on_device[key] = (values, cast)
        return cast

    def alpha_bar(self, t, like: Tensor) -> Tensor:
        """``alpha_bar_t`` shaped to broadcast against ``like``: :meth:`gather` of ``alpha_bars``."""
        return self.gather(self.alpha_bars, t, like)

    def value(self, name: str, t: int) -> float:
        """One entry of a table as a Python float (float64): ``"betas"``, ``"alphas"``, ``"alpha_bars"``,
        ``"alpha_bars_prev"``, ``"posterior_variances"``, ``"posterior_x0"`` or ``"posterior_xt"``."""
        _checks.choice("name", name, self._floats)
        t = _checks.integer("t", t)
        if not 0 <= t < self.T:
            raise ValueError(f"t must lie in 0..{self.T - 1}, got {t}")
        return self._floats[name][t]

    def posterior_coefficients(self, t: int) -> tuple[float, float, float]:
        """``(c_x0, c_xt, variance)`` of q(x_{t-1} | x_t, x_0) = N(c_x0 x_0 + c_xt x_t, variance) at step ``t``,
        eq. (posterior), as Python floats (float64): what the DDPM step and its exact recursion are built from."""
        return tuple(self.value(k, t) for k in ("posterior_x0", "posterior_xt", "posterior_variances"))

    # -- the forward process, eq. (forward-marginal) -------------------------------------------
    def q_sample(self, x0: Tensor, t, eps: Tensor) -> Tensor:
        """Draw x_t ~ q(x_t | x_0) = N(sqrt(ab_t) x_0, (1 - ab_t) I) with the given noise ``eps``."""
        _pair("x0", x0, "eps", eps)
        ab = self.alpha_bar(t, x0)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps

    # -- the four parameterisations, at a fixed x_t ---------------------------------------------
    def predict_x0(self, x_t: Tensor, t, eps: Tensor) -> Tensor:
        """Eq. (x0-from-eps), the forward marginal inverted: x_0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)."""
        _pair("x_t", x_t, "eps", eps)
        ab = self.alpha_bar(t, x_t)
        return (x_t - (1.0 - ab).sqrt() * eps) / ab.sqrt()

    def predict_eps(self, x_t: Tensor, t, x0: Tensor) -> Tensor:
        """The noise that maps x_0 to x_t: eps = (x_t - sqrt(ab_t) x_0) / sqrt(1 - ab_t)."""
        _pair("x_t", x_t, "x0", x0)
        ab = self.alpha_bar(t, x_t)
        return (x_t - ab.sqrt() * x0) / (1.0 - ab).sqrt()

    def eps_to_score(self, eps: Tensor, t) -> Tensor:
        """Eq. (eps-score): score = grad log q_t(x_t) = -eps / sqrt(1 - ab_t)."""
        _checks.tensor("eps", eps, floating=True, finite=False)
        return -eps / (1.0 - self.alpha_bar(t, eps)).sqrt()

    def score_to_eps(self, score: Tensor, t) -> Tensor:
        """Eq. (eps-score) inverted: eps = -sqrt(1 - ab_t) * score."""
        _checks.tensor("score", score, floating=True, finite=False)
        return -(1.0 - self.alpha_bar(t, score)).sqrt() * score

    def eps_to_v(self, x_t: Tensor, t, eps: Tensor) -> Tensor:
        """The v-prediction of Salimans & Ho (2022), v = sqrt(ab_t) eps - sqrt(1 - ab_t) x_0, from eps:
        v = (eps - sqrt(1 - ab_t) x_t) / sqrt(ab_t)."""
        _pair("x_t", x_t, "eps", eps)
        ab = self.alpha_bar(t, x_t)
        return (eps - (1.0 - ab).sqrt() * x_t) / ab.sqrt()

    def v_to_eps(self, x_t: Tensor, t, v: Tensor) -> Tensor:
        """eps from a v-prediction: eps = sqrt(1 - ab_t) x_t + sqrt(ab_t) v."""
        _pair("x_t", x_t, "v", v)
        ab = self.alpha_bar(t, x_t)
        return (1.0 - ab).sqrt() * x_t + ab.sqrt() * v

    # -- the posterior of one step, eq. (posterior) ----------------------------------------------
    def posterior_mean_variance(self, x0: Tensor, x_t: Tensor, t) -> tuple[Tensor, Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x_0), eq. (posterior) of chapter 1.

        mean = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x_0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t,
        variance = beta_t (1 - ab_{t-1}) / (1 - ab_t), broadcast to the shape of x_t.
        """
        _pair("x0", x0, "x_t", x_t)
        c_x0 = self.gather(self._tables["posterior_x0"], t, x_t)
        c_xt = self.gather(self._tables["posterior_xt"], t, x_t)
        variance = self.gather(self.posterior_variances, t, x_t)
        return c_x0 * x0 + c_xt * x_t, variance.expand_as(x_t)


def _pair(name: str, value, ref_name: str, ref) -> None:
    """Two tensors of one identity: floating, of one shape, on one device (a check of metadata only)."""
    _checks.tensor(name, value, floating=True, finite=False)
    _checks.tensor(ref_name, ref, floating=True, finite=False)
    _checks.same_tensor_kind(ref_name, ref, name, value)


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
