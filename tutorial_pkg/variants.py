"""Newer variants of classifier-free guidance as model wrappers: CFG++, APG and CFG-Zero*, and the quantity
(eps, x0, v or the flow velocity) that a guidance rule acts on.

Each wrapper has the contract ``eps_model(x_t, t, cond) -> eps`` and derives from
:class:`tutorial_pkg.guidance.CFGModel`: both branches run in one batched pass, the null condition is passed
on, and the package's samplers run it. Two of them need to know where they are in a sampling run:

* **CFG++** needs the step ``t -> t_prev`` the sampler takes. :class:`CFGPlusPlusModel` is built for one DDIM
  grid and returns the eps whose ordinary DDIM step *is* the CFG++ step; a call off that grid is refused.
* **APG's momentum** and **CFG-Zero*'s zero-init** count the steps of a run: a call whose int ``t`` is not
  below the previous call's starts a new run (``reset()`` does the same by hand). This suits samplers that call
  the model once per step at decreasing ``t``, as the package's DDPM and DDIM samplers do; a sampler that calls it
  twice at the same ``t`` (a Heun-type corrector, say) would restart the count on every step, so reset and count
  by hand there.

Linear CFG gives the same step on eps, x0, v or the flow velocity; a rule with a norm, a projection or an
inner product does not (:func:`guide_in`). Derived in chapter 9b (``book/09b_cfg_variants``), equations
``cfgpp-step``, ``cfgpp-omega``, ``apg``, ``apg-momentum``, ``cfg-zero-star``, ``zero-init`` and
``quantity-affine``.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch

from . import _checks, sampling
from .guidance import CFGModel, Scale, _at, _check_scale, _condition_tensor, _f32, _twice
from .schedules import NoiseSchedule

Tensor = torch.Tensor

__all__ = ["QUANTITIES", "guide_in", "cfgpp_scale", "CFGPlusPlusModel", "cfgpp_model", "apg", "APGModel",
           "apg_model", "zero_star_scale", "cfg_zero_star", "CFGZeroStarModel", "cfg_zero_star_model"]

# what a rule can act on: the network's eps, Tweedie's x0, Salimans & Ho's v, the flow velocity eps - x0
QUANTITIES = ("eps", "x0", "v", "flow")


# -- the quantity a rule acts on, eq. (quantity-affine) -----------------------------------------------
def _check_quantity(quantity: str, schedule) -> str:
    _checks.choice("quantity", quantity, QUANTITIES)
    if quantity != "eps" and not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule to guide on quantity {quantity!r} (it converts eps "
                        f"to {quantity} and back), got {type(schedule).__name__}")
    return quantity


def _to(quantity: str, schedule, x_t: Tensor, t, eps: Tensor) -> Tensor:
    if quantity == "eps":
        return eps
    if quantity == "v":
        return schedule.eps_to_v(x_t, t, eps)
    x0 = schedule.predict_x0(x_t, t, eps)
    return x0 if quantity == "x0" else eps - x0


def _from(quantity: str, schedule, x_t: Tensor, t, pred: Tensor) -> Tensor:
    if quantity == "eps":
        return pred
    if quantity == "x0":
        return schedule.predict_eps(x_t, t, pred)
    if quantity == "v":
        return schedule.v_to_eps(x_t, t, pred)
    ab = schedule.alpha_bar(t, x_t)                 # eps - x0 = u  =>  eps = (u + x_t / sqrt(ab)) / (1 + sigma_t)
    return (pred + x_t / ab.sqrt()) / (1.0 + ((1.0 - ab) / ab).sqrt())


def _pair(c: Tensor, u: Tensor, names=("pred_cond", "pred_uncond")) -> tuple[Tensor, Tensor]:
    _checks.tensor(names[0], c, floating=True, finite=False)
    _checks.tensor(names[1], u, floating=True, finite=False)
    _checks.same_tensor_kind(names[1], u, names[0], c, dtype=False)
    if c.ndim < 2:
        raise ValueError(f"{names[0]} must have shape (B, ...) with a batch dimension, got {tuple(c.shape)}")
    return _f32(c), _f32(u)


def guide_in(rule: Callable[[Tensor, Tensor], Tensor], eps_cond: Tensor, eps_uncond: Tensor, x_t: Tensor, t,
             schedule: Optional[NoiseSchedule], *, quantity: str) -> Tensor:
    """Apply ``rule(pred_cond, pred_uncond) -> pred`` to ``quantity`` (``"eps"``, ``"x0"``, ``"v"`` or
    ``"flow"``, the velocity eps - x0) instead of eps, and return the eps. Shapes ``(B, ...)``.

    A rule that is affine with weights summing to one (plain CFG) gives the same eps on every quantity; one
    with a norm, projection or inner product (rescale, APG, CFG-Zero*) does not. Chapter 9b, eq.
    (quantity-affine).
    """
    if not callable(rule):
        raise TypeError(f"rule must be callable as rule(pred_cond, pred_uncond), got {type(rule).__name__}")
    _check_quantity(quantity, schedule)
    eps_c, eps_u = _pair(eps_cond, eps_uncond, ("eps_cond", "eps_uncond"))
    _checks.tensor("x_t", x_t, floating=True, finite=False)
    _checks.same_tensor_kind("x_t", x_t, "eps_cond", eps_cond, dtype=False)
    x = x_t.to(eps_c.dtype)
    pred = rule(_to(quantity, schedule, x, t, eps_c), _to(quantity, schedule, x, t, eps_u))
    if not isinstance(pred, Tensor) or pred.shape != eps_c.shape:
        got = tuple(pred.shape) if isinstance(pred, Tensor) else type(pred).__name__
        raise ValueError(f"rule must return a tensor of shape {tuple(eps_c.shape)}, got {got}")
    return _from(quantity, schedule, x, t, _f32(pred))


class _RunSteps:
    """Which step of a sampling run a call is: the package's samplers call the model once per step at decreasing
    t, so a t that is not below the previous call's starts a new run. A sampler that calls the model twice at one
    t (Heun-type) would restart the count every step. Host ints only."""

    def __init__(self):
        self.last_t, self.index = None, -1

    def step(self, t, who: str) -> int:
        if isinstance(t, Tensor):
            raise TypeError(f"t must be the sampler's int step for {who}, which counts the steps of a run; "
                            f"got a tensor of shape {tuple(t.shape)}")
        t = int(t)
        self.index = 0 if self.last_t is None or t >= self.last_t else self.index + 1
        self.last_t = t
        return self.index


def _two_branches(model: CFGModel, x_t: Tensor, t, cond) -> tuple[Tensor, Tensor]:
    """(eps_cond, eps_uncond) of ``model.inner_model`` in one batched pass, in float32 or wider."""
    if cond is None:
        raise ValueError("cond must be given: guidance needs a condition to move towards")
    cond = _condition_tensor(cond, x_t)
    eps = model.inner_model(torch.cat([x_t, x_t]), _twice(t), torch.cat([cond, model._null_rows(cond)]))
    eps_c, eps_u = eps.chunk(2)
    return _f32(eps_c), _f32(eps_u)


# -- CFG++ (Chung et al. 2025), eqs. (cfgpp-step) and (cfgpp-omega) ------------------------------------
def cfgpp_scale(schedule: NoiseSchedule, t: int, t_prev: int, lam: float, *, eta: float = 0.0) -> float:
    """The CFG scale omega whose ordinary DDIM step ``t -> t_prev`` (with ``eta``) is the CFG++ step at ``lam``.

    CFG++ (Chung et al. 2025, Algorithm 1) takes x0 from eps_lam = eps_u + lam (eps_c - eps_u) and renoises
    with eps_u. For eta = 0, omega = lam sigma_t / (sigma_t - sigma_prev), sigma = sqrt((1 - ab) / ab).
    Chapter 9b, eq. (cfgpp-omega).
    """
    c_x, c_eps, _ = sampling.ddim_coefficients(schedule, t, t_prev, eta)
    lam = _checks.real("lam", lam, low=0.0)
    ab, ab_prev = schedule.value("alpha_bars", t), (schedule.value("alpha_bars", t_prev) if t_prev >= 0 else 1.0)
    denoise = math.sqrt(ab_prev * (1.0 - ab) / ab)      # c_eps = renoise - denoise
    return lam * denoise / -c_eps


class CFGPlusPlusModel(CFGModel):
    """CFG++ (Chung et al. 2025) for one DDIM grid, as the eps whose DDIM step is the CFG++ step; chapter 9b.

    The CFG++ step, eq. (cfgpp-step), needs ``t_prev``, which an eps-model does not see. Built for the grid
    that ``ddim_sample`` visits with the same ``num_steps`` / ``timesteps`` / ``spacing`` and ``eta``, the
    wrapper returns CFG with the per-step scale omega_t of :func:`cfgpp_scale`, eq. (cfgpp-omega). A call whose
    ``t`` is not the grid's next step raises a ValueError. ``lam`` is a number >= 0 or a schedule ``lam(t)``;
    lam in [0, 1] is the authors' range, and it is **not** a gamma: omega_t / lam grows with the steps.
    """

    def __init__(self, eps_model, lam: Scale, schedule: NoiseSchedule, *, num_steps: Optional[int] = None,
                 timesteps: Optional[Sequence[int]] = None, spacing: str = "leading", eta: float = 0.0, null=None):
        self.steps = sampling.sampler_steps(schedule, sampler="ddim", num_steps=num_steps, timesteps=timesteps,
                                            spacing=spacing)
        self.lam, self.eta = _check_scale("lam", lam), _checks.real("eta", eta, low=0.0)
        self._ratio = {t: cfgpp_scale(schedule, t, t_prev, 1.0, eta=self.eta) for t, t_prev in self.steps}
        self._next, self._expected = dict(self.steps), None
        super().__init__(eps_model, self._omega, null=null)

    def __repr__(self) -> str:
        return f"CFGPlusPlusModel(lam={self.lam!r}, {len(self.steps)} DDIM steps from t={self.steps[0][0]}, eta={self.eta})"

    def scale_at(self, t: int) -> float:
        """omega_t, the CFG scale of the grid's step ``t`` (no run state read or changed)."""
        t = _checks.integer("t", t)
        if t not in self._ratio:
            raise ValueError(f"t={t} is not a step of this CFG++ grid ({len(self.steps)} steps from {self.steps[0][0]})")
        return float(_at(self.lam, t)) * self._ratio[t]

    def _omega(self, t):
        if isinstance(t, Tensor):
            raise TypeError("t must be the sampler's int step: CFG++ pairs each step t with the grid's t_prev, "
                            f"got a tensor of shape {tuple(t.shape)}")
        if t == self.steps[0][0]:
            self._expected = t                          # the first step of a run
        if t != self._expected:
            raise ValueError(f"t={t} does not follow the CFG++ grid this model was built for (expected "
                             f"{self._expected if self._expected is not None else self.steps[0][0]}; "
                             f"{len(self.steps)} steps from {self.steps[0][0]}): build it with the num_steps, "
                             "timesteps and spacing of the sampler that runs it")
        self._expected = self._next[t]
        lam = _at(self.lam, t)
        return lam * self._ratio[t] if isinstance(lam, Tensor) else float(lam) * self._ratio[t]


