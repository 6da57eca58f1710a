"""Guidance as model wrappers: classifier guidance and classifier-free guidance (CFG), and their refinements.

Each wrapper takes a model with the contract ``eps_model(x_t, t, cond) -> eps``
(:class:`tutorial_pkg.models.EpsModel`) and is again such a model, a :class:`tutorial_pkg.models.Wrapper`
that keeps the model it wraps as ``inner_model`` and passes on its ``null_value``. So every sampler of
:mod:`tutorial_pkg.sampling` runs every kind of guidance, and wrappers stack: CFG over classifier
guidance, autoguidance over CFG, a guidance interval over either.

A wrapper's call reads no values and so never stalls an accelerator: where a step's scale is known on the
host (the samplers pass ``t`` as an int), CFG evaluates only the branches the step needs. The guidance
arithmetic runs in float32 (or float64 for float64 inputs), also under autocast.

Derived in chapter 3 (``book/03_classifier_guidance``, eq. ``bayes-score``, ``guided-eps``), chapter 4
(``book/04_taylor_gaussian_shift``, eq. ``taylor-shift``), chapter 5 (``book/05_classifier_free_guidance``,
eq. ``cfg``) and chapter 8 (``book/08_what_guidance_samples``, eq. ``cfg-rescale``).
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch

from . import _checks, models
from .schedules import NoiseSchedule

Tensor = torch.Tensor
Scale = Union[float, Tensor, Callable[[Union[int, Tensor]], Union[float, Tensor]]]

__all__ = ["cfg", "classifier_guided_eps", "shifted_mean", "grad_log_likelihood", "CFGModel", "cfg_model",
           "ClassifierGuidedModel", "classifier_guided_model", "rescale_cfg", "GuidanceInterval",
           "guidance_interval", "AutoguidanceModel", "autoguidance_model", "convert_scale", "SCALE_CONVENTIONS"]


def _f32(x: Tensor) -> Tensor:
    """Upcast to at least float32: the guidance arithmetic never runs in half precision."""
    return x.to(_checks.compute_dtype(x))


def _check_scale(name: str, value, *, low: float = 0.0):
    """A scale: a number >= ``low`` (checked now, on the host), a tensor, or a schedule ``scale(t)``."""
    if callable(value):
        return value
    if isinstance(value, Tensor) and value.numel() != 1:
        _checks.tensor(name, value, floating=True, finite=False)
        return value
    return _checks.real(name, value, low=low)


def _at(scale, t):
    """The scale at step ``t``: a number stays a number, a schedule is evaluated (an int t gives a number)."""
    return scale(t) if callable(scale) else scale


def cfg(eps_cond: Tensor, eps_uncond: Tensor, gamma) -> Tensor:
    """Classifier-free guidance, eq. (cfg) of chapter 5: ``gamma * eps_cond + (1 - gamma) * eps_uncond``.

    ``gamma = 1`` is the conditional model, ``gamma = 0`` the unconditional one, ``gamma > 1`` guides.
    ``gamma`` is a number >= 0 or a ``(B,)`` tensor. In Ho & Salimans' convention ``w = gamma - 1``.
    Shapes ``(B, ...)``; the two predictions must match in shape and device.
    """
    _checks.tensor("eps_cond", eps_cond, floating=True, finite=False)
    _checks.tensor("eps_uncond", eps_uncond, floating=True, finite=False)
    _checks.same_tensor_kind("eps_uncond", eps_uncond, "eps_cond", eps_cond, dtype=False)
    if callable(gamma):
        raise TypeError("gamma must be a number or a (B,) tensor here; a schedule gamma(t) belongs to cfg_model")
    eps_c, eps_u = _f32(eps_cond), _f32(eps_uncond)
    gamma = _checks.per_sample("gamma", _check_scale("gamma", gamma), eps_c)
    return eps_u + gamma * (eps_c - eps_u)


def classifier_guided_eps(eps: Tensor, grad_log_p: Tensor, alpha_bar_t, scale) -> Tensor:
    """The epsilon form of classifier guidance, eq. (guided-eps) of chapter 3.

    ``eps_hat = eps - scale * sqrt(1 - alpha_bar_t) * grad_log_p``, from score = -eps / sqrt(1 - ab).
    ``alpha_bar_t`` is a number in (0, 1] or a tensor broadcastable to ``eps`` (e.g. shape ``(B, 1)``).
    """
    _checks.tensor("eps", eps, floating=True, finite=False)
    _checks.tensor("grad_log_p", grad_log_p, floating=True, finite=False)
    _checks.same_tensor_kind("grad_log_p", grad_log_p, "eps", eps, dtype=False)
    eps32 = _f32(eps)
    scale = _checks.per_sample("scale", _check_scale("scale", scale), eps32)
    if not isinstance(alpha_bar_t, Tensor):
        alpha_bar_t = _checks.real("alpha_bar_t", alpha_bar_t, low=0.0, high=1.0, low_open=True)
    root = (1.0 - _checks.per_sample("alpha_bar_t", alpha_bar_t, eps32, scale=False)) ** 0.5
    return eps32 - scale * root * _f32(grad_log_p)


def shifted_mean(mean: Tensor, variance, grad_log_p: Tensor, scale) -> Tensor:
    """The Taylor-shifted mean of chapter 4, eq. (taylor-shift): ``mean + scale * variance * grad``.

    ``variance`` is the reverse step's (diagonal) variance Sigma_t: a number >= 0 or a broadcastable tensor.
    """
    _checks.tensor("mean", mean, floating=True, finite=False)
    _checks.tensor("grad_log_p", grad_log_p, floating=True, finite=False)
    _checks.same_tensor_kind("grad_log_p", grad_log_p, "mean", mean, dtype=False)
    mean32 = _f32(mean)
    scale = _checks.per_sample("scale", _check_scale("scale", scale), mean32)
    if not isinstance(variance, Tensor):
        variance = _checks.real("variance", variance, low=0.0)
    return mean32 + scale * _checks.per_sample("variance", variance, mean32, scale=False) * _f32(grad_log_p)


def _log_prob_fn(predictor):
    fn = getattr(predictor, "log_prob", predictor)
    if not callable(fn):
        raise TypeError("predictor must have a log_prob(x_t, t, target) method or be such a callable, "
                        f"got {type(predictor).__name__}")
    return fn


def grad_log_likelihood(predictor, x_t: Tensor, t, target) -> Tensor:
    """grad_x log p_phi(target | x_t, t) for every sample of the batch, by autograd. Chapter 3.

    ``predictor`` is a noise-aware classifier or regressor of :mod:`tutorial_pkg.nets` (anything with
    ``log_prob(x_t, t, target) -> (B,)``), or such a callable. The log-probabilities are **summed** over
    the batch before differentiating: each sample's term depends on its own x_t only, so each sample keeps
    its own gradient (a mean would divide every gradient by B). Returns a tensor shaped like ``x_t``.
    """
    fn = _log_prob_fn(predictor)
    _checks.tensor("x_t", x_t, floating=True, finite=False)
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        log_p = fn(x, t, target)
        if not isinstance(log_p, Tensor) or log_p.shape != (x_t.shape[0],):
            got = tuple(log_p.shape) if isinstance(log_p, Tensor) else type(log_p).__name__
            raise ValueError(f"predictor.log_prob must return shape ({x_t.shape[0]},), got {got}")
        (grad,) = torch.autograd.grad(log_p.sum(), x)
    return grad


def _condition_tensor(cond, x_t: Tensor) -> Tensor:
    """``cond`` as a tensor of one condition per row, ``(B, ...)``, on ``x_t``'s device (shapes checked)."""
    if not isinstance(x_t, Tensor):
        raise TypeError(f"x_t must be a torch.Tensor, got {type(x_t).__name__}")
    cond = torch.as_tensor(cond, device=x_t.device)
    if cond.ndim == 0:
        return cond.expand(x_t.shape[0])
    if cond.shape[0] != x_t.shape[0]:
        raise ValueError(f"cond has batch size {cond.shape[0]}, but x_t has batch size {x_t.shape[0]}")
    return cond


