"""The model contract: one callable for every network, exact model and guided combination.

Every model of the book is an :class:`EpsModel`, a callable ``eps_model(x_t, t, cond) -> eps``:

* ``x_t``: the noisy state, ``(B, ...)``;
* ``t``: an ``int``, the same step for the whole batch (what the samplers pass), or a long tensor of shape
  ``(B,)``, one step per row (what training passes);
* ``cond``: ``None`` (no condition), or a tensor of shape ``(B,)`` or ``(B, ...)``: class labels, energies,
  a vector of properties;
* optionally ``null_value``: the condition value that means "no condition", a number or a tensor of the
  condition's trailing shape (chapter 5).

A guidance method **wraps** a model and is again a model (k-diffusion's ``inner_model``). Every wrapper of the
package derives from :class:`Wrapper`: it keeps the model it wraps as ``inner_model`` and passes on what a
caller asks of it, such as ``null_value``, so wrappers stack in any order. Adaptors between the four
parameterisations, eps, x0, v and the score (:func:`as_eps_model`, :func:`as_prediction`), are wrappers too:
a network that predicts x0 runs in every sampler and under every guidance (smalldiffusion's ``PredX0``).

Chapter 1 (``book/01_score_based_diffusion``, eq. ``eps-score``) introduces the contract; chapter 5
(``book/05_classifier_free_guidance``) the null condition; chapter 1 also writes the x0-prediction, eq.
``x0-from-eps``.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Protocol, Union, runtime_checkable

import torch

from . import _checks

Tensor = torch.Tensor

__all__ = ["EpsModel", "Wrapper", "Counted", "null_value", "null_rows", "is_null", "wrapped_models", "check_sampler", "check_condition",
           "PREDICTIONS", "as_eps_model", "as_prediction", "EpsFromPrediction", "PredictionFromEps"]


@runtime_checkable
class EpsModel(Protocol):
    """The book's one model contract: ``eps_model(x_t, t, cond) -> eps`` of the shape of ``x_t``.

    ``t`` is an ``int`` or a long tensor of shape ``(B,)``; ``cond`` is ``None`` or a tensor ``(B,)`` or
    ``(B, ...)``. A conditional model may carry ``null_value``, the condition that means "no condition".
    """

    def __call__(self, x_t: Tensor, t: Union[int, Tensor], cond: Any) -> Tensor: ...


class Wrapper:
    """The base of every wrapper: the wrapped model is ``inner_model``, and any attribute the wrapper does not
    have itself is looked up there, so a stack of wrappers answers for its innermost model (``null_value``,
    ``check_condition``, ...). Subclasses implement ``__call__(x_t, t, cond)``."""

    def __init__(self, inner_model, *, name: str = "inner_model"):
        if not callable(inner_model):
            raise TypeError(f"{name} must be callable as model(x_t, t, cond), got {type(inner_model).__name__}")
        self.inner_model = inner_model

    def __getattr__(self, name: str):
        # only reached for attributes the wrapper lacks; dunder names and inner_model itself stay local
        if name.startswith("__") or name == "inner_model":
            raise AttributeError(name)
        return getattr(self.inner_model, name)

    def __call__(self, x_t: Tensor, t, cond) -> Tensor:  # pragma: no cover - every subclass defines it
        raise NotImplementedError


class Counted(Wrapper):
    """Counts what a model costs: the rows it evaluates (``rows``) and its calls (``calls``), and the rows and
    passes of the backward passes that autograd runs through it (``backward_rows``, ``backward_calls``).

    Wraps an eps-model (its calls are counted) or a predictor (its ``log_prob`` calls are counted), and
    stays transparent: a stack that holds it is still a model, with the same ``null_value``. A backward pass
    is counted by a hook on the output, each time a gradient flows back through it (classifier guidance
    through a predictor, chapter 9's guidance through the eps-network). Chapters 6, 7 and 9 to 11 count
    network evaluations with it.
    """

    def __init__(self, inner_model):
        if not (callable(inner_model) or callable(getattr(inner_model, "log_prob", None))):
            raise TypeError(f"inner_model must be a model or a predictor, got {type(inner_model).__name__}")
        self.inner_model, self.rows, self.calls = inner_model, 0, 0
        self.backward_rows, self.backward_calls = 0, 0

    def __repr__(self) -> str:
        return f"Counted({self.inner_model!r}, rows={self.rows}, backward_rows={self.backward_rows})"

    def _count(self, x_t) -> None:
        if not isinstance(x_t, Tensor):
            raise TypeError(f"x_t must be a torch.Tensor, got {type(x_t).__name__}")
        self.rows, self.calls = self.rows + x_t.shape[0], self.calls + 1

    def _count_backward(self, grad: Tensor) -> None:
        self.backward_rows += grad.shape[0] if grad.ndim else 1
        self.backward_calls += 1

    def _watch(self, out):
        if isinstance(out, Tensor) and out.requires_grad:       # a graph is recorded: count what flows back
            out.register_hook(self._count_backward)
        return out

    def __call__(self, x_t: Tensor, t, cond=None) -> Tensor:
        self._count(x_t)
        return self._watch(self.inner_model(x_t, t, cond))

    def log_prob(self, x_t: Tensor, t, target) -> Tensor:
        self._count(x_t)
        return self._watch(self.inner_model.log_prob(x_t, t, target))


def null_value(model):
    """The null condition of ``model`` (through any stack of wrappers), or ``None`` if it has none."""
    return getattr(model, "null_value", None)


def null_rows(null, cond: Tensor) -> Tensor:
    """A tensor like ``cond`` ``(B, ...)`` whose every row is the null condition ``null``.

    ``null`` is a number (every entry) or a tensor of the condition's trailing shape ``cond.shape[1:]``
    (one row, repeated). Built on ``cond``'s device in its dtype, with no host sync.
    """
    if isinstance(null, Tensor):
        if tuple(null.shape) != tuple(cond.shape[1:]):
            raise ValueError(f"null has shape {tuple(null.shape)}, but a condition row has shape "
                             f"{tuple(cond.shape[1:])}")
        return null.to(device=cond.device, dtype=cond.dtype).expand_as(cond)
    return torch.full_like(cond, null)


def is_null(cond: Tensor, null) -> Tensor:
    """Which rows of ``cond`` ``(B, ...)`` are the null condition ``null`` (NaN matches NaN): bool ``(B,)``."""
    rows = null_rows(null, cond)
    same = (cond == rows) | (torch.isnan(cond) & torch.isnan(rows)) if cond.is_floating_point() else cond == rows
    return same.reshape(cond.shape[0], -1).all(dim=1) if cond.ndim > 1 else same


def wrapped_models(model) -> Iterator:
    """``model`` and every model it wraps, outermost first (``inner_model``, and ``weak_model`` of autoguidance)."""
    todo = [model]
    while todo:
        m = todo.pop(0)
        yield m
        own = getattr(m, "__dict__", {})           # the wrapper's own attributes, not those it passes on
        todo += [own[k] for k in ("inner_model", "weak_model") if own.get(k) is not None]


def check_sampler(model, sampler: str, variance: Optional[str] = None) -> None:
    """Refuse, with a clear error, a model built for another sampler. A wrapper that fits one sampler only
    (the mean form of classifier guidance fits DDPM with the variance it was built for, chapter 4) says so
    in its ``sampler_requirement = (sampler, variance)``."""
    for m in wrapped_models(model):
        need = getattr(m, "__dict__", {}).get("sampler_requirement")
        if need is None:
            continue
        need_sampler, need_variance = need
        if sampler != need_sampler or variance != need_variance:
            used = f"{sampler}_sample" + (f"(variance={variance!r})" if variance else "")
            raise ValueError(f"eps_model {m!r} was built for {need_sampler}_sample(variance={need_variance!r}) and does "
                             f"not fit {used}: its mean shift uses that sampler's step variance (chapter 4). "
                             f"Sample it with ddpm_sample(variance={need_variance!r}), or use form='eps'")


def check_condition(model, cond, batch: int) -> None:
    """Check a sampler's ``cond`` once, at the door: its batch size, then its values, by the model's own
    ``check_condition(cond)`` (labels in range, energies finite, ...) if the model or one it wraps has one."""
    if cond is None or not isinstance(cond, Tensor):
        return
    if cond.ndim > 0 and cond.shape[0] != batch:
        raise ValueError(f"cond has batch size {cond.shape[0]}, but the samples have batch size {batch}")
    check = getattr(model, "check_condition", None)
    if callable(check):
        check(cond)


# -- parameterisations --------------------------------------------------------------------------------
PREDICTIONS = ("eps", "x0", "v", "score")


def _check_prediction(prediction: str) -> str:
    return _checks.choice("prediction", prediction, PREDICTIONS)


class EpsFromPrediction(Wrapper):
    """A model that predicts x0, v or the score, seen as an eps-model: every sampler and wrapper runs it.

    At a fixed x_t the four predictions are affine in each other (:class:`tutorial_pkg.schedules.NoiseSchedule`:
    ``predict_eps``, ``v_to_eps``, ``score_to_eps``); chapter 1, eq. (x0-from-eps).
    """

    def __init__(self, inner_model, schedule, prediction: str):
        super().__init__(inner_model, name="model")
        self.schedule, self.prediction = schedule, _check_prediction(prediction)

    def __repr__(self) -> str:
        return f"EpsFromPrediction({self.prediction!r})"

    def __call__(self, x_t: Tensor, t, cond) -> Tensor:
        out = self.inner_model(x_t, t, cond)
        if self.prediction == "x0":
            return self.schedule.predict_eps(x_t, t, out)
        if self.prediction == "v":
            return self.schedule.v_to_eps(x_t, t, out)
        if self.prediction == "score":
            return self.schedule.score_to_eps(out, t)
        return out


class PredictionFromEps(Wrapper):
    """An eps-model seen as a model that predicts x0 (Tweedie's estimate, eq. (x0-from-eps)), v or the score."""

    def __init__(self, inner_model, schedule, prediction: str):
        super().__init__(inner_model, name="model")
        self.schedule, self.prediction = schedule, _check_prediction(prediction)

    def __repr__(self) -> str:
        return f"PredictionFromEps({self.prediction!r})"

    def __call__(self, x_t: Tensor, t, cond) -> Tensor:
        eps = self.inner_model(x_t, t, cond)
        if self.prediction == "x0":
            return self.schedule.predict_x0(x_t, t, eps)
        if self.prediction == "v":
            return self.schedule.eps_to_v(x_t, t, eps)
        if self.prediction == "score":
            return self.schedule.eps_to_score(eps, t)
        return eps


def as_eps_model(model, schedule, prediction: str = "eps"):
    """``model`` (which predicts ``prediction``: ``"eps"``, ``"x0"``, ``"v"`` or ``"score"``) as an eps-model."""
    _check_prediction(prediction)
    return model if prediction == "eps" else EpsFromPrediction(model, schedule, prediction)


def as_prediction(eps_model, schedule, prediction: str):
    """The ``prediction`` (``"x0"``, ``"v"``, ``"score"`` or ``"eps"``) of an eps-model, as a model of the
    same signature: ``as_prediction(eps_model, schedule, "x0")(x_t, t, cond)`` is Tweedie's x0_hat."""
    _check_prediction(prediction)
    return eps_model if prediction == "eps" else PredictionFromEps(eps_model, schedule, prediction)