def cfgpp_model(eps_model, lam: Scale, schedule: NoiseSchedule, *, num_steps: Optional[int] = None,
                timesteps: Optional[Sequence[int]] = None, spacing: str = "leading", eta: float = 0.0,
                null=None) -> CFGPlusPlusModel:
    """Wrap ``eps_model`` with CFG++ at ``lam`` for the DDIM grid of ``ddim_sample(num_steps=..., timesteps=...,
    spacing=..., eta=...)``; see :class:`CFGPlusPlusModel`. Chapter 9b, eq. (cfgpp-step)."""
    return CFGPlusPlusModel(eps_model, lam, schedule, num_steps=num_steps, timesteps=timesteps, spacing=spacing,
                            eta=eta, null=null)


# -- APG (Sadat et al. 2025), eqs. (apg) and (apg-momentum) --------------------------------------------
def _dims(x: Tensor) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def apg(pred_cond: Tensor, pred_uncond: Tensor, gamma, *, eta: float = 0.0, norm_threshold: Optional[float] = None,
        form: str = "paper") -> Tensor:
    """Adaptive projected guidance (Sadat, Hilliges & Weber 2025, Algorithm 1), chapter 9b, eq. (apg).

    D = pred_cond - pred_uncond is clipped per sample to norm ``norm_threshold`` (``None``: no clip) and split
    into its part parallel to pred_cond and the rest: U = D_perp + eta D_par. ``form="paper"`` returns
    pred_cond + (gamma - 1) U (diffusers' ``use_original_formulation=True`` with guidance_scale = gamma - 1);
    ``form="diffusers"`` returns pred_uncond + gamma U (its default). With eta = 1 and no clip both are CFG at
    gamma. Norms and projections run over all dimensions but the batch; shapes ``(B, ...)``.
    """
    c, u = _pair(pred_cond, pred_uncond)
    _checks.choice("form", form, ("paper", "diffusers"))
    eta = _checks.real("eta", eta)
    if norm_threshold is not None:
        norm_threshold = _checks.real("norm_threshold", norm_threshold, low=0.0, low_open=True)
    gamma = _checks.per_sample("gamma", _check_scale("gamma", gamma), c)
    return _apg(c, u, gamma, eta, norm_threshold, form, c - u)


