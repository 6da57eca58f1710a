"""Guidance as model wrappers: classifier guidance and classifier-free guidance (CFG).

Each wrapper takes a model with the contract ``eps_model(x_t, t, cond) -> eps`` and returns another
model with the same contract, so every sampler of :mod:`tutorial_pkg.sampling` runs every kind of
guidance. The guidance arithmetic runs in float32 (or float64 for float64 inputs), also under autocast.

Derived in chapter 3 (``book/03_classifier_guidance``, eq. ``bayes-score``, ``guided-eps``), chapter 4
(``book/04_taylor_gaussian_shift``, eq. ``taylor-shift``) and chapter 5
(``book/05_classifier_free_guidance``, eq. ``cfg``).
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch

from . import _checks
from .schedules import NoiseSchedule

Tensor = torch.Tensor
Scale = Union[float, Tensor, Callable[[Tensor], Union[float, Tensor]]]

__all__ = ["cfg", "classifier_guided_eps", "shifted_mean", "grad_log_likelihood", "cfg_model",
           "classifier_guided_model", "convert_scale", "SCALE_CONVENTIONS", "CFGModel",
           "ClassifierGuidedModel", "rescale_cfg", "guidance_interval", "AutoguidanceModel",
           "autoguidance_model"]


def _f32(x: Tensor) -> Tensor:
    """Upcast to at least float32: the guidance arithmetic never runs in half precision."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _per_sample(name: str, value, like: Tensor, *, scale: bool = False) -> Union[float, Tensor]:
    """A scalar, or a ``(B,)`` tensor reshaped to broadcast against ``like``.

    Any other tensor must broadcast to the shape of ``like``; a guidance ``scale`` given as a 1-D tensor
    must hold one value per sample (a ``(D,)`` scale would silently weight the coordinates instead).
    """
    if not isinstance(value, Tensor):
        return value
    batch = like.shape[0] if like.ndim else 1
    if scale and value.ndim == 1 and value.numel() not in (1, batch):
        raise ValueError(f"{name} must be a number or a ({batch},) tensor, one value per sample, "
                         f"got shape {tuple(value.shape)}")
    if value.ndim == 1 and value.numel() == batch and like.ndim > 1:
        value = value.reshape(-1, *([1] * (like.ndim - 1)))
    try:
        fits = torch.broadcast_shapes(value.shape, like.shape) == like.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"{name} has shape {tuple(value.shape)}, which does not broadcast to {tuple(like.shape)}")
    # cast while moving: a float64 scale on the CPU never becomes a float64 tensor on an accelerator
    return value.to(device=like.device, dtype=torch.promote_types(like.dtype, torch.float32))


def cfg(eps_cond: Tensor, eps_uncond: Tensor, gamma) -> Tensor:
    """Classifier-free guidance, eq. (cfg) of chapter 5: ``gamma * eps_cond + (1 - gamma) * eps_uncond``.

    ``gamma = 1`` is the conditional model, ``gamma = 0`` the unconditional one, ``gamma > 1`` guides.
    ``gamma`` is a number >= 0 or a ``(B,)`` tensor. In Ho & Salimans' convention ``w = gamma - 1``.
    """
    return _cfg(eps_cond, eps_uncond, gamma, finite=True)


def _cfg(eps_cond: Tensor, eps_uncond: Tensor, gamma, *, finite: bool) -> Tensor:
    """:func:`cfg`. The model wrappers pass ``finite=False``: a NaN that the network returns goes on to the
    sampler, which names the step where the state became NaN."""
    _checks.tensor("eps_cond", eps_cond, floating=True, finite=finite)
    _checks.tensor("eps_uncond", eps_uncond, floating=True, finite=finite)
    _checks.same_tensor_kind("eps_uncond", eps_uncond, "eps_cond", eps_cond, dtype=False)
    gamma = _per_sample("gamma", _checks.scale("gamma", gamma), eps_cond, scale=True)
    eps_c, eps_u = _f32(eps_cond), _f32(eps_uncond)
    return eps_u + gamma * (eps_c - eps_u)


