"""Automatic checks for the assignments in ``book/assignments``.

Each ``check_*`` function calls a student's function on hidden random inputs, compares the result with
the package's reference implementation within a tolerance, and prints a short report: ``PASS``, or
``FAIL`` with a hint that names the likely mistake (a flipped sign, a missing square root, the w/gamma
off-by-one, a mean where a sum belongs). It never prints the reference values. A function that still
raises ``NotImplementedError`` is reported as "not implemented yet", without raising, so that a student
notebook with its TODOs unfilled still runs from top to bottom.

Every check returns a :class:`CheckResult`, so a notebook or a test can also assert on it.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch

from . import _checks, guidance, sampling
from .analytic import GaussianMixture
from .schedules import linear_schedule

Tensor = torch.Tensor

__all__ = ["CheckResult", "check_classifier_guided_eps", "check_shifted_mean", "check_grad_log_likelihood",
           "check_cfg", "check_drop_condition", "check_cfg_sampler", "check_energy_report"]


class CheckResult(NamedTuple):
    """The outcome of a check: ``status`` is ``"pass"``, ``"fail"`` or ``"not implemented"``."""

    name: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def _report(name: str, status: str, message: str) -> CheckResult:
    mark = {"pass": "PASS", "fail": "FAIL", "not implemented": "TODO"}[status]
    print(f"[{mark}] {name}: {message}")
    return CheckResult(name, status, message)


def _call(name: str, fn: Callable, *args):
    """Run the student's function; map NotImplementedError and crashes to a report instead of raising."""
    if not callable(fn):
        return None, _report(name, "fail", f"expected a function, got {type(fn).__name__}")
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, _report(name, "not implemented", "not implemented yet: fill in the TODO and run this cell again")
    except Exception as err:  # the student's code crashed: say where, not what the answer is
        return None, _report(name, "fail", f"your function raised {type(err).__name__}: {err}")


def _close(a, b, tol: float) -> bool:
    return isinstance(a, Tensor) and a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=tol, rtol=tol))


def _shape_hint(out, expected: Tensor) -> Optional[str]:
    if not isinstance(out, Tensor):
        return f"return a torch.Tensor, not {type(out).__name__}"
    if out.shape != expected.shape:
        return f"the result has shape {tuple(out.shape)}, expected {tuple(expected.shape)}"
    if not bool(torch.isfinite(out).all()):
        return "the result holds NaN or infinite values"
    return None


def _diagnose(name: str, out, expected: Tensor, suspects: dict, tol: float) -> CheckResult:
    hint = _shape_hint(out, expected)
    if hint is None and _close(out, expected, tol):
        return _report(name, "pass", "matches the reference on hidden random inputs")
    if hint is None:
        hint = next((h for h, wrong in suspects.items() if _close(out, wrong, tol)),
                    "the values differ from the reference; re-derive the formula from the chapter")
    return _report(name, "fail", hint)


def _inputs(seed: int, B: int = 16, D: int = 3):
    g = torch.Generator().manual_seed(seed)
    eps, grad = torch.randn(2, B, D, generator=g, dtype=torch.float64)
    alpha_bar = 0.05 + 0.9 * torch.rand(B, 1, generator=g, dtype=torch.float64)
    return eps, grad, alpha_bar


# -- assignment 1: classifier guidance ----------------------------------------------------------------
def check_classifier_guided_eps(fn: Callable, *, seed: int = 0) -> CheckResult:
    """``fn(eps, grad_log_p, alpha_bar_t, scale)``: the guided eps of chapter 3, eq. (guided-eps)."""
    name = "classifier-guided eps"
    eps, grad, ab = _inputs(seed)
    scale = 2.5
    out, failed = _call(name, fn, eps, grad, ab, scale)
    if failed:
        return failed
    expected = guidance.classifier_guided_eps(eps, grad, ab, scale)
    suspects = {
        "check the sign: the gradient of log p(E | x_t) is *subtracted* from eps (score = -eps / sqrt(1 - ab))":
            eps + scale * (1 - ab).sqrt() * grad,
        "the factor is sqrt(1 - alpha_bar), not (1 - alpha_bar)": eps - scale * (1 - ab) * grad,
        "the gradient needs the factor sqrt(1 - alpha_bar) from eq. (eps-score)": eps - scale * grad,
        "the scale multiplies the gradient term only": scale * (eps - (1 - ab).sqrt() * grad),
        "use sqrt(1 - alpha_bar), not sqrt(alpha_bar)": eps - scale * ab.sqrt() * grad,
    }
    return _diagnose(name, out, expected, suspects, 1e-6)