def _twice(t):
    """The timestep of a batch stacked on itself: an int stays an int."""
    return torch.cat([t, t]) if isinstance(t, Tensor) and t.ndim == 1 else t


class CFGModel(models.Wrapper):
    """Classifier-free guidance around one conditional network, eq. (cfg) of chapter 5.

    Both branches run in **one** batched forward pass of ``2B`` rows: rows ``0 .. B-1`` carry the condition,
    rows ``B .. 2B-1`` the null condition. ``gamma`` is a number, a ``(B,)`` tensor, or a schedule
    ``gamma(t)`` such as :func:`guidance_interval`. Where a step's gamma is a number (the samplers pass ``t``
    as an int, so a schedule then gives one), a step with gamma = 1 evaluates only the conditional branch and
    one with gamma = 0 only the unconditional one: an interval pays only for the steps inside it.
    ``cond`` is a ``(B,)`` or ``(B, ...)`` tensor; the null rows are built from ``null`` (a number, or a
    tensor of the condition's trailing shape).
    """

    def __init__(self, eps_model, gamma: Scale, *, null=None, rescale: float = 0.0):
        super().__init__(eps_model, name="eps_model")
        self.gamma = _check_scale("gamma", gamma)
        self.rescale = _checks.real("rescale", rescale, low=0.0, high=1.0)
        self.null = models.null_value(eps_model) if null is None else null
        if self.null is None:
            raise ValueError("null must be given: the condition value that stands for 'no condition' "
                             "(the package's networks and exact models carry it as .null_value)")
        self._null_on = {}           # the null row, cast once per device and dtype

    @property
    def null_value(self):
        return self.null

    def __repr__(self) -> str:
        return f"CFGModel(gamma={self.gamma!r}, rescale={self.rescale})"

    def _null_rows(self, cond: Tensor) -> Tensor:
        if not isinstance(self.null, Tensor):
            return models.null_rows(self.null, cond)
        key = (cond.device, cond.dtype)
        if key not in self._null_on:
            self._null_on[key] = self.null.to(device=cond.device, dtype=cond.dtype)
        return models.null_rows(self._null_on[key], cond)

    def __call__(self, x_t: Tensor, t, cond) -> Tensor:
        if cond is None:
            raise ValueError("cond must be given to a CFG model: guidance needs a condition to move towards")
        cond = _condition_tensor(cond, x_t)
        gamma = _at(self.gamma, t)
        if not isinstance(gamma, Tensor) and gamma == 1.0:         # one branch only, decided on the host
            return _f32(self.inner_model(x_t, t, cond))
        if not isinstance(gamma, Tensor) and gamma == 0.0:
            return _f32(self.inner_model(x_t, t, self._null_rows(cond)))
        eps = self.inner_model(torch.cat([x_t, x_t]), _twice(t), torch.cat([cond, self._null_rows(cond)]))
        eps_cond, eps_uncond = eps.chunk(2)
        guided = cfg(eps_cond, eps_uncond, gamma)
        return rescale_cfg(guided, eps_cond, self.rescale) if self.rescale > 0 else guided