def classifier_guided_eps(eps: Tensor, grad_log_p: Tensor, alpha_bar_t, scale) -> Tensor:
    """The epsilon form of classifier guidance, eq. (guided-eps) of chapter 3.

    ``eps_hat = eps - scale * sqrt(1 - alpha_bar_t) * grad_log_p``, from score = -eps / sqrt(1 - ab).
    ``alpha_bar_t`` is a number or a tensor broadcastable to ``eps`` (e.g. shape ``(B, 1)``).
    """
    _checks.tensor("eps", eps, floating=True)
    _checks.tensor("grad_log_p", grad_log_p, floating=True)
    _checks.same_tensor_kind("grad_log_p", grad_log_p, "eps", eps, dtype=False)
    scale = _per_sample("scale", _checks.scale("scale", scale), eps, scale=True)
    if isinstance(alpha_bar_t, Tensor):
        _checks.tensor("alpha_bar_t", alpha_bar_t, floating=True)
        if bool(((alpha_bar_t <= 0) | (alpha_bar_t > 1)).any()):
            raise ValueError("alpha_bar_t must lie in (0, 1]")
        alpha_bar_t = _per_sample("alpha_bar_t", alpha_bar_t, eps)
        root = (1.0 - alpha_bar_t).sqrt()
    else:
        root = (1.0 - _checks.real("alpha_bar_t", alpha_bar_t, low=0.0, high=1.0, low_open=True)) ** 0.5
    return _f32(eps) - scale * root * _f32(grad_log_p)


def shifted_mean(mean: Tensor, variance, grad_log_p: Tensor, scale) -> Tensor:
    """The Taylor-shifted mean of chapter 4, eq. (taylor-shift): ``mean + scale * variance * grad``.

    ``variance`` is the reverse step's (diagonal) variance Sigma_t: a number or a broadcastable tensor.
    """
    _checks.tensor("mean", mean, floating=True)
    _checks.tensor("grad_log_p", grad_log_p, floating=True)
    _checks.same_tensor_kind("grad_log_p", grad_log_p, "mean", mean, dtype=False)
    scale = _per_sample("scale", _checks.scale("scale", scale), mean, scale=True)
    if isinstance(variance, Tensor):
        _checks.tensor("variance", variance, floating=True)
        if bool((variance < 0).any()):
            raise ValueError("variance must be >= 0 everywhere")
        variance = _per_sample("variance", variance, mean)
    else:
        variance = _checks.real("variance", variance, low=0.0)
    return _f32(mean) + scale * variance * _f32(grad_log_p)


def _log_prob_fn(predictor):
    fn = getattr(predictor, "log_prob", predictor)
    if not callable(fn):
        raise TypeError("predictor must have a log_prob(x_t, t, target) method or be such a callable, "
                        f"got {type(predictor).__name__}")
    return fn


def grad_log_likelihood(predictor, x_t: Tensor, t: Tensor, target) -> Tensor:
    """grad_x log p_phi(target | x_t, t) for every sample of the batch, by autograd. Chapter 3.

    ``predictor`` is a noise-aware classifier or regressor of :mod:`tutorial_pkg.nets` (anything with
    ``log_prob(x_t, t, target) -> (B,)``), or such a callable. The log-probabilities are **summed** over
    the batch before differentiating: each sample's term depends on its own x_t only, so each sample keeps
    its own gradient (a mean would divide every gradient by B). Returns a tensor shaped like ``x_t``.
    """
    fn = _log_prob_fn(predictor)
    _checks.tensor("x_t", x_t, floating=True)
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        log_p = fn(x, t, target)
        if not isinstance(log_p, Tensor) or log_p.shape != (x_t.shape[0],):
            got = tuple(log_p.shape) if isinstance(log_p, Tensor) else type(log_p).__name__
            raise ValueError(f"predictor.log_prob must return shape ({x_t.shape[0]},), got {got}")
        (grad,) = torch.autograd.grad(log_p.sum(), x)
    return grad