def _apg(c: Tensor, u: Tensor, gamma, eta: float, norm_threshold, form: str, d: Tensor) -> Tensor:
    dims = _dims(c)
    if norm_threshold is not None:                                      # the norm clip, per sample
        d = d * torch.clamp(norm_threshold / torch.linalg.vector_norm(d, dim=dims, keepdim=True), max=1.0)
    unit = torch.nn.functional.normalize(c.flatten(1), dim=1).reshape(c.shape)
    parallel = (d * unit).sum(dim=dims, keepdim=True) * unit            # the part of D along pred_cond
    update = (d - parallel) + eta * parallel
    return c + (gamma - 1.0) * update if form == "paper" else u + gamma * update


class APGModel(CFGModel):
    """APG (Sadat et al. 2025) around a conditional network, on ``quantity``; chapter 9b, eq. (apg).

    Each step converts both branches to ``quantity`` (``"x0"``, the denoised predictions, as in the paper;
    ``"eps"``, the raw output, as diffusers does; ``"v"`` or ``"flow"``), applies :func:`apg` and converts
    back. ``momentum`` beta (the paper uses beta < 0) keeps D_run = D + beta D_run over the steps of one run,
    eq. (apg-momentum); it is cleared when a call's int ``t`` is not below the previous call's, or by
    ``reset()``. ``norm_threshold`` is in units of ``quantity`` (an x0 norm is sigma_t times the eps norm).
    """

    def __init__(self, eps_model, gamma: Scale, *, eta: float = 0.0, norm_threshold: Optional[float] = None,
                 momentum: float = 0.0, form: str = "paper", quantity: str = "x0",
                 schedule: Optional[NoiseSchedule] = None, null=None):
        super().__init__(eps_model, gamma, null=null)
        self.eta = _checks.real("eta", eta)
        self.norm_threshold = (None if norm_threshold is None else
                               _checks.real("norm_threshold", norm_threshold, low=0.0, low_open=True))
        self.momentum = _checks.real("momentum", momentum, low=-1.0, high=1.0, low_open=True, high_open=True)
        self.form = _checks.choice("form", form, ("paper", "diffusers"))
        self.quantity, self.schedule = _check_quantity(quantity, schedule), schedule
        self.reset()

    def __repr__(self) -> str:
        return (f"APGModel(gamma={self.gamma!r}, eta={self.eta}, norm_threshold={self.norm_threshold}, "
                f"momentum={self.momentum}, form={self.form!r}, quantity={self.quantity!r})")

    def reset(self) -> None:
        """Clear the momentum: the next call starts a new run."""
        self._run, self._running = _RunSteps(), None

    def __call__(self, x_t: Tensor, t, cond) -> Tensor:
        if self.momentum != 0.0 and self._run.step(t, "APG's momentum") == 0:
            self._running = None                                        # a new run: no momentum yet
        eps_c, eps_u = _two_branches(self, x_t, t, cond)
        x = x_t.to(eps_c.dtype)
        c, u = _to(self.quantity, self.schedule, x, t, eps_c), _to(self.quantity, self.schedule, x, t, eps_u)
        d = c - u
        if self.momentum != 0.0:                                        # eq. (apg-momentum)
            if self._running is not None and self._running.shape != d.shape:
                raise ValueError(f"APG's momentum holds shape {tuple(self._running.shape)}, got a batch of shape "
                                 f"{tuple(d.shape)} at t={t}: call reset() between runs")
            d = d if self._running is None else d + self.momentum * self._running
            self._running = d
        gamma = _checks.per_sample("gamma", _at(self.gamma, t), c)
        return _from(self.quantity, self.schedule, x, t, _apg(c, u, gamma, self.eta, self.norm_threshold, self.form, d))