def cfg_model(eps_model, gamma: Scale, *, null=None, rescale: float = 0.0) -> CFGModel:
    """Wrap ``eps_model`` with classifier-free guidance at scale ``gamma``; see :class:`CFGModel`.

    ``null`` defaults to ``eps_model.null_value``: 0.0 for the lecture's ``null="zero"`` networks, the
    masked value for ``null="learned"`` networks and -1 (the marginal) for exact mixtures. ``gamma`` may be
    a schedule ``gamma(t)`` such as :func:`guidance_interval`. ``rescale`` is the phi of :func:`rescale_cfg`.
    """
    return CFGModel(eps_model, gamma, null=null, rescale=rescale)


def rescale_cfg(eps_guided: Tensor, eps_cond: Tensor, phi: float) -> Tensor:
    """CFG rescale (Lin et al. 2024, Algorithm 2), chapter 8, eq. (cfg-rescale).

    Large gamma inflates the standard deviation of the guided prediction. Rescale it, per sample, to the
    standard deviation of the conditional prediction, and blend: ``phi * rescaled + (1 - phi) * eps_guided``.
    ``phi = 0`` returns ``eps_guided`` unchanged. As in diffusers, the statistics are taken over all
    dimensions but the batch.
    """
    _checks.tensor("eps_guided", eps_guided, floating=True, finite=False)
    _checks.tensor("eps_cond", eps_cond, floating=True, finite=False)
    _checks.same_tensor_kind("eps_cond", eps_cond, "eps_guided", eps_guided, dtype=False)
    phi = _checks.real("phi", phi, low=0.0, high=1.0)
    guided, cond = _f32(eps_guided), _f32(eps_cond)
    if phi == 0.0:
        return guided
    if guided.ndim < 2 or guided.shape[1:].numel() < 2:
        raise ValueError(f"eps_guided must hold at least two values per sample to rescale their standard "
                         f"deviation, got shape {tuple(guided.shape)}")
    dims = tuple(range(1, guided.ndim))
    std_guided = guided.std(dim=dims, keepdim=True)
    # divide before multiplying: the ratio of the stds overflows for a nearly constant prediction. A sample
    # whose guided prediction has no spread at all has none to rescale: it is kept as it is
    rescaled = torch.where(std_guided > 0, guided / std_guided * cond.std(dim=dims, keepdim=True), guided)
    return phi * rescaled + (1.0 - phi) * guided