class CFGModel:
    """Classifier-free guidance around one conditional network, in **one** batched forward pass.

    The network sees ``2B`` rows: rows ``0 .. B-1`` carry the condition, rows ``B .. 2B-1`` the null
    condition; the output is split in that order and combined with :func:`cfg`. ``gamma`` may be a number
    or a function ``gamma(t) -> number or (B,) tensor`` of the long timestep tensor (chapter 8).
    """

    def __init__(self, eps_model, gamma: Scale, *, null=None, rescale: float = 0.0):
        if not callable(eps_model):
            raise TypeError(f"eps_model must be callable, got {type(eps_model).__name__}")
        if not callable(gamma):
            _checks.scale("gamma", gamma)
        self.rescale = _checks.real("rescale", rescale, low=0.0, high=1.0)
        if null is None:
            null = getattr(eps_model, "null_value", None)
        if null is None:
            raise ValueError("null must be given: the condition value that stands for 'no condition' "
                             "(the package's networks and exact models carry it as .null_value)")
        self.eps_model, self.gamma, self.null = eps_model, gamma, null

    def __repr__(self) -> str:
        return f"CFGModel(gamma={self.gamma!r}, null={self.null!r}, rescale={self.rescale})"

    def __call__(self, x_t: Tensor, t: Tensor, cond) -> Tensor:
        if cond is None:
            raise ValueError("cond must be given to a CFG model: guidance needs a condition to move towards")
        _checks.tensor("x_t", x_t, finite=False)
        gamma = self.gamma(t) if callable(self.gamma) else self.gamma
        cond = torch.as_tensor(cond, device=x_t.device)
        if cond.ndim == 0:
            cond = cond.expand(x_t.shape[0])
        if cond.shape != x_t.shape[:1]:
            raise ValueError(f"cond must be a number or have shape ({x_t.shape[0]},), got {tuple(cond.shape)}")
        null = torch.full_like(cond, self.null)
        eps = self.eps_model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, null]))
        eps_cond, eps_uncond = eps.chunk(2)
        guided = _cfg(eps_cond, eps_uncond, gamma, finite=False)
        return _rescale_cfg(guided, eps_cond, self.rescale, finite=False) if self.rescale > 0 else guided


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
    return _rescale_cfg(eps_guided, eps_cond, phi, finite=True)


def _rescale_cfg(eps_guided: Tensor, eps_cond: Tensor, phi: float, *, finite: bool) -> Tensor:
    """:func:`rescale_cfg`; ``finite=False`` for the model wrappers, as in :func:`_cfg`."""
    _checks.tensor("eps_guided", eps_guided, floating=True, finite=finite)
    _checks.tensor("eps_cond", eps_cond, floating=True, finite=finite)
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


def guidance_interval(gamma: float, t_low: int, t_high: int) -> Callable[[Tensor], Tensor]:
    """A gamma schedule that guides only for ``t_low <= t <= t_high`` (package steps) and is 1 elsewhere.

    Kynkäänniemi et al. (2024) apply guidance in a limited interval of noise levels; chapter 8. Pass the
    result as ``gamma`` to :func:`cfg_model`. A constant gamma is the interval ``[0, T-1]``.
    """
    gamma = _checks.real("gamma", gamma, low=0.0)
    t_low = _checks.integer("t_low", t_low, low=0)
    t_high = _checks.integer("t_high", t_high, low=t_low)

    def schedule(t: Tensor) -> Tensor:
        inside = (t >= t_low) & (t <= t_high)
        return torch.where(inside, torch.full(t.shape, gamma, device=t.device),
                           torch.ones(t.shape, device=t.device))

    schedule.__doc__ = f"gamma = {gamma} for {t_low} <= t <= {t_high}, else 1"
    return schedule