def apg_model(eps_model, gamma: Scale, *, eta: float = 0.0, norm_threshold: Optional[float] = None,
              momentum: float = 0.0, form: str = "paper", quantity: str = "x0",
              schedule: Optional[NoiseSchedule] = None, null=None) -> APGModel:
    """Wrap ``eps_model`` with adaptive projected guidance; see :class:`APGModel`. Chapter 9b, eq. (apg)."""
    return APGModel(eps_model, gamma, eta=eta, norm_threshold=norm_threshold, momentum=momentum, form=form,
                    quantity=quantity, schedule=schedule, null=null)


# -- CFG-Zero* (Fan et al. 2025), eqs. (cfg-zero-star) and (zero-init) ----------------------------------
def zero_star_scale(pred_cond: Tensor, pred_uncond: Tensor) -> Tensor:
    """CFG-Zero*'s ``alpha* = <c, u> / (||u||^2 + 1e-8)`` per sample, shape ``(B, 1, ..., 1)``: the alpha that
    minimises ``||c - alpha u||^2`` (Fan et al. 2025, eq. 7), summed over all dimensions but the batch.
    Chapter 9b, eq. (cfg-zero-star)."""
    c, u = _pair(pred_cond, pred_uncond)
    return _alpha_star(c, u)


def _alpha_star(c: Tensor, u: Tensor) -> Tensor:
    dims = _dims(c)
    return (c * u).sum(dim=dims, keepdim=True) / ((u * u).sum(dim=dims, keepdim=True) + 1e-8)