class GuidanceInterval:
    """A scale that guides only for ``t_low <= t <= t_high`` (package steps) and is ``outside`` elsewhere.

    Kynkäänniemi et al. (2024) apply CFG in a limited interval of noise levels; chapter 8. Pass it as
    ``gamma`` to :func:`cfg_model` (``outside=1``: no guidance), or as ``scale`` to
    :func:`classifier_guided_model` (``outside=0``). For an int ``t`` it returns a number, so CFG skips the
    unconditional branch outside the interval; for a tensor ``t`` it returns one value per sample.
    """

    def __init__(self, gamma: float, t_low: int, t_high: int, *, outside: float = 1.0):
        self.gamma = _checks.real("gamma", gamma, low=0.0)
        self.t_low = _checks.integer("t_low", t_low, low=0)
        self.t_high = _checks.integer("t_high", t_high, low=self.t_low)
        self.outside = _checks.real("outside", outside, low=0.0)

    def __repr__(self) -> str:
        return f"GuidanceInterval(gamma={self.gamma}, t_low={self.t_low}, t_high={self.t_high}, outside={self.outside})"

    def inside(self, t: int) -> bool:
        """Whether the package step ``t`` (an int) lies in the interval."""
        return self.t_low <= _checks.integer("t", t) <= self.t_high

    def __call__(self, t):
        if isinstance(t, Tensor):
            if t.is_floating_point():
                raise TypeError(f"t must be an int or an integer tensor, got dtype {t.dtype}")
            inside = (t >= self.t_low) & (t <= self.t_high)
            return torch.where(inside, self.gamma, self.outside).to(torch.float32)
        return self.gamma if self.inside(t) else self.outside


def guidance_interval(gamma: float, t_low: int, t_high: int, *, outside: float = 1.0) -> GuidanceInterval:
    """A scale schedule that is ``gamma`` for ``t_low <= t <= t_high`` and ``outside`` elsewhere; see
    :class:`GuidanceInterval`. A constant gamma is the interval ``[0, T-1]``."""
    return GuidanceInterval(gamma, t_low, t_high, outside=outside)