class AutoguidanceModel:
    """Autoguidance (Karras et al. 2024), chapter 8: guide a model with a weaker version of itself.

    ``gamma * eps_model(x_t, t, c) + (1 - gamma) * weak_model(x_t, t, c)``: both see the *same* condition;
    the weak model (smaller, or trained for less time) plays the part of the unconditional branch of CFG.
    """

    def __init__(self, eps_model, weak_model, gamma: Scale):
        for name, m in (("eps_model", eps_model), ("weak_model", weak_model)):
            if not callable(m):
                raise TypeError(f"{name} must be callable, got {type(m).__name__}")
        if not callable(gamma):
            _checks.scale("gamma", gamma)
        self.eps_model, self.weak_model, self.gamma = eps_model, weak_model, gamma

    def __repr__(self) -> str:
        return f"AutoguidanceModel(gamma={self.gamma!r})"

    def __call__(self, x_t: Tensor, t: Tensor, cond) -> Tensor:
        gamma = self.gamma(t) if callable(self.gamma) else self.gamma
        return _cfg(self.eps_model(x_t, t, cond), self.weak_model(x_t, t, cond), gamma, finite=False)


def autoguidance_model(eps_model, weak_model, gamma: Scale) -> AutoguidanceModel:
    """Wrap ``eps_model`` with autoguidance by ``weak_model``; see :class:`AutoguidanceModel`."""
    return AutoguidanceModel(eps_model, weak_model, gamma)


class ClassifierGuidedModel:
    """Classifier guidance around an (un)conditional eps-model and a noise-aware predictor. Chapters 3-4.

    ``form="eps"`` gives eq. (guided-eps): eps - s sqrt(1 - ab_t) grad log p_phi(cond | x_t).
    ``form="mean"`` gives the mean shift of eq. (taylor-shift) for a DDPM step, mu + s Sigma_t g, written
    as the eps that produces it: eps - s Sigma_t sqrt(alpha_t) sqrt(1 - ab_t) / beta_t * g, with
    Sigma_t the ``variance`` of the DDPM sampler (``"small"`` or ``"large"``). The gradient is taken at x_t.
    ``model_cond`` passes ``cond`` to the eps-model too (guiding a conditional model); otherwise the
    eps-model is called with ``cond=None``.
    """

    def __init__(self, eps_model, predictor, schedule: NoiseSchedule, scale: Scale, *, form: str = "eps",
                 variance: str = "small", model_cond: bool = False):
        if not callable(eps_model):
            raise TypeError(f"eps_model must be callable, got {type(eps_model).__name__}")
        _log_prob_fn(predictor)
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        if not callable(scale):
            _checks.scale("scale", scale)
        _checks.choice("form", form, ("eps", "mean"))
        _checks.choice("variance", variance, ("small", "large"))
        self.eps_model, self.predictor, self.schedule = eps_model, predictor, schedule
        self.scale, self.form, self.variance, self.model_cond = scale, form, variance, model_cond
        # per-step factor k_t so that eps_hat = eps - s * k_t * g
        ab = schedule.alpha_bars
        if form == "eps":
            self._factor = (1.0 - ab).sqrt()
        else:
            sigma = schedule.posterior_variances if variance == "small" else schedule.betas
            self._factor = sigma * schedule.alphas.sqrt() * (1.0 - ab).sqrt() / schedule.betas

    def __repr__(self) -> str:
        return f"ClassifierGuidedModel(scale={self.scale!r}, form={self.form!r})"

    def __call__(self, x_t: Tensor, t: Tensor, cond) -> Tensor:
        if cond is None:
            raise ValueError("cond must be given: the target that the predictor's gradient pulls towards")
        eps = self.eps_model(x_t, t, cond if self.model_cond else None)
        scale = self.scale(t) if callable(self.scale) else self.scale
        if not isinstance(scale, Tensor) and scale == 0:
            return eps
        grad = grad_log_likelihood(self.predictor, x_t, t, cond)
        factor = self.schedule.gather(self._factor, t, _f32(x_t))
        return _f32(eps) - _per_sample("scale", scale, x_t, scale=True) * factor * _f32(grad)


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