def check_shifted_mean(fn: Callable, *, seed: int = 1) -> CheckResult:
    """``fn(mean, variance, grad_log_p, scale)``: the Taylor-shifted mean of chapter 4, eq. (taylor-shift)."""
    name = "Taylor-shifted mean"
    mean, grad, _ = _inputs(seed)
    variance = 0.01 + torch.rand(mean.shape, generator=torch.Generator().manual_seed(seed + 100), dtype=torch.float64)
    scale = 3.0
    out, failed = _call(name, fn, mean, variance, grad, scale)
    if failed:
        return failed
    expected = guidance.shifted_mean(mean, variance, grad, scale)
    suspects = {
        "check the sign: the mean moves *along* the gradient of log p_phi": mean - scale * variance * grad,
        "the shift is Sigma g, the variance times the gradient, not the standard deviation":
            mean + scale * variance.sqrt() * grad,
        "the shift needs the variance Sigma: completing the square gives mu + s Sigma g": mean + scale * grad,
    }
    return _diagnose(name, out, expected, suspects, 1e-6)


class _ToyPredictor:
    """A hidden, fixed noise-aware classifier whose samples interact only with themselves."""

    def __init__(self, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(3, 4, generator=g, dtype=torch.float64)
        self.b = torch.randn(4, generator=g, dtype=torch.float64)

    def log_prob(self, x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
        logits = torch.tanh(x_t @ self.W) * (1 + t[:, None].to(x_t.dtype) / 100) + self.b
        return torch.log_softmax(logits, dim=1).gather(1, y[:, None])[:, 0]


def check_grad_log_likelihood(fn: Callable, *, seed: int = 2) -> CheckResult:
    """``fn(predictor, x_t, t, target)``: per-sample gradients of log p_phi(target | x_t) by autograd."""
    name = "gradient of log p_phi"
    g = torch.Generator().manual_seed(seed)
    predictor = _ToyPredictor(seed)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, 100, (12,), generator=g)
    y = torch.randint(0, 4, (12,), generator=g)
    out, failed = _call(name, fn, predictor, x, t, y)
    if failed:
        return failed
    expected = guidance.grad_log_likelihood(predictor, x, t, y)
    suspects = {
        "you took the mean over the batch before differentiating: sum instead, so that each sample keeps "
        "its own gradient (a mean divides every gradient by the batch size)": expected / x.shape[0],
        "check the sign: this is the gradient of log p, not of -log p": -expected,
    }
    if isinstance(out, Tensor):
        out = out.detach()
    return _diagnose(name, out, expected, suspects, 1e-6)


# -- assignment 2: classifier-free guidance ------------------------------------------------------------
def check_cfg(fn: Callable, *, seed: int = 3) -> CheckResult:
    """``fn(eps_cond, eps_uncond, gamma)``: the CFG combination of chapter 5, eq. (cfg), in the gamma convention."""
    name = "classifier-free guidance"
    eps_c, eps_u, _ = _inputs(seed)
    gamma = 3.0
    out, failed = _call(name, fn, eps_c, eps_u, gamma)
    if failed:
        return failed
    expected = guidance.cfg(eps_c, eps_u, gamma)
    suspects = {
        "off by one: you used gamma as Ho & Salimans' w; in this book's convention the weights are gamma and "
        "1 - gamma (w = gamma - 1)": (1 + gamma) * eps_c - gamma * eps_u,
        "the weights are swapped: gamma multiplies the conditional prediction": gamma * eps_u + (1 - gamma) * eps_c,
        "the unconditional weight is 1 - gamma, which is negative for gamma > 1": gamma * eps_c + (gamma - 1) * eps_u,
    }
    return _diagnose(name, out, expected, suspects, 1e-6)


def check_drop_condition(fn: Callable, *, seed: int = 4) -> CheckResult:
    """``fn(cond, p_uncond, null, generator)``: condition dropout of chapter 5, eq. (cfg-dropout)."""
    name = "condition dropout"
    n, p, null = 20_000, 0.2, -1
    cond = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(seed))
    out, failed = _call(name, fn, cond.clone(), p, null, torch.Generator().manual_seed(seed + 1))
    if failed:
        return failed
    hint = _shape_hint(out, cond)
    if hint is not None:
        return _report(name, "fail", hint)
    dropped = out == null
    kept_ok = bool(torch.equal(out[~dropped], cond[~dropped]))
    rate = dropped.double().mean().item()
    se = math.sqrt(p * (1 - p) / n)
    if not kept_ok:
        return _report(name, "fail", "rows that are not dropped must keep their own condition")
    if abs(rate - (1 - p)) < 5 * se:
        return _report(name, "fail", f"you dropped the condition in a share {rate:.2f} of the rows: p_uncond is the "
                                     "probability of *dropping* it")
    if abs(rate - p) > 5 * se:
        return _report(name, "fail", f"you dropped the condition in a share {rate:.2f} of the rows; expected about "
                                     f"p_uncond = {p}")
    again, failed = _call(name, fn, cond.clone(), p, null, torch.Generator().manual_seed(seed + 1))
    if failed:
        return failed
    if not isinstance(again, Tensor) or not torch.equal(out, again):
        return _report(name, "fail", "use the generator you are given, so that the dropout is reproducible")
    return _report(name, "pass", f"drops {rate:.3f} of the rows (p_uncond = {p}) and keeps the others unchanged")