class AutoguidanceModel(models.Wrapper):
    """Autoguidance (Karras et al. 2024), chapter 8: guide a model with a weaker version of itself.

    ``gamma * eps_model(x_t, t, c) + (1 - gamma) * weak_model(x_t, t, c)``: both see the *same* condition;
    the weak model (smaller, or trained for less time) plays the part of the unconditional branch of CFG.
    ``inner_model`` is the strong model, whose ``null_value`` it passes on; a step whose gamma is 1 on the
    host evaluates the strong model only.
    """

    def __init__(self, eps_model, weak_model, gamma: Scale):
        super().__init__(eps_model, name="eps_model")
        if not callable(weak_model):
            raise TypeError(f"weak_model must be callable, got {type(weak_model).__name__}")
        self.weak_model, self.gamma = weak_model, _check_scale("gamma", gamma)

    def __repr__(self) -> str:
        return f"AutoguidanceModel(gamma={self.gamma!r})"

    def __call__(self, x_t: Tensor, t, cond) -> Tensor:
        gamma = _at(self.gamma, t)
        strong = self.inner_model(x_t, t, cond)
        if not isinstance(gamma, Tensor) and gamma == 1.0:
            return _f32(strong)
        return cfg(strong, self.weak_model(x_t, t, cond), gamma)


def autoguidance_model(eps_model, weak_model, gamma: Scale) -> AutoguidanceModel:
    """Wrap ``eps_model`` with autoguidance by ``weak_model``; see :class:`AutoguidanceModel`."""
    return AutoguidanceModel(eps_model, weak_model, gamma)


class ClassifierGuidedModel(models.Wrapper):
    """Classifier guidance around an (un)conditional eps-model and a noise-aware predictor. Chapters 3-4.

    ``form="eps"`` gives eq. (guided-eps): eps - s sqrt(1 - ab_t) grad log p_phi(cond | x_t), for every sampler.
    ``form="mean"`` gives the mean shift of eq. (taylor-shift) for a DDPM step, mu + s Sigma_t g, written as
    the eps that produces it: eps - s Sigma_t sqrt(alpha_t) sqrt(1 - ab_t) / beta_t * g, with Sigma_t the
    ``variance`` of the DDPM sampler (``"small"`` or ``"large"``), the variance of the noise that sampler adds:
    0 at t = 0, where :func:`~tutorial_pkg.sampling.ddpm_coefficients` adds none, so the last step gets no mean
    shift with either variance. That form fits that sampler only, and says so in ``sampler_requirement``: any
    other sampler refuses it. The gradient is taken at x_t.

    ``model_cond`` passes ``cond`` to the eps-model too (guiding a conditional model, Dhariwal & Nichol's best
    setting); otherwise the eps-model is called with ``cond=None``. Rows whose condition is the null condition
    (as CFG sends them, when it wraps this model) get no gradient: they are the unconditional branch.
    """

    def __init__(self, eps_model, predictor, schedule: NoiseSchedule, scale: Scale, *, form: str = "eps",
                 variance: str = "small", model_cond: bool = False):
        super().__init__(eps_model, name="eps_model")
        _log_prob_fn(predictor)
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        _checks.choice("form", form, ("eps", "mean"))
        _checks.choice("variance", variance, ("small", "large"))
        if not isinstance(model_cond, bool):
            raise TypeError(f"model_cond must be True or False, got {type(model_cond).__name__} {model_cond!r}")
        self.predictor, self.schedule, self.scale = predictor, schedule, _check_scale("scale", scale)
        self.form, self.variance, self.model_cond = form, variance, model_cond
        # per-step factor k_t so that eps_hat = eps - s * k_t * g
        ab = schedule.alpha_bars
        if form == "eps":
            self._factor = (1.0 - ab).sqrt()
        else:
            sigma = schedule.posterior_variances if variance == "small" else schedule.betas.clone()
            sigma[0] = 0.0          # the last step adds no noise (ddpm_coefficients), so it has no shift
            self._factor = sigma * schedule.alphas.sqrt() * (1.0 - ab).sqrt() / schedule.betas
            self.sampler_requirement = ("ddpm", variance)

    def __repr__(self) -> str:
        return f"ClassifierGuidedModel(scale={self.scale!r}, form={self.form!r}, variance={self.variance!r})"

    @property
    def null_value(self):
        return models.null_value(self.inner_model) if self.model_cond else None

    def check_condition(self, cond) -> None:
        """Check the target once, at a sampler's door: by the predictor, and by the eps-model if it sees it."""
        check = getattr(self.predictor, "check_target", None)
        if callable(check):
            check(cond)
        inner = getattr(self.inner_model, "check_condition", None)
        if self.model_cond and callable(inner):
            inner(cond)

    def __call__(self, x_t: Tensor, t, cond) -> Tensor:
        if cond is None:
            raise ValueError("cond must be given: the target that the predictor's gradient pulls towards")
        eps = _f32(self.inner_model(x_t, t, cond if self.model_cond else None))
        scale = _at(self.scale, t)
        if not isinstance(scale, Tensor) and scale == 0:
            return eps
        target, keep = _condition_tensor(cond, x_t), None
        null = models.null_value(self.inner_model) if self.model_cond else None
        if null is not None:                    # null rows: a valid placeholder target, and no gradient
            keep = ~models.is_null(target, null)
            target = torch.where(keep.reshape(-1, *[1] * (target.ndim - 1)), target, target.new_zeros(()))
        grad = _f32(grad_log_likelihood(self.predictor, x_t, t, target))
        if keep is not None:
            grad = grad * keep.reshape(-1, *[1] * (grad.ndim - 1))
        factor = self.schedule.gather(self._factor, t, eps)
        return eps - _checks.per_sample("scale", scale, eps) * factor * grad