def cfg_zero_star(pred_cond: Tensor, pred_uncond: Tensor, gamma) -> Tensor:
    """CFG-Zero*'s combination alpha* u + gamma (c - alpha* u), chapter 9b, eq. (cfg-zero-star): CFG with the
    unconditional prediction replaced by its optimally scaled version (:func:`zero_star_scale`); alpha* = 1
    is plain CFG. Shapes ``(B, ...)``; ``gamma`` a number or ``(B,)``."""
    c, u = _pair(pred_cond, pred_uncond)
    gamma = _checks.per_sample("gamma", _check_scale("gamma", gamma), c)
    alpha = _alpha_star(c, u)
    return alpha * u + gamma * (c - alpha * u)


class CFGZeroStarModel(CFGModel):
    """CFG-Zero* (Fan et al. 2025) around a conditional network, on ``quantity``; chapter 9b.

    After the first ``zero_init_steps`` steps of a run, eq. (cfg-zero-star) on ``quantity`` (the paper's is
    the flow velocity, ``"flow"``; diffusers uses the raw output, ``"eps"``); ``optimized_scale=False`` uses
    alpha* = 1, plain CFG. The first ``zero_init_steps`` steps return the eps whose ``quantity`` is zero,
    eq. (zero-init), and evaluate no network. Runs are counted as APG's momentum counts them (int ``t``).
    """

    def __init__(self, eps_model, gamma: Scale, *, zero_init_steps: int = 1, optimized_scale: bool = True,
                 quantity: str = "flow", schedule: Optional[NoiseSchedule] = None, null=None):
        super().__init__(eps_model, gamma, null=null)
        self.zero_init_steps = _checks.integer("zero_init_steps", zero_init_steps, low=0)
        if not isinstance(optimized_scale, bool):
            raise TypeError(f"optimized_scale must be True or False, got {type(optimized_scale).__name__}")
        self.optimized_scale = optimized_scale
        self.quantity, self.schedule = _check_quantity(quantity, schedule), schedule
        self.reset()

    def __repr__(self) -> str:
        return (f"CFGZeroStarModel(gamma={self.gamma!r}, zero_init_steps={self.zero_init_steps}, "
                f"optimized_scale={self.optimized_scale}, quantity={self.quantity!r})")

    def reset(self) -> None:
        """Restart the step count: the next call is the first step of a run."""
        self._run = _RunSteps()

    def __call__(self, x_t: Tensor, t, cond) -> Tensor:
        if self.zero_init_steps > 0 and self._run.step(t, "CFG-Zero*'s zero-init") < self.zero_init_steps:
            if cond is None:
                raise ValueError("cond must be given: guidance needs a condition to move towards")
            x = _f32(x_t)
            return _from(self.quantity, self.schedule, x, t, torch.zeros_like(x))     # eq. (zero-init)
        eps_c, eps_u = _two_branches(self, x_t, t, cond)
        x = x_t.to(eps_c.dtype)
        c, u = _to(self.quantity, self.schedule, x, t, eps_c), _to(self.quantity, self.schedule, x, t, eps_u)
        alpha = _alpha_star(c, u) if self.optimized_scale else 1.0
        gamma = _checks.per_sample("gamma", _at(self.gamma, t), c)
        return _from(self.quantity, self.schedule, x, t, alpha * u + gamma * (c - alpha * u))


def cfg_zero_star_model(eps_model, gamma: Scale, *, zero_init_steps: int = 1, optimized_scale: bool = True,
                        quantity: str = "flow", schedule: Optional[NoiseSchedule] = None,
                        null=None) -> CFGZeroStarModel:
    """Wrap ``eps_model`` with CFG-Zero*; see :class:`CFGZeroStarModel`. Chapter 9b, eq. (cfg-zero-star)."""
    return CFGZeroStarModel(eps_model, gamma, zero_init_steps=zero_init_steps, optimized_scale=optimized_scale,
                            quantity=quantity, schedule=schedule, null=null)