def check_cfg_sampler(fn: Callable, *, seed: int = 5) -> CheckResult:
    """``fn(eps_model, x_T, cond, gamma, schedule, num_steps)``: a deterministic DDIM sampler with CFG.

    Compared with the package's ``ddim_sample(cfg_model(...))`` from the same ``x_T`` on an exact mixture.
    """
    name = "CFG sampler"
    schedule = linear_schedule(200)
    mixture = GaussianMixture([0.5, 0.5], [[-1.5, 0.5], [1.5, -0.5]], [[[0.3, 0.1], [0.1, 0.2]]] * 2)
    model = mixture.eps_model(schedule)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    cond = torch.randint(0, 2, (64,), generator=torch.Generator().manual_seed(seed + 1))
    gamma, num_steps = 3.0, 20
    out, failed = _call(name, fn, model, x_T.clone(), cond, gamma, schedule, num_steps)
    if failed:
        return failed
    expected = sampling.ddim_sample(guidance.cfg_model(model, gamma), (64, 2), schedule, num_steps=num_steps,
                                    cond=cond, x_T=x_T, dtype=torch.float64)
    unguided = sampling.ddim_sample(model, (64, 2), schedule, num_steps=num_steps, cond=cond, x_T=x_T,
                                    dtype=torch.float64)
    w_as_gamma = sampling.ddim_sample(guidance.cfg_model(model, gamma + 1), (64, 2), schedule,
                                      num_steps=num_steps, cond=cond, x_T=x_T, dtype=torch.float64)
    suspects = {
        "your samples equal unguided samples: combine the conditional and unconditional predictions at every "
        "step": unguided,
        "off by one: gamma is the weight of the conditional prediction, not Ho & Salimans' w": w_as_gamma,
    }
    if isinstance(out, Tensor):
        out = out.detach().double()
    return _diagnose(name, out, expected, suspects, 1e-4)


# -- assignment 3: energy-conditioned generation -------------------------------------------------------
def check_energy_report(report: dict, samples: dict, energy_fn: Callable[[Tensor], Tensor], target: float,
                        *, tol: float = 0.02) -> CheckResult:
    """Check a trade-off report: ``report[gamma] = {"energy_error": ..., "spread": ...}`` must be what the
    student's own ``samples[gamma]`` give, with energy_error the mean ``|E(x) - E*|`` and spread the mean
    per-coordinate standard deviation of the samples; and it must cover at least three scales including
    gamma = 1. Recomputes every number from the samples."""
    name = "energy trade-off report"
    if report is None or samples is None:
        return _report(name, "not implemented", "not implemented yet: fill in the report and the samples")
    if not isinstance(report, dict) or not isinstance(samples, dict) or not report:
        return _report(name, "fail", "report and samples must be non-empty dicts keyed by gamma")
    if set(report) != set(samples):
        return _report(name, "fail", "report and samples must have the same gammas as keys")
    if len(report) < 3 or 1.0 not in report:
        return _report(name, "fail", "report at least three scales, including gamma = 1 (no guidance)")
    for gamma, entry in sorted(report.items()):
        x = samples[gamma]
        if not isinstance(x, Tensor) or x.ndim != 2:
            return _report(name, "fail", f"samples[{gamma}] must be a (N, D) tensor")
        if not isinstance(entry, dict) or not {"energy_error", "spread"} <= set(entry):
            return _report(name, "fail", f"report[{gamma}] must hold 'energy_error' and 'spread'")
        error = (energy_fn(x.double()) - target).abs().mean().item()
        spread = x.double().std(dim=0).mean().item()
        for key, true in (("energy_error", error), ("spread", spread)):
            value = entry[key]
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                return _report(name, "fail", f"report[{gamma}][{key!r}] must be a finite number")
            if abs(value - true) > tol * max(1.0, abs(true)):
                return _report(name, "fail", f"report[{gamma}][{key!r}] is not what your samples give; "
                                             "recompute it from samples[gamma]")
    return _report(name, "pass", f"the report matches the samples at {len(report)} scales")