def classifier_guided_model(eps_model, predictor, schedule: NoiseSchedule, scale: Scale, *, form: str = "eps",
                            variance: str = "small", model_cond: bool = False) -> ClassifierGuidedModel:
    """Wrap ``eps_model`` with classifier guidance by ``predictor``; see :class:`ClassifierGuidedModel`."""
    return ClassifierGuidedModel(eps_model, predictor, schedule, scale, form=form, variance=variance,
                                 model_cond=model_cond)


# name -> (gamma from value, value from gamma); chapter 5, table "conventions"
SCALE_CONVENTIONS = {
    "gamma": (lambda v: v, lambda g: g),              # this book, Luo (2022)
    "w": (lambda v: v + 1.0, lambda g: g - 1.0),      # Ho & Salimans (2022): (1 + w) eps_c - w eps_u
    "guidance_scale": (lambda v: v, lambda g: g),     # diffusers: eps_u + guidance_scale (eps_c - eps_u)
    "classifier_scale": (lambda v: v, lambda g: g),   # Dhariwal & Nichol (2021) s, on an unconditional model
}


def convert_scale(value: float, *, from_: str, to: str) -> float:
    """Convert a guidance strength between conventions: ``"gamma"``, ``"w"``, ``"guidance_scale"``,
    ``"classifier_scale"``. E.g. ``convert_scale(3.0, from_="gamma", to="w") == 2.0``. Chapter 5.

    ``classifier_scale`` is Dhariwal & Nichol's s applied to an *unconditional* model, which equals
    gamma for exact scores (chapter 5, eq. ``cfg-equals-cg``).
    """
    _checks.choice("from_", from_, SCALE_CONVENTIONS)
    _checks.choice("to", to, SCALE_CONVENTIONS)
    value = _checks.real("value", value)
    gamma = SCALE_CONVENTIONS[from_][0](value)
    if gamma < 0:
        raise ValueError(f"value {value} in convention {from_!r} is gamma = {gamma} < 0; guidance needs gamma >= 0")
    return SCALE_CONVENTIONS[to][1](gamma)
