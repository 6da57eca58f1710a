"""Self-checks for the assignments in ``book/assignments``: feedback while a student works, not grading.

Each ``check_*`` function calls a student's function on inputs drawn afresh at every call (from the operating
system's entropy unless ``seed`` is given), compares the result with the package's reference within a
tolerance, and prints a short report: ``PASS``, or ``FAIL`` with a hint that names the likely mistake (a flipped
sign, a missing square root, the w/gamma off-by-one, a mean where a sum belongs, the lecture's 0 where the null
condition belongs) and the seed of the failing inputs, so that ``check_...(fn, seed=...)`` replays the case. It
never prints the reference values. A function that still raises ``NotImplementedError`` is reported as "not
implemented yet", without raising, so that a student notebook with its TODOs open still runs from top to bottom.

While the student's function runs, the package functions that would solve the task raise ``PermissionError``
when they are called by their own name. This is a nudge, not a guard: code in the student's own process can
always get round it (a copy of the function, of its module or of its source, or another package function that
computes the same thing). Grading is therefore separate: :mod:`tutorial_pkg.grader` runs the submitted answer
cells, read and screened before they run, in a fresh process, on inputs the student never saw, and computes
the references in its own process.

Every check returns a :class:`CheckResult`, so a notebook or a test can also assert on it. Assignment 1 covers
chapters 3 and 4, assignment 2 chapter 5, assignment 3 chapter 6, and assignment 4 chapter 6's calibrated
regressor.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import random
from typing import Callable, NamedTuple, Optional

import torch

from . import guidance, metrics, models, nets, sampling, training
from .analytic import GaussianMixture
from .schedules import NoiseSchedule, linear_schedule

Tensor = torch.Tensor

__all__ = ["CheckResult", "check_classifier_guided_eps", "check_shifted_mean", "check_grad_log_likelihood",
           "check_cfg", "check_drop_condition", "check_cfg_sampler", "check_energy_report", "check_gaussian_nll",
           "check_z_scores", "check_coverage", "check_guided_report", "check_mmps_eps", "check_exact_posterior", "check_mmps_report",
           "check_interval_cfg", "check_window_moments",
           "check_nerf_place", "check_band_share", "check_core_report", "check_gap_verdict", "check_core_gaps",
           "check_log_weight_increment", "check_systematic_resample", "check_smc_sampler", "check_smc_estimates",
           "check_guided_ddim", "check_guided_table", "check_dropout_experiment"]


class CheckResult(NamedTuple):
    """The outcome of a check: ``status`` is ``"pass"``, ``"fail"`` or ``"not implemented"``."""

    name: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"


_SEED: list = []  # the seed of the inputs of the check that is running, printed with a failure


def _report(name: str, status: str, message: str) -> CheckResult:
    mark = {"pass": "PASS", "fail": "FAIL", "not implemented": "TODO"}[status]
    replay = f" [inputs of seed={_SEED[-1]}: pass seed={_SEED[-1]} to the check to replay them]" if status == "fail" and _SEED else ""
    _SEED.clear()
    print(f"[{mark}] {name}: {message}{replay}")
    return CheckResult(name, status, message)


# -- the package refuses to solve the task while the student's function runs ----------------------------------
_MESSAGE = "\x00refused\x00"


def _refuser_code(freevars: tuple[str, ...], message: str):
    """The code of ``raise PermissionError(message)``, with the free variables of the function it replaces (a
    function's ``__code__`` can only be swapped for code with as many free variables, e.g. ``__class__`` of a
    method that calls ``super()``)."""
    body = "".join(f"    {name} = None\n" for name in freevars)
    uses = f"        ({', '.join(freevars)},)\n" if freevars else ""
    namespace: dict = {}
    exec(f"def outer():\n{body}    def refuser(*args, **kwargs):\n{uses}"
         f"        raise PermissionError({_MESSAGE!r})\n    return refuser\n", namespace)
    code = namespace["outer"]().__code__
    if code.co_freevars != freevars:  # the compiler's order differs from the original's: keep it
        code = code.replace(co_freevars=freevars)
    return code.replace(co_consts=tuple(message if c == _MESSAGE else c for c in code.co_consts))


# the refusals in force, innermost last: the grader sends them to the process that runs a submission's function, which
# installs them there too (tutorial_pkg.grader)
_REFUSING: list = []


@contextlib.contextmanager
def _refusing(refused: dict[Callable, str]):
    """While active, each function (or method) in ``refused`` raises ``PermissionError(message)``.

    The function's code object is swapped, so the refusal holds whether the student wrote ``guidance.cfg(...)``,
    ``from tutorial_pkg.guidance import cfg`` or called it through a wrapper; decorated functions are refused
    at their innermost function. Everything is restored on exit.
    """
    swapped = []
    _REFUSING.append(refused)
    try:
        for fn, message in refused.items():
            inner = inspect.unwrap(fn)
            code = inner.__code__
            swapped.append((inner, code))
            inner.__code__ = _refuser_code(code.co_freevars, message).replace(co_name=code.co_name)
        yield
    finally:
        for inner, code in swapped:
            inner.__code__ = code
        _REFUSING.pop()


def _refusal(qualname: str, instead: str) -> str:
    return f"this check does not accept a call of {qualname}: {instead}"


def _call(name: str, fn: Callable, *args, refused: Optional[dict] = None):
    """Run the student's function with the solving functions refused; map NotImplementedError, a refusal and
    crashes to a report instead of raising."""
    if not callable(fn):
        return None, _report(name, "fail", f"expected a function, got {type(fn).__name__}")
    try:
        with _refusing(refused or {}):
            return fn(*args), None
    except NotImplementedError:
        return None, _report(name, "not implemented", "not implemented yet: fill in the TODO and run this cell again")
    except PermissionError as err:
        if str(err).startswith("this check does not accept"):
            return None, _report(name, "fail", str(err))
        return None, _report(name, "fail", f"your function raised PermissionError: {err}")
    except Exception as err:  # the student's code crashed: say where, not what the answer is
        return None, _report(name, "fail", f"your function raised {type(err).__name__}: {err}")


def _generator(seed: Optional[int]) -> torch.Generator:
    """Fresh inputs at every call unless a seed is given: a stored answer cannot pass. The seed is printed with a
    failure, so that the student can replay the failing inputs."""
    seed = random.SystemRandom().randrange(2 ** 31) if seed is None else seed
    _SEED[:] = [seed]
    return torch.Generator().manual_seed(seed)


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
        return _report(name, "pass", "matches the reference on fresh random inputs")
    if hint is None:
        hint = next((h for h, wrong in suspects.items() if _close(out, wrong, tol)), None)
    if hint is None and out.dtype in (torch.float32, torch.float16, torch.bfloat16) and _close(out, expected, 1e-3):
        hint = (f"right up to rounding, but your result is {out.dtype} while the inputs are {expected.dtype}: keep the "
                "inputs' dtype (a tensor made with torch.tensor(...) or torch.zeros(...) without dtype= is float32)")
    return _report(name, "fail", hint or "the values differ from the reference; re-derive the formula from the chapter")


def _inputs(g: torch.Generator, B: int = 16, D: int = 3):
    eps, grad = torch.randn(2, B, D, generator=g, dtype=torch.float64)
    alpha_bar = 0.05 + 0.9 * torch.rand(B, 1, generator=g, dtype=torch.float64)
    return eps, grad, alpha_bar


def _scale(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g, dtype=torch.float64).item()


# -- assignment 1: classifier guidance ----------------------------------------------------------------
def check_classifier_guided_eps(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """``fn(eps, grad_log_p, alpha_bar_t, scale)``: the guided eps of chapter 3, eq. (guided-eps)."""
    name = "classifier-guided eps"
    g = _generator(seed)
    eps, grad, ab = _inputs(g)
    scale = _scale(g, 1.5, 4.0)
    refused = {guidance.classifier_guided_eps: _refusal("tutorial_pkg.guidance.classifier_guided_eps",
                                                        "write the guided eps yourself"),
               guidance.ClassifierGuidedModel.__call__: _refusal("tutorial_pkg.guidance.ClassifierGuidedModel",
                                                                 "write the guided eps yourself")}
    out, failed = _call(name, fn, eps, grad, ab, scale, refused=refused)
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


def check_shifted_mean(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """``fn(mean, variance, grad_log_p, scale)``: the Taylor-shifted mean of chapter 4, eq. (taylor-shift)."""
    name = "Taylor-shifted mean"
    g = _generator(seed)
    mean, grad, _ = _inputs(g)
    variance = 0.01 + torch.rand(mean.shape, generator=g, dtype=torch.float64)
    scale = _scale(g, 1.5, 4.0)
    refused = {guidance.shifted_mean: _refusal("tutorial_pkg.guidance.shifted_mean", "write the shift yourself")}
    out, failed = _call(name, fn, mean, variance, grad, scale, refused=refused)
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
    """A hidden noise-aware classifier, new at every check, whose samples interact only with themselves."""

    def __init__(self, g: torch.Generator):
        self.W = torch.randn(3, 4, generator=g, dtype=torch.float64)
        self.b = torch.randn(4, generator=g, dtype=torch.float64)

    def log_prob(self, x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
        logits = torch.tanh(x_t @ self.W) * (1 + t[:, None].to(x_t.dtype) / 100) + self.b
        return torch.log_softmax(logits, dim=1).gather(1, y[:, None])[:, 0]


def check_grad_log_likelihood(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """``fn(predictor, x_t, t, target)``: per-sample gradients of log p_phi(target | x_t) by autograd."""
    name = "gradient of log p_phi"
    g = _generator(seed)
    predictor = _ToyPredictor(g)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, 100, (12,), generator=g)
    y = torch.randint(0, 4, (12,), generator=g)
    refused = {guidance.grad_log_likelihood: _refusal("tutorial_pkg.guidance.grad_log_likelihood",
                                                      "take the gradient with torch.autograd yourself")}
    out, failed = _call(name, fn, predictor, x, t, y, refused=refused)
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
_CFG_REFUSED = {guidance.cfg: _refusal("tutorial_pkg.guidance.cfg", "write the combination yourself"),
                guidance.CFGModel.__call__: _refusal("tutorial_pkg.guidance.CFGModel", "write the combination yourself"),
                guidance.AutoguidanceModel.__call__: _refusal("tutorial_pkg.guidance.AutoguidanceModel",
                                                              "write the combination yourself")}


def check_cfg(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """``fn(eps_cond, eps_uncond, gamma)``: the CFG combination of chapter 5, eq. (cfg), in the gamma convention."""
    name = "classifier-free guidance"
    g = _generator(seed)
    eps_c, eps_u, _ = _inputs(g)
    gamma = _scale(g, 2.0, 6.0)
    out, failed = _call(name, fn, eps_c, eps_u, gamma, refused=_CFG_REFUSED)
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


def check_drop_condition(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """``fn(cond, p_uncond, null, generator)``: condition dropout of chapter 5, eq. (cfg-dropout), with the
    notebook's draw: one uniform number per row, ``u = torch.rand(N, generator=generator)``, row ``k`` dropped where
    ``u[k] < p_uncond``.

    The student's function is called three times on the same fresh labels: twice with generators of one seed
    (the result must be the same) and once with another seed (it must differ: random rows, drawn from the
    generator). The dropped rows must hold the null condition, here the learned null -1, not the lecture's 0; the
    share dropped must be ``p_uncond`` overall and within each label (independent of the label), at a rate drawn in
    [0.1, 0.3] and at the experiment's 0.02 and 0.5. Last, the rows must be those of the notebook's draw, and the
    generator left where that draw leaves it: a dropout that is right in distribution but draws otherwise is a
    named slip (half), since it trains other networks than the notebook's. One that consumes the generator as the
    notebook's draw does (``u > 1 - p_uncond``) says so in its message (``_SAME_DRAW``): the grader then grades the
    experiment in full on its networks; one that draws more or fewer numbers (a padded draw, whose length chooses
    among sets of networks) leaves the experiment at most half.
    """
    name = "condition dropout"
    g = _generator(seed)
    n, null = 20_000, -1
    p = round(_scale(g, 0.1, 0.3), 2)
    cond = torch.randint(0, 10, (n,), generator=g)
    seed_a, seed_b = (int(torch.randint(0, 2 ** 31, (), generator=g)) for _ in range(2))
    refused = {training.drop_condition: _refusal("tutorial_pkg.training.drop_condition", "write the dropout yourself")}
    outs, generators = [], []
    for s in (seed_a, seed_a, seed_b):
        generators.append(torch.Generator().manual_seed(s))
        out, failed = _call(name, fn, cond.clone(), p, null, generators[-1], refused=refused)
        if failed:
            return failed
        hint = _shape_hint(out, cond)
        if hint is not None:
            return _report(name, "fail", hint)
        outs.append(out)
    out = outs[0]
    changed = out != cond
    if changed.any() and bool((out[changed] == 0).all()) and not bool((out == null).any()):
        return _report(name, "fail", f"the dropped rows must hold the null condition null = {null}, not 0: 0 is a real "
                                     "label, and a model cannot tell the lecture's 0 from it (chapter 5, the null "
                                     "condition)")
    dropped = out == null
    if not torch.equal(out[~dropped], cond[~dropped]):
        return _report(name, "fail", "rows that are not dropped must keep their own condition")
    rate = dropped.double().mean().item()
    if rate == 0:
        return _report(name, "fail", "no row was dropped: replace each entry by null with probability p_uncond")
    se = math.sqrt(p * (1 - p) / n)
    if abs(rate - (1 - p)) < 5 * se:
        return _report(name, "fail", f"you dropped the condition in a share {rate:.2f} of the rows: p_uncond is the "
                                     "probability of *dropping* it")
    if abs(rate - p) > 5 * se:
        return _report(name, "fail", f"you dropped the condition in a share {rate:.2f} of the rows; expected about "
                                     f"p_uncond = {p}")
    biased = _label_bias(out, cond, p, null)
    if biased is not None:
        return _report(name, "fail", biased)
    if not torch.equal(outs[0], outs[1]):
        return _report(name, "fail", "use the generator you are given (torch.rand(..., generator=generator)), so that "
                                     "the dropout is reproducible: two generators of one seed gave other rows")
    if torch.equal(outs[0], outs[2]):
        return _report(name, "fail", "generators of different seeds dropped the same rows: draw the rows at random "
                                     "from the generator, not a fixed set of rows")
    for q in _EXPERIMENT_RATES:  # the rates that the notebook's experiment trains at, outside the range drawn above
        s = int(torch.randint(0, 2 ** 31, (), generator=g))
        out_q, failed = _call(name, fn, cond.clone(), q, null, torch.Generator().manual_seed(s), refused=refused)
        if failed:
            return failed
        hint = _shape_hint(out_q, cond)
        if hint is not None:
            return _report(name, "fail", hint)
        dropped = out_q == null
        share = dropped.double().mean().item()
        if not torch.equal(out_q[~dropped], cond[~dropped]) or abs(share - q) > 5 * math.sqrt(q * (1 - q) / n):
            return _report(name, "fail", f"the share differs at p_uncond = {q:g}: you dropped the condition in a "
                                         f"share {share:.3f} of the rows (or changed rows that you kept), expected "
                                         f"about {q:g}: drop each row with probability p_uncond at every rate in "
                                         "[0, 1], the experiment's 0.02 and 0.5 among them")
        biased = _label_bias(out_q, cond, q, null)
        if biased is not None:
            return _report(name, "fail", biased)
    # the notebook's draw: the same rows, and the generator advanced by exactly N uniform numbers
    mine = torch.Generator().manual_seed(seed_a)
    expected = torch.where(torch.rand(n, generator=mine) < p, torch.full_like(cond, null), cond)
    rule = ("draw one uniform number per row, u = torch.rand(N, generator=generator), drop row k where u[k] < p_uncond, "
            "and draw nothing else from the generator. train_net's generator also draws the training batches")
    if not torch.equal(generators[0].get_state(), mine.get_state()):
        return _report(name, "fail", "your dropout is right in distribution but leaves the generator elsewhere than "
                                     f"the notebook's draw does (it draws more or fewer numbers): {rule}, so a draw "
                                     "of another length trains other networks than the notebook's, and its length "
                                     "chooses among sets of networks: the experiment on them earns at most half")
    if not torch.equal(outs[0], expected):
        return _report(name, "fail", f"{_SAME_DRAW} as the notebook's draw does, but drops other rows than the "
                                     f"notebook's draw: {rule}, so this trains other networks than the notebook's, "
                                     "as right as its: the experiment is graded in full on them")
    low, high = _EXPERIMENT_RATES
    return _report(name, "pass", f"drops rows at random, at the rate p_uncond within every label (tried at {p:g}, "
                                 f"{low:g} and {high:g}), with the notebook's draw from the generator, and keeps the "
                                 "others")


def _label_bias(out: Tensor, cond: Tensor, p: float, null) -> Optional[str]:
    """A hint when the share of rows dropped within some label is not ``p`` to 5 standard errors (each label has
    about 2 000 rows in the check): a dropout that depends on the label trains a null branch that is not the
    unconditional model. ``None`` when every label's share is ``p``."""
    for label in torch.unique(cond).tolist():
        rows = cond == label
        m = int(rows.sum())
        share = (out[rows] == null).double().mean().item()
        if abs(share - p) > 5 * math.sqrt(p * (1 - p) / m):
            return (f"the share differs between labels: you dropped the condition in a share {share:.3f} of the "
                    f"{m} rows of label {label}, expected about p_uncond = {p:g}: drop each row with probability "
                    "p_uncond independently of the label, so that the null branch learns the unconditional model "
                    "(chapter 5)")
    return None


_EXPERIMENT_RATES = (0.02, 0.5)  # cell a2-14's p_uncond values
# how check_drop_condition's message opens for a dropout right in distribution that consumes the generator exactly as
# the notebook's draw does (u > 1 - p_uncond): a named slip in its own task, and no choice among networks, so the
# experiment on the networks it trains is graded in full (grader._PAID_ONCE)
_SAME_DRAW = "your dropout is right in distribution and consumes the generator"


def check_cfg_sampler(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """``fn(eps_model, x_T, cond, gamma, schedule, num_steps)``: a deterministic DDIM sampler with CFG.

    Compared with the package's ``ddim_sample(cfg_model(...))`` from the same ``x_T`` on an exact mixture that is
    new at every call; the package's samplers and CFG refuse to run inside the student's function.
    """
    name = "CFG sampler"
    g = _generator(seed)
    schedule = linear_schedule(200)
    means = 1.5 * torch.randn(2, 2, generator=g, dtype=torch.float64)
    mixture = GaussianMixture([0.5, 0.5], means, [[[0.3, 0.1], [0.1, 0.2]]] * 2)
    model = mixture.eps_model(schedule)
    x_T = torch.randn(64, 2, generator=g, dtype=torch.float64)
    cond = torch.randint(0, 2, (64,), generator=g)
    gamma, num_steps = round(_scale(g, 2.0, 4.0), 2), int(torch.randint(10, 25, (), generator=g))
    refused = {**_CFG_REFUSED,
               sampling.ddim_sample: _refusal("tutorial_pkg.sampling.ddim_sample", "write the sampling loop yourself"),
               sampling.ddpm_sample: _refusal("tutorial_pkg.sampling.ddpm_sample", "write the sampling loop yourself"),
               sampling.ddim_step: _refusal("tutorial_pkg.sampling.ddim_step", "write the DDIM step yourself")}
    out, failed = _call(name, fn, model, x_T.clone(), cond, gamma, schedule, num_steps, refused=refused)
    if failed:
        return failed

    def run(m, steps=None, **kw):
        return sampling.ddim_sample(m, (64, 2), schedule, num_steps=None if steps else num_steps, timesteps=steps,
                                    cond=cond, x_T=x_T, dtype=torch.float64, **kw)

    expected = run(guidance.cfg_model(model, gamma))
    trajectory = sampling.Trajectory()
    run(guidance.cfg_model(model, gamma), callback=trajectory)
    suspects = {
        "your samples equal unguided samples: combine the conditional and unconditional predictions at every "
        "step": run(model),
        "off by one: gamma is the weight of the conditional prediction, not Ho & Salimans' w":
            run(guidance.cfg_model(model, gamma + 1)),
        "your samples stop one step short: after the last timestep, jump to alpha_bar = 1 (t_prev = -1, clean "
        "data), as the last step of eq. (ddim-step)": trajectory.states[-2].double(),
    }
    if isinstance(out, Tensor):
        out = out.detach().double()
    return _diagnose(name, out, expected, suspects, 1e-4)


# -- assignments 3 and 4: energy-conditioned generation ---------------------------------------------------
def _check_setting(*, data, eps_model, schedule, target, n=1, regressor=None, scale=1.0) -> float:
    """The notebook's own arguments (not the student's answer): wrong ones are the notebook's bug, and raise."""
    from . import _checks, systems

    if not isinstance(data, systems.BoltzmannData):
        raise TypeError(f"data must be the notebook's BoltzmannData (zoo.muller_brown_data()), got {type(data).__name__}")
    if not isinstance(eps_model, torch.nn.Module):
        raise TypeError(f"eps_model must be the notebook's trained eps-model (an nn.Module), got {type(eps_model).__name__}")
    if regressor is not None and not isinstance(regressor, torch.nn.Module):
        raise TypeError(f"regressor must be a trained noise-aware regressor (an nn.Module), got {type(regressor).__name__}")
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    if schedule.T < 50:
        raise ValueError(f"schedule must have at least the 50 steps that the check samples with, got T = {schedule.T}")
    _checks.integer("n", n, low=1)
    _checks.real("scale", scale, low=0.0)
    return _checks.real("target", target)


def _as_number(value) -> Optional[float]:
    """A reported number as a float (a Python or NumPy number, or a one-element tensor); None if it is not one."""
    if isinstance(value, Tensor):
        value = value.item() if value.numel() == 1 else None
    try:
        value = float(value) if not isinstance(value, (bool, str)) and value is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _check_samples(name: str, samples: dict, data, *, n: int, label=lambda key: f"samples[{key}]") -> Optional[CheckResult]:
    """Shape, finiteness and the box of the Müller-Brown potential: configurations, not standardised z."""
    if not isinstance(samples, dict) or not samples:
        return _report(name, "fail", "samples must be a non-empty dict keyed by the scale")
    (x_lo, x_hi), (y_lo, y_hi) = data.system.box
    _inside = lambda x: ((x[:, 0] >= x_lo) & (x[:, 0] <= x_hi) & (x[:, 1] >= y_lo) & (x[:, 1] <= y_hi)).double().mean().item()
    for scale, x in samples.items():
        if not isinstance(x, Tensor) or x.shape != (n, 2):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            return _report(name, "fail", f"{label(scale)} must be a ({n}, 2) tensor of configurations, got {got}")
        if not bool(torch.isfinite(x).all()):
            return _report(name, "fail", f"{label(scale)} holds NaN or infinite values")
        if _inside(x) < 0.95:
            if _inside(data.unstandardize(x.detach().cpu().double())) >= 0.95:
                return _report(name, "fail", f"{label(scale)} look like the network's standardised coordinates z: "
                                             "map them back with data.unstandardize(z) before you report them")
            return _report(name, "fail", f"only {_inside(x):.0%} of {label(scale)} lie in the potential's box "
                                         f"{data.system.box}: report configurations x")
    return None


def _reproduce(name: str, samples: dict, eps_model, data, schedule, target: float, seed, n: int) -> Optional[CheckResult]:
    """Every scale's run, repeated from the student's seed: ``samples[gamma]`` must be what CFG at ``gamma``
    (``guidance.cfg_model``, DDIM 50 steps) gives, so that no scale's samples can come from elsewhere."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        return _report(name, "fail", f"seed must be the int you seeded your generator with, got {seed!r}")
    device = next(eps_model.parameters()).device
    for gamma, x in sorted(samples.items()):
        gamma_value = _as_number(gamma)
        if gamma_value is None or gamma_value < 0:
            return _report(name, "fail", f"the scales must be numbers gamma >= 0, got {gamma!r}")
        model = eps_model if gamma_value == 1 else guidance.cfg_model(eps_model, gamma_value)
        z = sampling.ddim_sample(model, (n, 2), schedule, num_steps=50, cond=torch.full((n,), target, device=device),
                                 device=device, generator=torch.Generator(device).manual_seed(seed))
        mine = data.unstandardize(z.cpu().double())
        if not torch.allclose(x.double(), mine, atol=1e-3):
            if torch.allclose(x.double(), z.cpu().double(), atol=1e-3):
                return _report(name, "fail", f"your gamma = {gamma_value:g} samples are the network's standardised "
                                             "coordinates z: map them back with data.unstandardize(z)")
            return _report(name, "fail", f"the gamma = {gamma_value:g} samples are not what ddim_sample("
                                         f"guidance.cfg_model(eps_model, {gamma_value:g}), ({n}, 2), schedule, num_steps=50, "
                                         "cond=...) gives with your seed: sample every scale as the notebook says, "
                                         "from one seed")
    return None


def _blocks_interval(name: str, label: str, values: list, entry, *, tol: float = 1e-6) -> Optional[CheckResult]:
    """``entry = {"mean", "se", "low", "high"}`` of independent per-block ``values``: the mean, its standard error
    ``s / sqrt(B)`` (``s`` with ``B - 1``) and the t-interval ``mean -+ t_{B-1} se``. A failure names the mistake."""
    from . import stats

    if not isinstance(entry, dict) or not {"mean", "se", "low", "high"} <= set(entry):
        return _report(name, "fail", f"{label} must be a dict with 'mean', 'se', 'low' and 'high'")
    got = {key: _as_number(entry[key]) for key in ("mean", "se", "low", "high")}
    if any(v is None for v in got.values()):
        return _report(name, "fail", f"{label} must hold finite numbers")
    v = torch.tensor(values, dtype=torch.float64)
    B = v.numel()
    mean, sd = v.mean().item(), v.std().item()
    se, t = sd / math.sqrt(B), stats.t_quantile(B - 1)
    close = lambda a, b: abs(a - b) <= tol * max(1.0, abs(b))
    near = lambda a, b: abs(a - b) <= 1e-3 * abs(b) + 1e-12  # a likely mistake, typed with rounded constants
    if not close(got["mean"], mean):
        return _report(name, "fail", f"the mean in {label} is not the mean of the per-block values")
    if not close(got["se"], se):
        hints = [(sd, "the standard error of a mean of B blocks is their standard deviation over sqrt(B)"),
                 (v.std(correction=0).item() / math.sqrt(B), "the standard error uses the sample standard "
                                                            "deviation, which divides by B - 1, not by B"),
                 (sd / B, "the standard error is the standard deviation over sqrt(B), not over B"),
                 (sd ** 2 / B, "the standard error is a square root: the standard deviation over sqrt(B)")]
        hint = next((h for wrong, h in hints if near(got["se"], wrong)), None)
        return _report(name, "fail", hint or f"the standard error in {label} is not that of the mean of the "
                                             "per-block values")
    half = (got["high"] - got["low"]) / 2
    if not (close(got["low"], mean - t * se) and close(got["high"], mean + t * se)):
        normal = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.975, dtype=torch.float64)).item()
        hints = [(normal * se, "with B blocks the interval uses Student's t-quantile with B - 1 degrees of freedom, "
                               "not the normal's 1.96"),
                 (stats.t_quantile(B) * se, "the t-quantile has B - 1 degrees of freedom, not B"),
                 (se, "the half-width of the interval is the t-quantile times the standard error, not the standard "
                      "error alone"),
                 (t * se, "take the t-quantile from stats.t_quantile(B - 1), not a rounded value from a table")]
        hint = next((h for wrong, h in hints if near(half, wrong) and close((got["low"] + got["high"]) / 2, mean)),
                    None)
        return _report(name, "fail", hint or f"the interval in {label} is not mean -+ t_(B-1) se")
    return None


def _block_arguments(blocks) -> Optional[int]:
    """The notebook's ``blocks``: an int >= 2, or None; a wrong one raises."""
    from . import _checks

    return None if blocks is None else _checks.integer("blocks", blocks, low=2)


def _block_noise(shape, seed: int, device) -> Tensor:
    """The initial noise of ``ddim_sample(..., shape, generator=torch.Generator(device).manual_seed(seed))``."""
    return torch.randn(tuple(shape), generator=torch.Generator(device).manual_seed(seed), device=device)


def check_energy_report(report: dict, samples: dict, *, data, eps_model, schedule: NoiseSchedule, target: float,
                        reference: Tensor, seed: int, n: int = 300, blocks: Optional[int] = None) -> CheckResult:
    """Assignment 3: a trade-off report of CFG at a target energy, checked on the samples themselves.

    Without ``blocks``: ``samples[gamma]`` are ``n`` configurations ``x`` (not standardised ``z``) for at least
    three scales including gamma = 1; ``report[gamma] = {"energy_error": median |E(x) - E*|, "sliced_w1": sliced
    W1 to reference}``. The check recomputes both from the samples (energies of the configurations, the sliced
    Wasserstein distance to chapter 6's exact conditional reference with ``torch.Generator().manual_seed(1)``),
    checks that the samples are configurations in the potential's box, and repeats every scale's run from ``seed``.

    With ``blocks = B``: ``samples[gamma]`` is ``(B, n, 2)``, one ``ddim_sample`` call of ``B * n`` samples from
    ``seed`` reshaped, so that block ``k`` starts from the same noise at every scale; ``report[gamma][key] =
    {"blocks": B per-block values, "mean", "se", "low", "high"}`` for both keys, the mean with its standard error and
    95 % t-interval. The check regenerates every block of every scale (one call per scale) and recomputes every
    block's energy error and distance, and the means, standard errors and intervals.
    """
    name = "energy trade-off report"
    target = _check_setting(data=data, eps_model=eps_model, schedule=schedule, target=target, n=n)
    blocks = _block_arguments(blocks)
    if report is None or samples is None:
        return _report(name, "not implemented", "not implemented yet: fill in the report and the samples")
    if not isinstance(report, dict) or set(report) != set(samples or {}):
        return _report(name, "fail", "report and samples must be dicts with the same scales gamma as keys")
    if len(report) < 3 or 1.0 not in report:
        return _report(name, "fail", "report at least three scales, including gamma = 1 (no guidance)")
    if not isinstance(reference, Tensor) or reference.ndim != 2 or reference.shape[1] != 2:
        return _report(name, "fail", "reference must be the (M, 2) exact conditional reference of the notebook")
    if (data.system.energy(reference.double()) - target).abs().max() > 1.0:
        return _report(name, "fail", f"the reference does not lie at the target energy {target:g}: use "
                                     "data.conditional_reference(E_target, ...) as the notebook does")
    w1 = lambda x: metrics.sliced_wasserstein(x.double(), reference, generator=torch.Generator().manual_seed(1))
    if blocks is not None:
        return _energy_blocks(name, report, samples, data, eps_model, schedule, target, seed, n, blocks, w1)
    failed = _check_samples(name, samples, data, n=n)
    if failed:
        return failed
    failed = _reproduce(name, samples, eps_model, data, schedule, target, seed, n)
    if failed:
        return failed
    for gamma, x in sorted(samples.items()):
        entry = report[gamma]
        if not isinstance(entry, dict) or not {"energy_error", "sliced_w1"} <= set(entry):
            return _report(name, "fail", f"report[{gamma}] must hold 'energy_error' and 'sliced_w1'")
        truth = {"energy_error": metrics.energy_error(data.system.energy(x.double()), target).median,
                 "sliced_w1": w1(x)}
        for key, true in truth.items():
            value = _as_number(entry[key])
            if value is None:
                return _report(name, "fail", f"report[{gamma}][{key!r}] must be a finite number")
            if abs(value - true) > 1e-4 * max(1.0, abs(true)):
                hint = (" (the median, not the mean, of |E(x) - E*|)" if key == "energy_error" else
                        " (sliced_wasserstein(x, reference, generator=torch.Generator().manual_seed(1)))")
                return _report(name, "fail", f"report[{gamma}][{key!r}] is not what your samples give{hint}")
    return _report(name, "pass", f"the report matches the samples at {len(report)} scales, and the samples of every "
                                 "scale repeat from your seed")


def _regenerate_blocks(name: str, label: str, x: Tensor, model, data, schedule, target: float, noise: Tensor,
                       n: int, device) -> Optional[CheckResult]:
    """Every block of one batch of ``B * n`` samples whose initial noise is ``noise``, regenerated in one call (DDIM
    is deterministic, each sample its own trajectory) and compared with ``x`` ``(B, n, 2)``, block by block."""
    B = x.shape[0]
    z = sampling.ddim_sample(model, (B * n, 2), schedule, num_steps=50, cond=torch.full((B * n,), target, device=device),
                             device=device, x_T=noise)
    mine = data.unstandardize(z.cpu().double()).reshape(B, n, 2)
    for k in range(B):
        if torch.allclose(x[k].double(), mine[k], atol=1e-3):
            continue
        if torch.allclose(x[k].double(), z.cpu().double().reshape(B, n, 2)[k], atol=1e-3):
            return _report(name, "fail", f"your {label} samples are the network's standardised coordinates z: map "
                                         "them back with data.unstandardize(z)")
        if torch.allclose(x.transpose(0, 1).reshape(B * n, 2)[k * n:(k + 1) * n].double(), mine[k], atol=1e-3):
            return _report(name, "fail", f"the blocks of your {label} samples are mixed up: block k must be samples "
                                         "k * n to (k + 1) * n - 1 of the batch, x.reshape(blocks, n, 2)")
        return _report(name, "fail", f"block {k} of the {label} samples is not what one ddim_sample call of blocks * "
                                     f"n = {B * n} samples from your seed gives (DDIM 50 steps, cond=E*): draw all "
                                     "blocks in one call, seeded once, and reshape it to (blocks, n, 2)")
    return None


def _energy_blocks(name, report, samples, data, eps_model, schedule, target, seed, n, blocks, w1):
    for gamma, x in samples.items():
        if not isinstance(x, Tensor) or x.shape != (blocks, n, 2):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            return _report(name, "fail", f"samples[{gamma}] must be a ({blocks}, {n}, 2) tensor: {blocks} blocks of "
                                         f"{n} configurations, got {got}")
    failed = _check_samples(name, {g: x.reshape(-1, 2) for g, x in samples.items()}, data, n=blocks * n)
    if failed:
        return failed
    if not isinstance(seed, int) or isinstance(seed, bool):
        return _report(name, "fail", f"seed must be the int you seeded your generator with, got {seed!r}")
    device = next(eps_model.parameters()).device
    noise = _block_noise((blocks * n, 2), seed, device)
    for gamma, x in sorted(samples.items()):
        gamma_value = _as_number(gamma)
        if gamma_value is None or gamma_value < 0:
            return _report(name, "fail", f"the scales must be numbers gamma >= 0, got {gamma!r}")
        model = eps_model if gamma_value == 1 else guidance.cfg_model(eps_model, gamma_value)
        failed = _regenerate_blocks(name, f"gamma = {gamma_value:g}", x, model, data, schedule, target, noise, n,
                                    device)
        if failed:
            return failed
    for gamma, x in sorted(samples.items()):
        entry = report[gamma]
        if not isinstance(entry, dict) or not {"energy_error", "sliced_w1"} <= set(entry):
            return _report(name, "fail", f"report[{gamma}] must hold 'energy_error' and 'sliced_w1'")
        errors = [metrics.energy_error(data.system.energy(xb.double()), target).median for xb in x]
        for key in ("energy_error", "sliced_w1"):
            label = f"report[{gamma}][{key!r}]"
            if not isinstance(entry[key], dict) or "blocks" not in entry[key]:
                return _report(name, "fail", f"{label} must be a dict with the per-block values under 'blocks', "
                                             "and 'mean', 'se', 'low', 'high'")
            values = entry[key]["blocks"]
            values = values.tolist() if isinstance(values, Tensor) else values
            if not isinstance(values, (list, tuple)) or len(values) != blocks or \
                    any(_as_number(v) is None for v in values):
                return _report(name, "fail", f"{label}['blocks'] must hold {blocks} finite numbers, one per block")
            values = [_as_number(v) for v in values]
            for k in range(blocks):
                true = errors[k] if key == "energy_error" else w1(x[k])
                if abs(values[k] - true) > 1e-4 * max(1.0, abs(true)):
                    if key == "energy_error" and abs(values[k] - metrics.energy_error(
                            data.system.energy(x[k].double()), target).mean) < 1e-4 * max(1.0, abs(true)):
                        return _report(name, "fail", "the energy error of a block is the median, not the mean, of "
                                                     "|E(x) - E*| over its samples")
                    hint = ("sliced_wasserstein(x, reference, generator=torch.Generator().manual_seed(1)) of the "
                            "block" if key == "sliced_w1" else "the median |E(x) - E*| of the block")
                    return _report(name, "fail", f"{label}['blocks'][{k}] is not what your block {k} gives ({hint})")
            failed = _blocks_interval(name, label, values, entry[key])
            if failed:
                return failed
    return _report(name, "pass", f"the report matches the samples at {len(report)} scales and {blocks} blocks, its "
                                 "means, standard errors and t-intervals are right, and the blocks repeat from your seed")


_NO_GRADIENT = ("return a loss with the right gradient too: yours has the right values but not the right gradient "
                "with respect to f and log_sigma (nothing inside it may be detached: no .detach(), .item(), "
                "torch.no_grad() or round trip through numpy or float)")


def _nll_with_gradient(fn: Callable, *, remote: bool = False) -> Callable:
    """``fn(f, log_sigma, E)`` as ``(f, log_sigma, E) -> {"value": ..., "grad": [d/df, d/dlog_sigma] or None}``, the
    gradients of the sum taken where ``fn`` runs: here by autograd, or (``remote``) in the grader's child process,
    which a tensor leaves without its graph."""
    def run(f, log_sigma, E):
        f, log_sigma = f.detach().clone().requires_grad_(True), log_sigma.detach().clone().requires_grad_(True)
        if remote:
            return fn(f, log_sigma, E, grad=True)
        out = fn(f, log_sigma, E)
        grads = (torch.autograd.grad(out.sum(), (f, log_sigma), allow_unused=True)
                 if isinstance(out, Tensor) and out.requires_grad else None)
        return {"value": out.detach() if isinstance(out, Tensor) else out,
                "grad": None if grads is None else [torch.zeros_like(a) if g is None else g
                                                     for a, g in zip((f, log_sigma), grads)]}
    return run


def _nll_gradient_is_right(grads, f: Tensor, log_sigma: Tensor, E: Tensor) -> bool:
    """Whether ``grads`` are the gradients of the summed Gaussian NLL with respect to ``f`` and ``log_sigma``:
    (f - E) / sigma^2 and 1 - ((E - f) / sigma)^2 (an additive constant does not change them)."""
    expected = ((f - E) / (2 * log_sigma).exp(), 1 - ((E - f) / log_sigma.exp()) ** 2)
    return (isinstance(grads, (list, tuple)) and len(grads) == 2
            and all(_close(g, e, 1e-6) for g, e in zip(grads, expected)))


def check_gaussian_nll(fn: Callable, *, seed: Optional[int] = None, remote: bool = False) -> CheckResult:
    """Assignment 4: ``fn(f, log_sigma, E)``, the per-sample negative log-likelihood of N(E; f, sigma^2) that a
    heteroscedastic regressor is trained with (chapter 6), shape ``(B,)``: its values and its gradients with respect
    to ``f`` and ``log_sigma`` (a loss with the right values and no gradient trains nothing). ``remote``: ``fn``
    runs in the grader's child process and takes ``grad=True`` (:meth:`tutorial_pkg.grader._Child.call`)."""
    name = "Gaussian negative log-likelihood"
    g = _generator(seed)
    f, E = 3 * torch.randn(2, 32, generator=g, dtype=torch.float64)
    log_sigma = torch.randn(32, generator=g, dtype=torch.float64)
    refused = {nets.NoiseAwareRegressor.log_prob: _refusal("tutorial_pkg.nets.NoiseAwareRegressor.log_prob",
                                                           "write the likelihood yourself")}
    if not callable(fn):
        return _report(name, "fail", f"expected a function, got {type(fn).__name__}")
    answer, failed = _call(name, _nll_with_gradient(fn, remote=remote), f, log_sigma, E, refused=refused)
    if failed:
        return failed
    out = answer.get("value") if isinstance(answer, dict) else None
    r2 = ((E - f) / log_sigma.exp()) ** 2
    expected = 0.5 * r2 + log_sigma + 0.5 * math.log(2 * math.pi)
    suspects = {
        "without the log sigma term the loss falls as sigma grows: the network learns an infinite spread":
            0.5 * r2 + 0.5 * math.log(2 * math.pi),
        "the residual is divided by the variance sigma^2, squared: write ((E - f) / sigma)^2": 0.5 * (E - f) ** 2 / log_sigma.exp()
            + log_sigma + 0.5 * math.log(2 * math.pi),
        "check the sign: a negative log-likelihood is minimised": -expected,
        "the constant 0.5 log(2 pi) is part of the likelihood; keep it, so that the loss is the real NLL":
            0.5 * r2 + log_sigma,
    }
    # right values (or right but for the constant, a named slip) with a wrong gradient: zero, whatever the values
    if _shape_hint(out, expected) is None and any(_close(out, v, 1e-6) for v in (expected, 0.5 * r2 + log_sigma)) \
            and not _nll_gradient_is_right(answer.get("grad"), f, log_sigma, E):
        return _report(name, "fail", _NO_GRADIENT)
    # 1e-6: a constant made in float32 (torch.log(torch.tensor(2 * math.pi))) is right too
    return _diagnose(name, out, expected, suspects, 1e-6)


def check_z_scores(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 4: ``fn(regressor, x_t, t, E)`` -> ``z = (E - f(x_t, t)) / sigma(x_t, t)``, shape ``(B,)``, for a
    noise-aware regressor whose ``forward`` returns ``(f, log_sigma)``."""
    name = "z-scores"
    g = _generator(seed)
    torch.manual_seed(int(torch.randint(0, 2 ** 31, (), generator=g)))
    regressor = nets.NoiseAwareRegressor(2, spread="x_t", energy_shift=-50.0, energy_scale=30.0).eval()
    x_t = torch.randn(64, 2, generator=g)
    t = int(torch.randint(0, 1000, (), generator=g))
    E = -50 + 30 * torch.randn(64, generator=g)
    refused = {metrics.z_scores: _refusal("tutorial_pkg.metrics.z_scores", "compute z from f and log_sigma yourself")}
    out, failed = _call(name, fn, regressor, x_t, t, E, refused=refused)
    if failed:
        return failed
    expected = metrics.z_scores(regressor, x_t, t, E)
    with torch.no_grad():
        f, log_sigma = regressor(x_t, t)
    if isinstance(out, Tensor):
        out = out.detach()
    suspects = {
        "divide by sigma, not by the variance sigma^2": (E - f) / (2 * log_sigma).exp(),
        "divide by sigma = exp(log_sigma), not by log_sigma": (E - f) / log_sigma,
        "check the sign: z = (E - f) / sigma": (f - E) / log_sigma.exp(),
        "standardise the residual: divide E - f by sigma": E - f,
    }
    return _diagnose(name, out, expected, suspects, 1e-5)


def check_coverage(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 4: ``fn(z, level)``, the share of z-scores inside the central interval that holds ``level`` of a
    standard normal (``|z| < 1.96`` for level 0.95)."""
    name = "coverage"
    g = _generator(seed)
    z = 1.3 * torch.randn(5000, generator=g, dtype=torch.float64)
    level = round(_scale(g, 0.5, 0.97), 2)
    refused = {metrics.coverage: _refusal("tutorial_pkg.metrics.coverage", "count the z inside the interval yourself")}
    out, failed = _call(name, fn, z, level, refused=refused)
    if failed:
        return failed
    if isinstance(out, Tensor) and out.numel() == 1:
        out = out.item()
    if isinstance(out, bool) or not isinstance(out, (float, int)):
        return _report(name, "fail", f"return one number, the share of z inside the interval, not {type(out).__name__}")
    normal = torch.distributions.Normal(0.0, 1.0)
    share = lambda inside: inside.double().mean().item()
    suspects = {
        "the interval is |z| < q with q the standard normal's quantile of (1 + level) / 2, not |z| < level":
            share(z.abs() < level),
        "the interval is central, |z| < q with q the quantile of (1 + level) / 2, not z < the quantile of level":
            share(z < normal.icdf(torch.tensor(level, dtype=torch.float64))),
        "use the quantile of (1 + level) / 2, so that each tail holds (1 - level) / 2":
            share(z.abs() < normal.icdf(torch.tensor(level, dtype=torch.float64))),
        "return the share inside the interval, not outside it": 1 - metrics.coverage(z, level),
        "return a share between 0 and 1, not a count": float((z.abs() < normal.icdf(
            torch.tensor((1 + level) / 2, dtype=torch.float64))).sum().item()),
    }
    expected = metrics.coverage(z, level)
    tol = 0.5 / z.numel()  # half a count: a share computed in float32 (z.float().mean()) is right too
    if abs(out - expected) < tol:
        return _report(name, "pass", "matches the reference on fresh random z")
    hint = next((h for h, wrong in suspects.items() if abs(out - wrong) < tol),
                "the share differs from the reference; count |z| < q for a standard normal's central quantile q")
    return _report(name, "fail", hint)


def check_guided_report(report: dict, samples: Tensor, *, data, eps_model, regressor, schedule: NoiseSchedule,
                        target: float, scale: float, seed: int, shipped=None,
                        blocks: Optional[int] = None) -> CheckResult:
    """Assignment 4: samples of classifier guidance of the conditional model by the student's regressor
    (``model_cond=True``, DDIM 50 steps), and their median energy error, checked on the samples themselves and
    repeated from ``seed``.

    With ``blocks = B`` (and the ``shipped`` regressor): the paired comparison. ``samples = {"yours": x, "shipped":
    x}``, each ``(B, n, 2)``, one ``ddim_sample`` call of ``B * n`` samples per regressor from the same ``seed``
    reshaped, so that block ``k`` of both starts from the same noise; ``report = {"yours": B per-block median
    errors, "shipped": B of them, "difference": {"mean", "se", "low", "high"}}``, the mean of the per-block
    differences yours - shipped with its standard error and 95 % t-interval. The check regenerates every block of
    both (one call each) and recomputes every block's error and the paired difference."""
    name = "guided samples"
    target = _check_setting(data=data, eps_model=eps_model, schedule=schedule, target=target, regressor=regressor,
                            scale=scale)
    blocks = _block_arguments(blocks)
    if blocks is not None and not isinstance(shipped, torch.nn.Module):
        raise TypeError(f"shipped must be the shipped regressor (an nn.Module) that blocks compare with, got "
                        f"{type(shipped).__name__}")
    if blocks is None and shipped is not None:
        raise ValueError("shipped is compared with block by block: give blocks with it")
    if report is None or samples is None:
        return _report(name, "not implemented", "not implemented yet: fill in the samples and the report")
    if blocks is not None:
        return _guided_blocks(name, report, samples, data=data, eps_model=eps_model, regressors={
            "yours": regressor, "shipped": shipped}, schedule=schedule, target=target, scale=scale, seed=seed,
            blocks=blocks)
    if not isinstance(samples, Tensor) or samples.ndim != 2 or samples.shape[0] == 0:
        got = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        return _report(name, "fail", f"samples must be an (n, 2) tensor of configurations, got {got}")
    n = samples.shape[0]
    failed = _check_samples(name, {scale: samples}, data, n=n, label=lambda key: "samples")
    if failed:
        return failed
    if not isinstance(report, dict) or "energy_error" not in report:
        return _report(name, "fail", "report must be a dict with the key 'energy_error'")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return _report(name, "fail", f"seed must be the int you seeded your generator with, got {seed!r}")
    device = next(eps_model.parameters()).device
    model = guidance.classifier_guided_model(eps_model, regressor, schedule, scale, model_cond=True)
    z = sampling.ddim_sample(model, (n, 2), schedule, num_steps=50, cond=torch.full((n,), target, device=device),
                             device=device, generator=torch.Generator(device).manual_seed(seed))
    if not torch.allclose(samples.double(), data.unstandardize(z.cpu().double()), atol=1e-3):
        return _report(name, "fail", "the samples are not what classifier guidance of the conditional model by your "
                                     "regressor gives with your seed (model_cond=True, DDIM 50 steps)")
    true = metrics.energy_error(data.system.energy(samples.double()), target).median
    value = _as_number(report["energy_error"])
    if value is None:
        return _report(name, "fail", "report['energy_error'] must be a finite number")
    if abs(value - true) > 1e-4 * max(1.0, abs(true)):
        return _report(name, "fail", "report['energy_error'] is not the median |E(x) - E*| of your samples")
    return _report(name, "pass", "the samples repeat from your seed and the report matches them")


def _guided_blocks(name, report, samples, *, data, eps_model, regressors, schedule, target, scale, seed,
                   blocks) -> CheckResult:
    if not isinstance(samples, dict) or set(samples) != set(regressors):
        return _report(name, "fail", "samples must be a dict {'yours': ..., 'shipped': ...}")
    n = None
    for key, x in samples.items():
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[0] != blocks or x.shape[2] != 2 or \
                (n is not None and x.shape[1] != n):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            return _report(name, "fail", f"samples[{key!r}] must be a ({blocks}, n, 2) tensor, {blocks} blocks of n "
                                         f"configurations (the same n for both), got {got}")
        n = x.shape[1]
    failed = _check_samples(name, {k: x.reshape(-1, 2) for k, x in samples.items()}, data, n=blocks * n,
                            label=lambda key: f"samples[{key!r}]")
    if failed:
        return failed
    if not isinstance(seed, int) or isinstance(seed, bool):
        return _report(name, "fail", f"seed must be the int you seeded your generator with, got {seed!r}")
    device = next(eps_model.parameters()).device
    noise = _block_noise((blocks * n, 2), seed, device)
    for key, regressor in regressors.items():
        model = guidance.classifier_guided_model(eps_model, regressor, schedule, scale, model_cond=True)
        failed = _regenerate_blocks(name, f"{key!r}", samples[key], model, data, schedule, target, noise, n, device)
        if failed:
            return failed
    if not isinstance(report, dict) or not {"yours", "shipped", "difference"} <= set(report):
        return _report(name, "fail", "report must be a dict with the keys 'yours', 'shipped' and 'difference'")
    errors = {}
    for key in regressors:
        values = report[key].tolist() if isinstance(report[key], Tensor) else report[key]
        if not isinstance(values, (list, tuple)) or len(values) != blocks or any(_as_number(v) is None for v in values):
            return _report(name, "fail", f"report[{key!r}] must hold {blocks} finite numbers, one per block")
        errors[key] = [metrics.energy_error(data.system.energy(xb.double()), target) for xb in samples[key]]
        for b, (value, true) in enumerate(zip(values, errors[key])):
            if abs(_as_number(value) - true.median) > 1e-4 * max(1.0, abs(true.median)):
                if abs(_as_number(value) - true.mean) <= 1e-4 * max(1.0, abs(true.mean)):
                    return _report(name, "fail", "the energy error of a block is the median, not the mean, of "
                                                 "|E(x) - E*| over its samples")
                return _report(name, "fail", f"report[{key!r}][{b}] is not the median |E(x) - E*| of your block {b}")
    yours = torch.tensor([e.median for e in errors["yours"]], dtype=torch.float64)
    theirs = torch.tensor([e.median for e in errors["shipped"]], dtype=torch.float64)
    entry = report["difference"]
    if isinstance(entry, dict) and {"mean", "se"} <= set(entry):
        mean, se = _as_number(entry["mean"]), _as_number(entry["se"])
        diff = yours - theirs
        if mean is not None and abs(mean + diff.mean().item()) < 1e-6 * max(1.0, abs(diff.mean().item())) and \
                abs(diff.mean().item()) > 1e-12:
            return _report(name, "fail", "the difference is yours - shipped, block by block, not shipped - yours")
        unpaired = math.sqrt((yours.var() + theirs.var()).item() / blocks)
        if se is not None and abs(se - unpaired) < 1e-6 * max(1.0, unpaired) and \
                abs(unpaired - diff.std().item() / math.sqrt(blocks)) > 1e-9:
            return _report(name, "fail", "pair the blocks: both regressors start each block from the same noise, so "
                                         "the standard error is that of the per-block differences, not "
                                         "sqrt(se_yours^2 + se_shipped^2)")
    failed = _blocks_interval(name, "report['difference']", (yours - theirs).tolist(), entry)
    if failed:
        return failed
    return _report(name, "pass", f"the {blocks} blocks of both regressors repeat from your seed, and the errors and "
                                 "their paired difference match them")


def _numbers(out, keys: tuple) -> Optional[dict]:
    """``out`` as a dict of floats over ``keys`` (each a number or a one-element tensor), or None."""
    if not isinstance(out, dict) or set(out) != set(keys):
        return None
    values = {}
    for key in keys:
        v = out[key]
        if isinstance(v, Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        values[key] = float(v)
    return values


def check_paired_difference(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 3: ``fn(a, b)``, two lists of one value per block (block ``k`` of both from the same noise) ->
    ``{"mean", "se", "low", "high"}``: the mean of the per-block differences ``a[k] - b[k]``, its standard error
    ``s_d / sqrt(n)`` (``s_d`` the standard deviation of the differences, with ``n - 1``) and the 95 % t-interval
    ``mean -+ stats.t_quantile(n - 1) * se``. The function is called at 5 blocks (the notebook's) and at 3 and 8, on
    fresh values each time, so that a t-quantile taken from the notebook's ``blocks`` instead of the lists passed in
    fails at every seed, with a hint that names it. ``stats.paired`` (and the package's other comparisons) refuse to
    run inside ``fn``."""
    from . import stats
    name = "paired difference"
    g = _generator(seed)
    instead = "take the differences a[k] - b[k] and compute their mean, standard error and t-interval yourself"
    refused = {fn_: _refusal(f"tutorial_pkg.stats.{fn_.__name__}", instead)
               for fn_ in (stats.paired, stats.unpaired, stats.replicates, stats.against)}
    keys = ("mean", "se", "low", "high")

    def summary(mean, se, q):
        return {"mean": mean, "se": se, "low": mean - q * se, "high": mean + q * se}

    close = lambda x, y: all(abs(x[k] - y[k]) <= 1e-6 * (1 + abs(y[k])) for k in keys)
    calls = []  # (n, a, b, what fn returned, the reference)
    for n in _PAIRED_BLOCKS:
        shared = 1 + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)   # what the common noise does to both
        a = (shared + _scale(g, -0.3, 0.3) + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)).tolist()
        b = (shared + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)).tolist()
        out, failed = _call(name, fn, list(a), list(b), refused=refused)
        if failed:
            return failed
        got = _numbers(out, keys)
        if got is None:
            return _report(name, "fail", 'return a dict {"mean": ..., "se": ..., "low": ..., "high": ...} of four '
                                         'numbers')
        d = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
        calls.append((n, a, b, got, summary(d.mean().item(), d.std().item() / math.sqrt(n),
                                            stats.t_quantile(n - 1))))
    if all(close(got, expected) for *_, got, expected in calls):
        return _report(name, "pass", "matches the reference on fresh random blocks, at "
                                     + ", ".join(str(n) for n in _PAIRED_BLOCKS) + " blocks")
    # one t-quantile for every block count: taken from a constant (the notebook's blocks), not from the lists
    for dof in range(1, 31):
        if all(close(got, summary(expected["mean"], expected["se"], stats.t_quantile(dof)))
               for *_, got, expected in calls):
            return _report(name, "fail", "the t-quantile's degrees of freedom are those of the lists passed in, "
                                         "len(a) - 1, not of the notebook's blocks: the check calls the function "
                                         "at " + ", ".join(str(n) for n in _PAIRED_BLOCKS) + " blocks")
    n, a, b, got, expected = next(c for c in calls if not close(c[3], c[4]))  # the first call that fails
    va, vb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    mean, root_n, t = expected["mean"], math.sqrt(n), stats.t_quantile(n - 1)
    se_a, se_b = va.std().item() / root_n, vb.std().item() / root_n
    suspects = [
        (summary(mean, se_a, t), "the standard error is that of the differences a[k] - b[k], not of a alone: pairing "
                                 "by block is what cancels the noise the two share"),
        (summary(mean, se_b, t), "the standard error is that of the differences a[k] - b[k], not of b alone: pairing "
                                 "by block is what cancels the noise the two share"),
        (summary(mean, math.hypot(se_a, se_b), t), "the standard error is that of the differences a[k] - b[k], not "
                                                   "the unpaired sqrt(se_a^2 + se_b^2): pairing by block cancels the "
                                                   "noise the two share"),
        (summary(mean, expected["se"], 1.96), "with n blocks the interval takes the t-quantile "
                                              "stats.t_quantile(n - 1), not the normal 1.96"),
        (summary(mean, (va - vb).std(correction=0).item() / root_n, t), "the standard deviation of the differences "
                                                                         "divides by n - 1, not n (torch's std() does)"),
        (summary(mean, expected["se"], stats.t_quantile(n)), "the t-quantile has n - 1 degrees of freedom, not n"),
        (summary(-mean, expected["se"], t), "check the sign: the differences are a - b, not b - a"),
    ]
    hint = next((h for wrong, h in suspects if close(got, wrong)),
                f"the values differ from the reference at {n} blocks; the mean, standard error and t-interval of "
                f"a[k] - b[k]")
    return _report(name, "fail", hint)


_PAIRED_BLOCKS = (5, 3, 8)  # the notebook's 5 blocks first, then fewer and more


def check_std_and_se(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 4: ``fn(v)``, a float64 tensor of ``n`` values -> ``(s, se)``: the standard deviation ``s`` of v
    (with ``n - 1``, torch's ``v.std()``) and its standard error by the delta method from the fourth central moment
    ``m4 = mean((v - mean(v))^4)`` (the derivation is the student's: assignment 4, cell a4-20). The inputs are
    heavy-tailed (a scale mixture of normals), so that the normal-theory values, ``s / sqrt(2 n)`` and
    ``s / sqrt(2 (n - 1))``, fail, with a hint that names them (half marks in grading)."""
    name = "std and its standard error"
    g = _generator(seed)
    n = int(torch.randint(200, 2001, (), generator=g))
    v = _scale(g, -3, 3) + _scale(g, 0.5, 2) * torch.randn(n, generator=g, dtype=torch.float64) * (
        0.6 * torch.randn(n, generator=g, dtype=torch.float64)).exp()
    out, failed = _call(name, fn, v.clone())
    if failed:
        return failed
    if isinstance(out, (tuple, list)) and len(out) == 2:
        got = _numbers(dict(zip(("s", "se"), out)), ("s", "se"))
    else:
        got = None
    if got is None:
        return _report(name, "fail", "return a pair (s, se) of two numbers")
    s, s0 = v.std().item(), v.std(correction=0).item()
    m4 = (v - v.mean()).pow(4).mean().item()
    delta = lambda s_: math.sqrt(max(m4 - s_ ** 4, 0.0) / n) / (2 * s_)
    close = lambda x, y: abs(x - y) <= 1e-6 * (1 + abs(y))
    if close(got["s"], s) and close(got["se"], delta(s)):
        return _report(name, "pass", "matches the reference on fresh heavy-tailed values")
    # forms that agree with the reference to first order (they differ by O(1/n)): the standard deviation with n
    # inside m4 - s^4 or in 2 s, m4 with n - 1, or n - 1 under the square root
    m4_1 = (v - v.mean()).pow(4).sum().item() / (n - 1)
    equivalent = [math.sqrt(max(m4 - s0 ** 4, 0.0) / n) / (2 * s), math.sqrt(max(m4 - s0 ** 4, 0.0) / n) / (2 * s0),
                  delta(s0), math.sqrt(max(m4_1 - s ** 4, 0.0) / n) / (2 * s),
                  math.sqrt(max(m4 - s ** 4, 0.0) / (n - 1)) / (2 * s)]
    if close(got["s"], s) and any(close(got["se"], e) for e in equivalent):
        return _report(name, "pass", "matches the reference to first order on fresh heavy-tailed values (your form "
                                     "differs from it by a term of order 1/n, as the delta method allows)")
    if close(got["s"], s0):
        return _report(name, "fail", "s is the standard deviation with n - 1 (torch's v.std()), not with n")
    if not close(got["s"], s):
        return _report(name, "fail", "the values differ from the reference: s is the standard deviation of v, "
                                     "torch's v.std()")
    suspects = [
        (s / math.sqrt(2 * n), "s / sqrt(2n) is the normal-theory value (m4 = 3 s^4): these values are not normal, "
                               "use their own fourth central moment m4"),
        (s / math.sqrt(2 * (n - 1)), "s / sqrt(2(n - 1)) is the normal-theory value (m4 = 3 s^4): these values are "
                                     "not normal, use their own fourth central moment m4"),
        (math.sqrt(max(m4 - s ** 4, 0.0) / n), "sqrt((m4 - s^4) / n) is the standard error of the variance s^2; "
                                               "the delta method divides it by ds^2/ds = 2 s"),
        (math.sqrt(max(m4 - s ** 2, 0.0) / n) / (2 * s), "the variance of s^2 is (m4 - s^4) / n: s to the fourth "
                                                         "power, not squared"),
        (s / math.sqrt(n), "s / sqrt(n) is the standard error of a mean, not of a standard deviation"),
    ]
    hint = next((h for wrong, h in suspects if close(got["se"], wrong)),
                "the values differ from the reference; carry Var(s^2), about (m4 - s^4) / n, to s by a "
                "first-order expansion of the square root about s^2")
    return _report(name, "fail", hint)


# -- assignment 5: guidance through x0_hat (MMPS) and the guidance interval ----------------------------------
def _mmps_setting(g: torch.Generator, D: int = 3):
    """A two-component mixture in D dimensions (its Tweedie covariance depends on x_t), a scalar observation
    a^T x_0 + N(0, sigma_y^2), a step t and inputs, all new at every call."""
    from . import schedules
    schedule = schedules.linear_schedule(1000)
    means = 1.5 * torch.randn(2, D, generator=g, dtype=torch.float64)
    L = 0.5 * torch.randn(2, D, D, generator=g, dtype=torch.float64)
    covs = L @ L.transpose(1, 2) + 0.2 * torch.eye(D, dtype=torch.float64)
    mixture = GaussianMixture([0.4, 0.6], means, covs)
    a = torch.randn(D, generator=g, dtype=torch.float64)
    sigma_y = _scale(g, 0.2, 1.0)
    t = int(torch.randint(50, 900, (), generator=g))
    x_t = torch.randn(16, D, generator=g, dtype=torch.float64)
    y = 2 * torch.randn(16, generator=g, dtype=torch.float64)
    return schedule, mixture.eps_model(schedule), a, sigma_y, t, x_t, y


def _mmps_suspects(eps_model, x_t, t, y, a, sigma_y, schedule) -> dict:
    """The guided eps of the likely mistakes, built from the package's Tweedie vector-Jacobian product."""
    from . import tweedie
    eps, x0, vjp = tweedie.tweedie_vjp(eps_model, x_t, t, None, schedule)
    ab = schedule.value("alpha_bars", t)
    Ja = vjp(a.expand_as(x0))                                   # J^T a, (B, D)
    aJa = Ja @ a                                                # a^T J a, (B,)
    r = y - x0 @ a
    cov = (1 - ab) / math.sqrt(ab) * aJa
    step = lambda grad: eps - math.sqrt(1 - ab) * grad
    return {
        "check the sign: the likelihood's gradient is *subtracted* from eps (chapter 3, eq. guided-eps)":
            eps + math.sqrt(1 - ab) * Ja * (r / (sigma_y ** 2 + cov))[:, None],
        "C_t is sigma_y^2 alone: that is DPS. MMPS keeps the posterior covariance in C_t (chapter 9, eq. mmps)":
            step(Ja * (r / sigma_y ** 2)[:, None]),
        "the gradient reaches x_t through the denoiser: J^T a (a vector-Jacobian product), not a itself":
            step(a * (r / (sigma_y ** 2 + cov))[:, None]),
        "C_t needs the covariance Sigma = ((1 - ab_t) / sqrt(ab_t)) J of eq. (tweedie-jacobian), not J itself":
            step(Ja * (r / (sigma_y ** 2 + aJa))[:, None]),
        "C_t's covariance Sigma_0|t is off by a factor that depends on alpha_bar_t alone: read its prefactor again "
        "from eq. (tweedie-jacobian), from the derivative of x0_hat with respect to x_t":
            step(Ja * (r / (sigma_y ** 2 + (1 - ab) * aJa))[:, None]),
        "the noise variance in C_t is sigma_y^2, not sigma_y": step(Ja * (r / (sigma_y + cov))[:, None]),
        "the likelihood's gradient needs the factor sqrt(1 - alpha_bar) to become an eps (chapter 3, eq. guided-eps)":
            eps - Ja * (r / (sigma_y ** 2 + cov))[:, None],
    }


class _CallOnly:
    """A test's eps-model handed to a student's function as a call and nothing else: no public attribute leads to
    the exact mixture behind it, whose posterior moments would give the MMPS covariance without the
    vector-Jacobian product that the task asks for. (The package's own wrappers keep their inner model reachable;
    a test that checks how a student uses a model hides it.) ``__slots__``: no ``__dict__`` to look into."""

    __slots__ = ("_model",)

    def __init__(self, model: Callable):
        self._model = model

    def __call__(self, x_t: Tensor, t, cond=None) -> Tensor:
        return self._model(x_t, t, cond)

    def __repr__(self) -> str:
        return "eps_model"


def check_mmps_eps(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 5: ``fn(eps_model, x_t, t, y, a, sigma_y, schedule)``, the MMPS-guided eps of chapter 9, eq.
    (mmps), for a scalar observation y = a^T x_0 + N(0, sigma_y^2): shape ``(B, D)`` like ``x_t``.

    Compared with ``tweedie.mmps_model`` on a two-component mixture that is new at every call. The student's
    function gets the mixture's eps-model as a bare call (:class:`_CallOnly`), and the package's Tweedie functions,
    guidance wrappers and exact posterior moments refuse to run while it runs."""
    from . import analytic, tweedie
    name = "MMPS-guided eps"
    g = _generator(seed)
    schedule, eps_model, a, sigma_y, t, x_t, y = _mmps_setting(g)
    write = "compute x0_hat and the vector-Jacobian product with torch.autograd yourself"
    refused = {tweedie.tweedie_vjp: _refusal("tutorial_pkg.tweedie.tweedie_vjp", write),
               tweedie.posterior_covariance: _refusal("tutorial_pkg.tweedie.posterior_covariance", write),
               tweedie._LinearGaussian.__call__: _refusal("tutorial_pkg.tweedie.mmps_model", "write the MMPS step yourself"),
               tweedie.DPSModel.__call__: _refusal("tutorial_pkg.tweedie.dps_model", "write the MMPS step yourself"),
               GaussianMixture.posterior_moments: _refusal("tutorial_pkg.analytic.GaussianMixture.posterior_moments", write),
               analytic.ExactX0Model.__call__: _refusal("tutorial_pkg.analytic.ExactX0Model", write)}
    out, failed = _call(name, fn, _CallOnly(eps_model), x_t.clone(), t, y.clone(), a.clone(), sigma_y, schedule,
                        refused=refused)
    if failed:
        return failed
    expected = tweedie.mmps_model(eps_model, a[None], sigma_y, schedule)(x_t, t, y)
    if isinstance(out, Tensor):
        out = out.detach()
    result = _diagnose(name, out, expected, _mmps_suspects(eps_model, x_t, t, y, a, sigma_y, schedule), 1e-6)
    if result.status == "fail" and result.message.startswith("the values differ"):
        hint = _mmps_prefactor(out, eps_model, x_t, t, y, a, sigma_y, schedule)
        if hint:
            return _report(name, "fail", hint)
    return result


def _mmps_prefactor(out, eps_model, x_t, t, y, a, sigma_y, schedule) -> Optional[str]:
    """The whole family of prefactor slips in Sigma_0|t: ``out`` is the MMPS step with C_t = sigma_y^2 + c a^T J a
    for one c that is the same on every row (so it depends on the step's alpha_bar_t alone, not on x_t or y), but not
    the right c = (1 - ab_t) / sqrt(ab_t). c is fitted row by row: eps - out = sqrt(1 - ab) (r / C_t) J^T a."""
    from . import tweedie
    if not isinstance(out, Tensor) or out.shape != x_t.shape or not out.dtype.is_floating_point:
        return None
    eps, x0, vjp = tweedie.tweedie_vjp(eps_model, x_t, t, None, schedule)
    ab = schedule.value("alpha_bars", t)
    Ja = vjp(a.expand_as(x0)).detach()
    eps, x0 = eps.detach(), x0.detach()
    aJa, r, d = Ja @ a, y - x0 @ a, eps - out.double()
    k = (d * Ja).sum(-1) / (Ja * Ja).sum(-1)                   # sqrt(1 - ab) r / C_t, row by row
    if not torch.isfinite(k).all() or (k == 0).any() or \
            (d - k[:, None] * Ja).norm() > 1e-6 * (1 + d.norm()):  # not along J^T a: another mistake
        return None
    c = (math.sqrt(1 - ab) * r / k - sigma_y ** 2) / aJa
    right = (1 - ab) / math.sqrt(ab)
    if not torch.isfinite(c).all() or (c.max() - c.min()) > 1e-6 * c.abs().max() or abs(c.mean() - right) < 1e-6 * right:
        return None
    return (f"the prefactor of Sigma_0|t is off: your C_t is sigma_y^2 + c a^T J a with c = {c.mean().item():.4g} "
            f"on every row, where (1 - ab_t) / sqrt(ab_t) = {right:.4g} at this step (ab_t = {ab:.4g}): check which "
            "derivative eq. (tweedie-jacobian) takes (of x0_hat, not of eps, with respect to x_t)")


def _mmps_exact_posterior(prior: GaussianMixture, a: Tensor, sigma_y: float, y: float) -> tuple[float, float]:
    """The exact mean and variance of a^T x_0 given y = a^T x_0 + N(0, sigma_y^2), for a one-component (Gaussian)
    prior: Gaussian conditioning of the scalar a^T x_0 ~ N(a^T m, a^T S a)."""
    m, S = prior.means[0], prior.covs[0]
    s, mu = (a @ S @ a).item(), (a @ m).item()
    return mu + s / (s + sigma_y ** 2) * (y - mu), s * sigma_y ** 2 / (s + sigma_y ** 2)


def check_exact_posterior(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 5: ``fn(m, S, a, sigma_y, y)`` -> ``(mean, var)``, the exact posterior mean and variance of the
    scalar u = a^T x_0 given y = a^T x_0 + N(0, sigma_y^2), for a Gaussian prior x_0 ~ N(m, S) (``m`` ``(D,)``,
    ``S`` ``(D, D)``, ``a`` ``(D,)``, float64; ``sigma_y`` and ``y`` numbers).

    Compared exactly with Gaussian conditioning on a prior, an observation vector and a noise level that are new at
    every call (and in a new dimension), with a hint for each likely mistake."""
    name = "exact posterior"
    g = _generator(seed)
    expected, suspects, out = None, {}, None
    for D in (2 + int(torch.randint(0, 3, (), generator=g)), 1):
        m = 1.5 * torch.randn(D, generator=g, dtype=torch.float64)
        L = torch.randn(D, D, generator=g, dtype=torch.float64)
        S = 0.5 * L @ L.T + 0.2 * torch.eye(D, dtype=torch.float64)
        a = torch.randn(D, generator=g, dtype=torch.float64)
        sigma_y, y = _scale(g, 0.2, 1.5), 3 * torch.randn((), generator=g, dtype=torch.float64).item()
        out, failed = _call(name, fn, m.clone(), S.clone(), a.clone(), sigma_y, y, refused={
            _mmps_exact_posterior: _refusal("the grader's reference", "condition the Gaussian yourself")})
        if failed:
            return failed
        if isinstance(out, Tensor) and out.numel() == 2:
            out = tuple(out.reshape(-1))
        values = [_as_number(v.detach() if isinstance(v, Tensor) else v) for v in out] \
            if isinstance(out, (tuple, list)) and len(out) == 2 else None
        if values is None or None in values:
            return _report(name, "fail", f"return a pair of finite numbers (mean, var), got {out!r:.80}")
        s, mu = (a @ S @ a).item(), (a @ m).item()
        mean, var = mu + s / (s + sigma_y ** 2) * (y - mu), s * sigma_y ** 2 / (s + sigma_y ** 2)
        suspects = {
            0: {"the exact mean is the prior's mean of a^T x_0: condition on y": mu,
                "the exact mean equals y, but y is a noisy observation: condition a^T x_0 on it": y,
                "the gain is s / (s + sigma_y^2), with s = a^T S a the prior's variance of u, not its inverse":
                    mu + (s + sigma_y ** 2) / s * (y - mu),
                "the noise variance is sigma_y^2, not sigma_y": mu + s / (s + sigma_y) * (y - mu)},
            1: {"the exact variance is the prior's variance of a^T x_0: condition on y": s,
                "a^T S a + sigma_y^2 is the variance of y, not the posterior variance of a^T x_0": s + sigma_y ** 2,
                "the exact variance is not sigma_y^2: the prior's variance of a^T x_0 counts too": sigma_y ** 2,
                "the noise variance is sigma_y^2, not sigma_y": s * sigma_y / (s + sigma_y)},
        }
        near = lambda value, want: abs(value - want) <= 1e-9 * max(1.0, abs(want))
        wrong = [k for k, truth in enumerate((mean, var)) if not near(values[k], truth)]
        if wrong:  # a hint (half marks in grading) only when the other of the two is right
            k = wrong[0]
            hint = next((h for h, w in suspects[k].items() if near(values[k], w)), None) if len(wrong) == 1 else None
            what = ("mean", "variance")[k] if len(wrong) == 1 else "mean and the variance"
            return _report(name, "fail", hint or f"the values differ from the exact posterior {what} of a^T x_0 "
                                                 f"given y (D = {D}): re-derive them by Gaussian conditioning")
    return _report(name, "pass", "the exact posterior mean and variance, on a new prior and observation")


_MMPS_KEYS = ("exact_mean", "exact_var", "mean", "var", "z_mean", "z_var")


def check_mmps_report(report: dict, samples: Tensor, *, prior: GaussianMixture, a: Tensor, sigma_y: float, y: float,
                      schedule: NoiseSchedule, seed: int, num_steps: int = 50, n: Optional[int] = None) -> CheckResult:
    """Assignment 5: MMPS samples of a Gaussian prior given one observation y, and their report, checked on the
    samples themselves and repeated from ``seed``.

    ``samples`` are the ``(n, D)`` outputs of ``ddim_sample`` (``num_steps`` steps, float64, generator seeded with
    ``seed``) of the student's MMPS-guided eps; the check regenerates them with ``tweedie.mmps_model``.
    ``report`` holds the exact posterior mean and variance of a^T x_0 given y (``exact_mean``, ``exact_var``), the
    samples' mean and variance of a^T x (``mean``, ``var``, the unbiased variance), and the statistics
    ``z_mean = (mean - exact_mean) / (sd / sqrt(n))`` (sd the samples' standard deviation, or the exact posterior's:
    both are accepted) and ``z_var = (var / exact_var - 1) / sqrt(2 / (n - 1))`` (or with ``n`` in place of ``n - 1``).
    ``n``, when given (the grader gives the notebook's), is the number of samples the notebook asks for: another
    number, like another seed, would choose among verdicts."""
    from . import _checks, tweedie
    name = "MMPS samples and report"
    if not isinstance(prior, GaussianMixture) or prior.K != 1:
        raise TypeError(f"prior must be the notebook's Gaussian prior (a one-component GaussianMixture), got {prior!r}")
    _checks.tensor("a", a, ndim=1, floating=True)
    if a.shape != (prior.D,):
        raise ValueError(f"a must have shape ({prior.D},), got {tuple(a.shape)}")
    sigma_y = _checks.real("sigma_y", sigma_y, low=0.0, low_open=True)
    y = _checks.real("y", y)
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    num_steps = _checks.integer("num_steps", num_steps, low=1)
    if n is not None:
        n = _checks.integer("n", n, low=10)
    if report is None or samples is None:
        return _report(name, "not implemented", "not implemented yet: fill in the samples and the report")
    if not isinstance(samples, Tensor) or samples.ndim != 2 or samples.shape[1] != prior.D or samples.shape[0] < 10:
        got = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        return _report(name, "fail", f"samples must be an (n, {prior.D}) tensor with n >= 10, got {got}")
    if not bool(torch.isfinite(samples).all()):
        return _report(name, "fail", "samples must be finite: they hold NaN or infinite values")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return _report(name, "fail", f"seed must be the int you seeded your generator with, got {seed!r}")
    if not isinstance(report, dict) or not set(_MMPS_KEYS) <= set(report):
        return _report(name, "fail", f"report must be a dict with the keys {', '.join(_MMPS_KEYS)}")
    if n is not None and samples.shape[0] != n:
        return _report(name, "fail", f"samples must hold the notebook's n = {n} samples (cell a5-07), got "
                                     f"{samples.shape[0]}: sample with the notebook's n, as with its seed")
    n = samples.shape[0]
    a = a.double()
    model = tweedie.mmps_model(prior.eps_model(schedule), a[None], sigma_y, schedule)
    mine = sampling.ddim_sample(model, (n, prior.D), schedule, num_steps=num_steps,
                                cond=torch.full((n,), y, dtype=torch.float64), dtype=torch.float64,
                                generator=torch.Generator().manual_seed(seed))
    if not torch.allclose(samples.detach().double(), mine, atol=1e-6):
        return _report(name, "fail", f"the samples are not what ddim_sample(model, ({n}, {prior.D}), schedule, "
                                     f"num_steps={num_steps}, cond=..., dtype=torch.float64, generator=torch.Generator()"
                                     ".manual_seed(seed)) gives with your seed and the MMPS eps: sample as the notebook "
                                     "says")
    exact_mean, exact_var = _mmps_exact_posterior(prior, a, sigma_y, y)
    u = samples.detach().double() @ a
    mean, var = u.mean().item(), u.var().item()
    truth = {"exact_mean": exact_mean, "exact_var": exact_var, "mean": mean, "var": var,
             "z_mean": (mean - exact_mean) / math.sqrt(var / n), "z_var": (var / exact_var - 1) / math.sqrt(2 / (n - 1))}
    suspects = {
        "var": {"use the unbiased sample variance (divide by n - 1), as torch.var does by default": u.var(unbiased=False).item()},
        "z_mean": {"divide the difference of the means by the standard error sd / sqrt(n), not by the sd":
                       (mean - exact_mean) / math.sqrt(var),
                   "divide the difference of the means by the standard error sd / sqrt(n), not by the exact sd":
                       (mean - exact_mean) / math.sqrt(exact_var)},
        "z_var": {"z_var compares var / exact_var with 1 in units of its standard error, not in raw units":
                      var / exact_var - 1,
                  "z_var's standard error is too small by a factor near sqrt(2): recheck the variance of a Gaussian "
                  "sample variance (of a chi-square variable), not that of a sample mean":
                      (var / exact_var - 1) / math.sqrt(1 / (n - 1)),
                  "z_var's standard error is that of the sample variance itself, not of the ratio var / exact_var: "
                  "divide it by exact_var": (var / exact_var - 1) / (exact_var * math.sqrt(2 / (n - 1)))},
    }
    # also right: the exact posterior's sd in z_mean, and n in place of n - 1 in z_var's standard error (a difference
    # of 1 / (2 n) in it)
    accepted = {"z_mean": (mean - exact_mean) / math.sqrt(exact_var / n),
                "z_var": (var / exact_var - 1) / math.sqrt(2 / n)}
    near = lambda value, want: abs(value - want) <= 1e-6 * max(1.0, abs(want))
    wrong = []
    for key in _MMPS_KEYS:
        value = _as_number(report[key])
        if value is None:
            return _report(name, "fail", f"report[{key!r}] must be a finite number")
        if not (near(value, truth[key]) or (key in accepted and near(value, accepted[key]))):
            wrong.append((key, value))
    var_n = u.var(unbiased=False).item()                     # the biased variance, which divides by n
    biased = {**truth, "var": var_n, "z_mean": (mean - exact_mean) / math.sqrt(var_n / n),
              "z_var": (var_n / exact_var - 1) / math.sqrt(2 / (n - 1))}
    if wrong and near(_as_number(report["var"]), var_n) and all(
            near(value, biased[key]) or (key in accepted and near(value, accepted[key])) for key, value in wrong):
        # one slip carried into the statistics: a named mistake, not a cascade of unexplained entries
        return _report(name, "fail", "use the unbiased sample variance (divide by n - 1, not by n), as torch.var "
                                     "does by default: report['var'] divides by n")
    if wrong:  # a hint (half marks in grading) only for one named mistake in an otherwise right report
        key, value = wrong[0]
        hint = next((h for h, w in suspects.get(key, {}).items() if near(value, w)), None) if len(wrong) == 1 else None
        if hint is None and near(_as_number(report["var"]), var_n):
            hint = ("report[...] entries are not what the samples give; note that report['var'] divides by n: the "
                    "unbiased sample variance divides by n - 1")
        return _report(name, "fail", hint or f"report[{key!r}] is not what the samples (or the exact posterior) give"
                                             + (f", nor are {len(wrong) - 1} more of its entries" if len(wrong) > 1 else ""))
    return _report(name, "pass", "the samples repeat from your seed, and the exact moments and the statistics match")


def check_interval_cfg(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 5: ``fn(eps_cond, eps_uncond, t, gamma, t_low, t_high)``, CFG at ``gamma`` for the package steps
    ``t_low <= t <= t_high`` and the conditional prediction (gamma = 1) elsewhere (chapter 8, guidance in a limited
    interval); ``t`` is a ``(B,)`` integer tensor (one step per sample) or an int."""
    name = "guidance interval"
    g = _generator(seed)
    eps_c, eps_u, _ = _inputs(g, B=40)
    gamma = _scale(g, 2.0, 6.0)
    t_low = int(torch.randint(50, 400, (), generator=g))
    t_high = t_low + int(torch.randint(100, 500, (), generator=g))
    t = torch.randint(0, 1000, (40,), generator=g)
    t[:4] = torch.tensor([t_low, t_high, t_low - 1, t_high + 1])         # both ends and their neighbours
    refused = {**_CFG_REFUSED,
               guidance.GuidanceInterval.__call__: _refusal("tutorial_pkg.guidance.guidance_interval",
                                                            "write the interval rule yourself")}
    inside = ((t >= t_low) & (t <= t_high))[:, None]
    cfg = lambda w: w * eps_c + (1 - w) * eps_u
    expected = torch.where(inside, cfg(gamma), eps_c)
    suspects = {
        "you guide outside the interval and not inside it: CFG applies for t_low <= t <= t_high":
            torch.where(inside, eps_c, cfg(gamma)),
        "outside the interval the scale is 1 (the conditional prediction), not 0 (the unconditional one)":
            torch.where(inside, cfg(gamma), eps_u),
        "the interval includes both ends: t_low <= t <= t_high":
            torch.where(((t > t_low) & (t < t_high))[:, None], cfg(gamma), eps_c),
        "the interval is closed at both ends, t_low <= t <= t_high: yours leaves out t_high (a half-open range)":
            torch.where(((t >= t_low) & (t < t_high))[:, None], cfg(gamma), eps_c),
        "the interval is closed at both ends, t_low <= t <= t_high: yours leaves out t_low":
            torch.where(((t > t_low) & (t <= t_high))[:, None], cfg(gamma), eps_c),
        "the roles are swapped: gamma weighs the conditional prediction, gamma * eps_cond + (1 - gamma) * eps_uncond":
            torch.where(inside, gamma * eps_u + (1 - gamma) * eps_c, eps_c),
        "off by one: gamma is the weight of the conditional prediction, not Ho & Salimans' w":
            torch.where(inside, cfg(gamma + 1), eps_c),
        "the rule must depend on t: guide only the samples whose step lies in the interval": cfg(gamma),
    }
    out, failed = _call(name, fn, eps_c, eps_u, t, gamma, t_low, t_high, refused=refused)
    if failed:
        return failed
    out = out.detach() if isinstance(out, Tensor) else out
    if _shape_hint(out, expected) is not None or not _close(out, expected, 1e-9):
        return _diagnose(name, out, expected, suspects, 1e-9)
    for t_int in (t_low, t_high + 1):                                      # an int step, inside and outside
        out, failed = _call(name, fn, eps_c, eps_u, t_int, gamma, t_low, t_high, refused=refused)
        if failed:
            return failed
        want = cfg(gamma) if t_int == t_low else eps_c
        if not _close(out.detach() if isinstance(out, Tensor) else out, want, 1e-9):
            return _report(name, "fail", f"right for a tensor t, but not for the int t = {t_int}: the rule must accept "
                                         "an int step too (a sampler passes one)")
    return _report(name, "pass", "matches the reference on fresh random inputs, for tensor and int t")


def _window_recursion(mean_c, var_c, mean_u, var_u, scale, windows, schedule, *, last=True,
                      start_var=1.0, wrap=False) -> Tensor:
    """The 50-step DDIM moment recursion of :func:`check_window_moments` written out, with a mistake switched on:
    the last step to clean data left out, a start other than N(0, 1), or (``wrap``) the last step's t' = -1 read
    as ``alpha_bars[-1]`` (the noisiest step) instead of alpha_bar = 1."""
    ab = schedule.alpha_bars.double()
    steps = sampling.ddim_timesteps(schedule.T, 50)

    def eps(mean, var, t):  # the exact eps of N(mean, var) at step t: a x + c
        a = (1 - ab[t]).sqrt() / (ab[t] * var + 1 - ab[t])
        return a, -a * ab[t].sqrt() * mean

    rows = []
    for lo, hi in windows:
        rule, M, V = scale(lo, hi), torch.tensor(0.0, dtype=torch.float64), torch.tensor(start_var, dtype=torch.float64)
        pairs = list(zip(steps, steps[1:] + [-1]))
        for t, t_prev in (pairs if last else pairs[:-1]):
            g = rule(t) if callable(rule) else rule
            (a_c, c_c), (a_u, c_u) = eps(mean_c, var_c, t), eps(mean_u, var_u, t)
            a, c = g * a_c + (1 - g) * a_u, g * c_c + (1 - g) * c_u
            ab_prev = ab[t_prev] if t_prev >= 0 or wrap else torch.tensor(1.0, dtype=torch.float64)
            k = (1 - ab_prev).sqrt() - (ab_prev / ab[t]).sqrt() * (1 - ab[t]).sqrt()
            A, B = (ab_prev / ab[t]).sqrt() + k * a, k * c
            M, V = A * M + B, A ** 2 * V
        rows.append(torch.stack([M, V]))
    return torch.stack(rows)


def check_window_moments(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 5: ``fn(mean_c, var_c, mean_u, var_u, gamma, windows, schedule)`` -> ``(len(windows), 2)``, the
    exact output mean and variance of a 50-step DDIM sampler (eta = 0, leading spacing) for one-dimensional
    Gaussians N(mean_c, var_c) and N(mean_u, var_u) with CFG at ``gamma`` only in the window
    ``(t_low, t_high)`` of each row and gamma = 1 elsewhere (chapter 8, eq. affine-recursion).

    Compared with ``sampling.gaussian_sampler_moments`` with ``guidance.guidance_interval``, on Gaussians, a scale and
    windows that are new at every call; these, ``tweedie.affine_sampler_moments`` and ``sampling.ddim_coefficients``
    refuse to run while the student's function runs: the student writes the recursion."""
    from . import schedules
    name = "window moments"
    g = _generator(seed)
    schedule = schedules.linear_schedule(1000)
    mean_c, mean_u = (round(v, 3) for v in torch.randn(2, generator=g, dtype=torch.float64).tolist())
    var_c, var_u = (round(v, 3) for v in (0.1 + torch.rand(2, generator=g, dtype=torch.float64)).tolist())
    gamma = round(_scale(g, 2.0, 5.0), 2)
    cuts = sorted(set(torch.randint(100, 900, (3,), generator=g).tolist()))
    bounds = [0, *cuts, 1000]
    windows = [(bounds[k], bounds[k + 1] - 1) for k in range(len(bounds) - 1)]
    from . import tweedie
    refused = {sampling.gaussian_sampler_moments: _refusal("tutorial_pkg.sampling.gaussian_sampler_moments",
                                                           "write the moment recursion yourself"),
               tweedie.affine_sampler_moments: _refusal("tutorial_pkg.tweedie.affine_sampler_moments",
                                                        "write the moment recursion yourself"),
               sampling.ddim_coefficients: _refusal("tutorial_pkg.sampling.ddim_coefficients",
                                                    "derive the DDIM step's A and B yourself"),
               guidance.GuidanceInterval.__call__: _refusal("tutorial_pkg.guidance.guidance_interval",
                                                            "use your own interval rule"),
               _window_recursion: _refusal("the grader's reference", "write the moment recursion yourself"),
               **_CFG_REFUSED}
    out, failed = _call(name, fn, mean_c, var_c, mean_u, var_u, gamma, list(windows), schedule, refused=refused)
    if failed:
        return failed

    def moments(scale, **kw):
        kw = {"sampler": "ddim", "num_steps": 50, **kw}
        return torch.stack([torch.stack(sampling.gaussian_sampler_moments(mean_c, var_c, schedule, gamma=scale(lo, hi),
                                                                          mean_u=mean_u, var_u=var_u, **kw))
                            for lo, hi in windows])

    expected = moments(lambda lo, hi: guidance.guidance_interval(gamma, lo, hi))
    if isinstance(out, Tensor):
        out = out.detach()
    if _shape_hint(out, expected) is None and _close(out, expected, 1e-8):      # the suspects only on a failure
        return _diagnose(name, out, expected, {}, 1e-8)
    suspects = {
        "these are the moments of guidance *outside* each window: guide for t_low <= t <= t_high only":
            moments(lambda lo, hi: (lambda t: 1.0 if lo <= t <= hi else gamma)),
        "every row has the moments of CFG at every step: apply the scale only inside the row's window":
            moments(lambda lo, hi: gamma),
        "off by one: gamma is the weight of the conditional prediction, not Ho & Salimans' w":
            moments(lambda lo, hi: guidance.guidance_interval(gamma + 1, lo, hi)),
        "these are DDPM's moments: the task asks for the 50-step DDIM sampler (sampler='ddim', num_steps=50)":
            moments(lambda lo, hi: guidance.guidance_interval(gamma, lo, hi), sampler="ddpm", num_steps=None),
    }
    # (a recursion V -> A V from V = 1 gives the standard deviation too: the product of the A's)
    suspects["the second column is the variance, not the standard deviation: the variance of A x + B is A^2 V"] = \
        torch.stack([expected[:, 0], expected[:, 1].sqrt()], dim=1)
    interval = lambda lo, hi: guidance.guidance_interval(gamma, lo, hi)
    recursion = lambda **kw: _window_recursion(mean_c, var_c, mean_u, var_u, interval, windows, schedule, **kw)
    suspects.update({
        "your recursion stops one step short: after the last timestep, step to clean data (alpha_bar = 1)":
            recursion(last=False),
        "start from x_T ~ N(0, 1): the mean 0 and the variance 1": recursion(start_var=0.0),
        "the last step goes to clean data: after the last timestep, alpha_bar = 1, not alpha_bars[-1] (an index of "
        "-1 reads the noisiest step)": recursion(wrap=True),
    })
    if isinstance(out, Tensor):
        out = out.detach()
    return _diagnose(name, out, expected, suspects, 1e-8)


# -- assignment 7: alanine dipeptide --------------------------------------------------------------------------
def check_nerf_place(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 7: ``fn(x_a, x_b, x_c, bond, angle, torsion)``, one NeRF step of chapter 11, eq. (nerf): the point
    ``x_d`` bonded to ``x_c`` with ``|x_d - x_c| = bond``, the angle (x_b, x_c, x_d) and the torsion
    (x_a, x_b, x_c, x_d), angles in radians. ``(B, 3)`` points and ``(B,)`` values -> ``(B, 3)``; compared with
    ``internal_coordinates.nerf`` on fresh random points."""
    from .systems import internal_coordinates as ic

    name = "NeRF placement"
    g = _generator(seed)
    B = 32
    x_a, x_b, x_c = torch.randn(3, B, 3, generator=g, dtype=torch.float64)
    bond = 0.1 + torch.rand(B, generator=g, dtype=torch.float64)
    angle = 0.3 + (math.pi - 0.6) * torch.rand(B, generator=g, dtype=torch.float64)
    torsion = math.pi * (2 * torch.rand(B, generator=g, dtype=torch.float64) - 1)
    refused = {ic.nerf: _refusal("tutorial_pkg.systems.internal_coordinates.nerf", "place the atom yourself"),
               ic._place: _refusal("tutorial_pkg.systems.internal_coordinates", "place the atom yourself")}
    out, failed = _call(name, fn, x_a.clone(), x_b.clone(), x_c.clone(), bond.clone(), angle.clone(), torsion.clone(),
                        refused=refused)
    if failed:
        return failed
    if isinstance(out, Tensor):
        out = out.detach()
    place = lambda a, b, c, r, theta, tau: ic.nerf(a, b, c, r, theta, tau)  # noqa: E731
    expected = place(x_a, x_b, x_c, bond, angle, torsion)
    suspects = {
        "check the sign of the torsion: sin(tau) multiplies n_hat = (x_b - x_a) x b_hat, normalised (your atom is "
        "the mirror image through the plane of a, b and c)": place(x_a, x_b, x_c, bond, angle, -torsion),
        "the angles come in radians: do not convert them (torch.deg2rad turned them into hundredths of a radian)":
            place(x_a, x_b, x_c, bond, torch.deg2rad(angle), torch.deg2rad(torsion)),
        "the torsion comes in radians: do not convert it": place(x_a, x_b, x_c, bond, angle, torch.deg2rad(torsion)),
        "the bond angle is the angle at c between b and d: the step along b_hat = (x_c - x_b)/|x_c - x_b| is "
        "-r cos(theta), not +r cos(theta) (your angle is 180 degrees minus the one asked for)":
            place(x_a, x_b, x_c, bond, math.pi - angle, torsion),
        "your torsion is off by 180 degrees: n_hat is (x_b - x_a) x b_hat, in that order, and m_hat = n_hat x b_hat":
            place(x_a, x_b, x_c, bond, angle, torsion + math.pi),
        "b_hat points from b to c, (x_c - x_b) / |x_c - x_b|; yours points back from c to b":
            place(x_a, x_b, x_c, bond, math.pi - angle, torsion + math.pi),
        "the new atom is bonded to c: start from x_c, not from x_b": place(x_a, x_b, x_c, bond, angle, torsion) - x_c + x_b,
        "scale the unit vector by the bond length r": place(x_a, x_b, x_c, torch.ones_like(bond), angle, torsion),
    }
    return _diagnose(name, out, expected, suspects, 1e-8)


def _band_share_reference(core: Tensor, band: Tensor) -> tuple:
    """Chapter 11's share of a band's frames in a core, with its standard error counted by the effective sample
    size of the whole series: the ratio p = sum(b c) / sum(b) has the error of the mean of z = b (c - p)."""
    from . import stats

    core, band = core.double(), band.double()
    n_band = band.sum().item()
    p = (band * core).sum().item() / n_band
    z = band * (core - p)
    g = stats.statistical_inefficiency(z)
    return p, math.sqrt(g * z.pow(2).mean().item() * len(z)) / n_band


def _markov_indicator(g: torch.Generator, n: int, stay: float) -> Tensor:
    """A correlated 0/1 series: a two-state Markov chain that keeps its state with probability ``stay``."""
    flips = torch.rand(n, generator=g) > stay
    return (flips.long().cumsum(0) + int(torch.randint(0, 2, (), generator=g))) % 2 == 1


def check_band_share(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 7: ``fn(core, band)`` -> ``(p, se)``: the share of the frames of a band (``band``, bool, one per
    frame of a correlated series) that lie in a core (``core``, bool), and its standard error counted by the
    effective sample size of the whole series (chapter 11, ``band_share``).

    Called twice on fresh correlated series: once with a band, compared with chapter 11's estimator, and once
    with every frame in the band, where it must agree with ``stats.share(core, correlated=True)``."""
    from . import stats

    name = "band share"
    g = _generator(seed)
    n = 3000
    core = _markov_indicator(g, n, stay=_scale(g, 0.9, 0.97))
    phi = _scale(g, 0.9, 0.97)
    noise = torch.randn(n, generator=g, dtype=torch.float64)
    energy = torch.zeros(n, dtype=torch.float64)
    for i in range(1, n):  # an AR(1) "energy"; the band is the frames near its mean
        energy[i] = phi * energy[i - 1] + math.sqrt(1 - phi ** 2) * noise[i]
    band = energy.abs() < _scale(g, 0.4, 0.8)
    refused = {fn_: _refusal(f"tutorial_pkg.stats.{fn_.__name__}", "count the effective size yourself from "
                                                                     "stats.statistical_inefficiency")
               for fn_ in (stats.share, stats.series_mean, stats.effective_size)}
    refused[_band_share_reference] = _refusal("the grader's reference", "count the share and its error yourself")
    outs = []
    for b in (band, torch.ones_like(band)):
        out, failed = _call(name, fn, core.clone(), b.clone(), refused=refused)
        if failed:
            return failed
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            return _report(name, "fail", f"return a pair (p, se), got {type(out).__name__}")
        pair = tuple(_as_number(v) for v in out)
        if None in pair:
            return _report(name, "fail", "return a pair (p, se) of finite numbers")
        outs.append(pair)
    (p, se), (p_all, se_all) = outs
    p_true, se_true = _band_share_reference(core, band)
    whole = stats.share(core, correlated=True)
    close = lambda a, b: abs(a - b) <= 1e-3 * abs(b) + 1e-12  # noqa: E731 - z.var() with n - 1 is fine too
    # p to 1e-6: a share computed in float32 is off by about 1e-8, and the smallest step of a share (one frame of
    # the band in or out of the core) is 1 / sum(b) > 1e-4, so no wrong count passes
    if abs(p - p_true) > 1e-6:
        if abs(p - (band & core).double().mean().item()) < 1e-6:
            return _report(name, "fail", "p is the share among the band's frames, sum(b c) / sum(b), not among all "
                                         "frames of the series")
        return _report(name, "fail", "the values differ from the reference: p is the share of the band's frames "
                                     "that lie in the core")
    if close(se, se_true) and close(se_all, whole.se) and abs(p_all - whole.mean) < 1e-6:
        return _report(name, "pass", "matches chapter 11's estimator on a fresh correlated series, and "
                                     "stats.share(..., correlated=True) when every frame is in the band")
    b, c = band.double(), core.double()
    n_band = b.sum().item()
    z = b * (c - p_true)
    g_z = stats.statistical_inefficiency(z)
    var_p = p_true * (1 - p_true)
    suspects = {
        "you counted the band's frames as independent draws: consecutive frames are correlated, so the series "
        "carries the information of n / g frames (stats.statistical_inefficiency)": math.sqrt(var_p / n_band),
        "the effective size is n / g, not n g: the inefficiency g >= 1 makes the error larger, not smaller":
            math.sqrt(var_p / (n_band * g_z)),
        "return the standard error, the square root of the variance": g_z * z.pow(2).mean().item() * n / n_band ** 2,
        "g multiplies the variance; the standard error grows by sqrt(g), not by g":
            g_z * math.sqrt(z.pow(2).mean().item() * n) / n_band,
        "the band's frames are not consecutive frames of one series: take the inefficiency of the whole series "
        "z = b (c - p), which keeps the time between them":
            math.sqrt(stats.statistical_inefficiency(c[band]) * var_p / n_band),
        "take the inefficiency of z = b (c - p), not of the core indicator over all frames":
            math.sqrt(stats.statistical_inefficiency(c) * z.pow(2).mean().item() * n) / n_band,
        "g must be that of z = b (c - p), not of b c: the statistical inefficiency belongs to the series whose mean "
        "is estimated":
            math.sqrt(stats.statistical_inefficiency(b * c) * z.pow(2).mean().item() * n) / n_band,
        "p is a ratio of two means, mean(b c) / mean(b): divide the error of the mean of z by the mean of b, the "
        "share of frames in the band": math.sqrt(g_z * z.pow(2).mean().item() / n),
    }
    hint = next((h for h, wrong in suspects.items() if close(se, wrong)), None)
    if hint is None and close(se, se_true):
        hint = "the values differ from stats.share(core, correlated=True) when every frame is in the band"
    return _report(name, "fail", hint or "the values differ from the reference: count the standard error of p by "
                                         "the effective size of the whole series")


def check_core_report(report: dict, samples: Tensor, *, system, features, eps_model, schedule: NoiseSchedule,
                      target: float, seed: int, n: int = 64, num_steps: int = 10) -> CheckResult:
    """Assignment 7: molecules of the energy-conditioned model of chapter 11 at ``target`` and their core-state
    shares, checked on the molecules themselves and repeated from ``seed``.

    ``samples``: ``(n, 22, 3)`` molecules, ``features.decode`` of ``ddim_sample(eps_model, (n, features.dim),
    schedule, num_steps=num_steps, cond=target, generator=manual_seed(seed))``; ``report[core] = {"share": p,
    "se": sqrt(p (1 - p) / n)}`` for each core of ``BASINS``, shares out of all ``n`` molecules."""
    from . import _checks
    from .systems import AlanineDipeptide
    from .systems.alanine_dipeptide import BASINS, core_occupancy
    from .systems.internal_coordinates import InternalFeatures

    name = "core-state report"
    if not isinstance(system, AlanineDipeptide):
        raise TypeError(f"system must be the notebook's AlanineDipeptide (zoo.alanine_data()), got {type(system).__name__}")
    if not isinstance(features, InternalFeatures):
        raise TypeError(f"features must be the notebook's InternalFeatures (zoo.alanine_data()), got "
                        f"{type(features).__name__}")
    if not isinstance(eps_model, torch.nn.Module):
        raise TypeError(f"eps_model must be the notebook's trained eps-model (an nn.Module), got {type(eps_model).__name__}")
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    target = _checks.real("target", target)
    n = _checks.integer("n", n, low=1)
    num_steps = _checks.integer("num_steps", num_steps, low=1, high=schedule.T)
    if report is None or samples is None:
        return _report(name, "not implemented", "not implemented yet: fill in the samples and the report")
    if not isinstance(samples, Tensor) or samples.shape != (n, system.n_atoms, 3):
        got = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        if isinstance(samples, Tensor) and samples.shape == (n, features.dim):
            return _report(name, "fail", "your samples are the network's feature vectors: decode them into molecules "
                                         "with features.decode(f.cpu().double())")
        return _report(name, "fail", f"samples must be an ({n}, {system.n_atoms}, 3) tensor of molecules, got {got}")
    if not bool(torch.isfinite(samples).all()):
        return _report(name, "fail", "samples must be finite: they hold NaN or infinite values")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return _report(name, "fail", f"seed must be the int you seeded your generator with, got {seed!r}")
    device = next(eps_model.parameters()).device
    f = sampling.ddim_sample(eps_model, (n, features.dim), schedule, num_steps=num_steps,
                             cond=torch.full((n,), target, device=device), device=device,
                             generator=torch.Generator(device).manual_seed(seed))
    if not torch.allclose(samples.detach().cpu().double(), features.decode(f.cpu().double()), atol=1e-5):
        return _report(name, "fail", f"the samples are not what ddim_sample(eps_model, ({n}, features.dim), schedule, "
                                     f"num_steps={num_steps}, cond=E*) decodes to with your seed: sample as the "
                                     "notebook says")
    if not isinstance(report, dict) or set(report) != set(BASINS):
        return _report(name, "fail", f"report must be a dict with one entry per core state, {BASINS}")
    x = samples.detach().cpu().double()
    labels = system.basin(*system.torsions(x))[0]
    shares = core_occupancy(labels).tolist()
    assigned = max(int((labels >= 0).sum()), 1)
    for k, core in enumerate(BASINS):
        entry = report[core]
        if not isinstance(entry, dict) or not {"share", "se"} <= set(entry):
            return _report(name, "fail", f"report[{core!r}] must hold 'share' and 'se'")
        p, se = _as_number(entry["share"]), _as_number(entry["se"])
        if p is None or se is None:
            return _report(name, "fail", f"report[{core!r}] must hold finite numbers")
        true = shares[k]
        if abs(p - true) > 1e-9:
            if abs(p - int((labels == k).sum()) / assigned) < 1e-9:
                return _report(name, "fail", "the shares are out of all molecules, those in transition regions "
                                             "included, not out of those in a core (chapter 11's convention)")
            if abs(p - 100 * true) < 1e-7:
                return _report(name, "fail", "report shares between 0 and 1, not percentages")
            return _report(name, "fail", f"report[{core!r}]['share'] is not the share of your molecules in {core}")
        if min(abs(se - math.sqrt(true * (1 - true) / m)) for m in (n, n - 1 if n > 1 else n)) > 1e-9:
            if abs(se - true * (1 - true) / n) < 1e-9:
                return _report(name, "fail", "se is a standard error: the square root of the share's variance")
            if abs(se - math.sqrt(true * (1 - true))) < 1e-9:
                return _report(name, "fail", "se is the standard error of a share of n molecules: divide by n "
                                             "inside the square root")
            return _report(name, "fail", f"report[{core!r}]['se'] is not the standard error of the share of {n} "
                                         "independent molecules")
    return _report(name, "pass", "the molecules repeat from your seed and the report matches them")


def _core_shares(samples: Tensor, system, n: int) -> dict:
    """The report of assignment 7's batch: each core's share of the ``n`` molecules and its standard error."""
    from .systems.alanine_dipeptide import BASINS
    labels = system.basin(*system.torsions(samples.detach().cpu().double()))[0]
    report = {}
    for k, core in enumerate(BASINS):
        p = (labels == k).double().mean().item()
        report[core] = {"share": p, "se": math.sqrt(p * (1 - p) / n)}
    return report


def _gap_rules(se_gen: float, dof_gen: float, se_ref: float, dof_ref: float) -> dict:
    """The degrees of freedom of the difference of two independent estimates, under each rule that the gap check
    knows: the conservative rule (the smaller of the two), Welch-Satterthwaite's (as it comes, and rounded down, as
    many textbooks prescribe: that claims no more than the data give), their sum (a pooled t-test's, which assumes
    equal variances) and the normal quantile's (infinite)."""
    parts = se_gen ** 4 / dof_gen + se_ref ** 4 / dof_ref
    welch = (se_gen ** 2 + se_ref ** 2) ** 2 / parts if parts > 0 else min(dof_gen, dof_ref)
    welch = max(welch, 1.0)
    return {"conservative": min(dof_gen, dof_ref), "Welch": welch, "Welch rounded down": float(math.floor(welch)),
            "sum": dof_gen + dof_ref, "normal": math.inf}


def _gap_cases(g: torch.Generator) -> list:
    """Hidden cases of ``gap_verdict``: for each, |gap| / se lies between two of the rules' 95 % quantiles, so that
    the verdicts of the normal quantile, of the summed degrees of freedom, of Welch's and of the conservative rule
    differ where they can (and both accepted rules resolve a large gap and not a small one). In most the batch has
    the fewer degrees of freedom, as in the notebook; in "swapped" the reference has, so that a rule that always
    takes the batch's degrees of freedom resolves a gap that neither accepted rule does; in "larger" the
    larger of the two resolves one that neither accepted rule does; in "maxsum" both are small, so that the larger
    of the two and their sum give different verdicts.

    The rest catch a rule a few degrees of freedom off an accepted one, on every seed. In "above" and "below" the
    batch (few degrees of freedom) holds nearly all the error, so that Welch's dof lies within one of the smaller
    dof and both accepted rules give one verdict, while a rule one dof (or more) above either resolves the gap
    ("above") and one a dof (or more) below either, or half the smaller, does not ("below"). In "midlow" and
    "midhigh" both are small and the errors comparable, so that Welch's dof lies well above the smaller one: |gap| /
    se lies between Welch's quantile and that of the dof halfway between the rules, then between the halfway one
    and the conservative quantile, so that a rule in between follows neither. In "slip" both dofs are large and so
    are the errors: Welch's formula with se^2 / dof in its denominator, not se^4 / dof, gives a few degrees of
    freedom, and the gap lies above its quantile, so that this slip resolves it (and no small-dof case); in
    "noslip" both dofs are large but the errors small, so that the slip's dof falls under 2 and it resolves no gap
    that every other rule resolves."""
    from . import stats

    def t(dof):
        return 1.959963984540054 if dof == math.inf else stats.t_quantile(dof)
    cases = []
    for band in ("normal", "sum", "large", "small", "normal", "large", "small", "swapped", "larger", "maxsum",
                 "above", "below", "midlow", "midhigh", "slip", "noslip"):
        while True:
            small, large = float(torch.randint(3, 13, (), generator=g)), _scale(g, 30.0, 600.0)
            spread = (0.4, 1.6)
            if band in ("maxsum", "midlow", "midhigh"):  # both small (in "maxsum" in either order)
                large = float(torch.randint(3, 13, (), generator=g))
                if band != "maxsum":
                    small, large = min(small, large), max(small, large)
            if band in ("above", "below"):  # the batch, with few dof, holds nearly all the error
                small, spread = float(torch.randint(3, 9, (), generator=g)), (0.05, 0.2)
            if band in ("slip", "noslip"):
                small, large, spread = _scale(g, 200.0, 600.0), _scale(g, 200.0, 600.0), (0.7, 1.4)
            dof_gen, dof_ref = (large, small) if band == "swapped" else (small, large)
            se_gen = {"slip": (0.06, 0.12), "noslip": (0.02, 0.04)}.get(band, (0.02, 0.08))
            se_gen = _scale(g, *se_gen)
            se_ref = se_gen * _scale(g, *spread)
            rules = _gap_rules(se_gen, dof_gen, se_ref, dof_ref)
            rules["larger"] = max(dof_gen, dof_ref)
            q = {rule: t(dof) for rule, dof in rules.items()}
            least, welch = rules["conservative"], rules["Welch"]
            slip = (se_gen ** 2 + se_ref ** 2) ** 2 / (se_gen ** 2 / dof_gen + se_ref ** 2 / dof_ref)
            q_slip = t(slip) if slip > 2.0 else math.inf
            low, high = {"normal": (q["normal"], q["sum"]), "sum": (q["sum"], q["Welch"]),
                         "large": (1.1 * q["conservative"], 1.5 * q["conservative"]),
                         "small": (0.3 * q["normal"], 0.9 * q["normal"]),
                         "swapped": (t(dof_gen), min(q["Welch"], q["conservative"])),
                         "larger": (q["larger"], min(q["Welch"], q["conservative"])),
                         "maxsum": (q["sum"], q["larger"]),
                         "above": (t(least + 1), q["Welch"]),  # both accepted: not resolved
                         "below": (q["conservative"], t(welch - 1)),  # both accepted: resolved
                         # above the quantile of Welch's dof rounded down too, which is then accepted as well
                         "midlow": (max(q["Welch"], q["Welch rounded down"]), t((least + welch) / 2)),
                         "midhigh": (t((least + welch) / 2), q["conservative"]),
                         "slip": (1.02 * q_slip, 1.3 * q_slip),
                         "noslip": (1.1 * q["conservative"], min(1.5 * q["conservative"], q_slip))}[band]
            if high - low > 0.05:  # far enough from both quantiles that rounding decides nothing
                ratio = low + (high - low) * _scale(g, 0.3, 0.7)
                se = math.hypot(se_gen, se_ref)
                p_ref = _scale(g, 0.2, 0.6)
                sign = 1.0 if float(torch.rand((), generator=g)) < 0.5 else -1.0
                if band == "slip":  # a share on either side: the sign that keeps it between 0 and 1
                    sign = 1.0 if p_ref + ratio * se < 1.0 else -1.0
                if 0.0 < p_ref + sign * ratio * se < 1.0 or band != "slip":
                    break
        cases.append((p_ref + sign * ratio * se, se_gen, dof_gen, p_ref, se_ref, dof_ref))
    return cases


def check_gap_verdict(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 7: ``fn(p_gen, se_gen, dof_gen, p_ref, se_ref, dof_ref)`` -> ``(gap, se, resolved)``: the
    difference of two independent estimates (batch minus reference), its standard error sqrt(se_gen^2 + se_ref^2)
    and whether its 95 % t-interval excludes zero, with the degrees of freedom of either accepted rule: the smaller
    of the two (conservative) or Welch-Satterthwaite's from the two estimates' own (as it comes or rounded down).
    Called on hidden cases where
    those rules, the normal quantile, the summed degrees of freedom, the larger of the two and the batch's own
    give different verdicts (the reference has the fewer in some), and where a rule one degree of freedom above or
    below either accepted rule, or halfway between them, gives another; the function's verdicts must agree with one
    accepted rule on all of them. ``stats``' comparisons refuse to run inside ``fn``."""
    from . import stats
    name = "gap verdict"
    g = _generator(seed)
    cases = _gap_cases(g)
    instead = "compute the difference, its standard error and the t-interval's verdict yourself"
    refused = {fn_: _refusal(f"tutorial_pkg.stats.{fn_.__name__}", instead)
               for fn_ in (stats.paired, stats.unpaired, stats.replicates, stats.against)}
    outs = []
    for case in cases:
        out, failed = _call(name, fn, *case, refused=refused)
        if failed:
            return failed
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            return _report(name, "fail", "return a tuple (gap, se, resolved): two numbers and a bool")
        gap, se = _as_number(out[0]), _as_number(out[1])
        resolved = out[2].item() if isinstance(out[2], Tensor) and out[2].numel() == 1 else out[2]
        if gap is None or se is None or not isinstance(resolved, bool):
            return _report(name, "fail", "return a tuple (gap, se, resolved): two numbers and a bool (True when the "
                                         "95 % interval excludes 0)")
        outs.append((gap, se, resolved))

    def under(rule, flip=1.0, se_of=lambda s1, s2: math.hypot(s1, s2)):
        rows = []
        for p_gen, se_gen, dof_gen, p_ref, se_ref, dof_ref in cases:
            dof = {**_gap_rules(se_gen, dof_gen, se_ref, dof_ref), "batch": dof_gen,
                   "larger": max(dof_gen, dof_ref),  # and Welch's with se^2 / dof in the denominator:
                   "Welch slip": (se_gen ** 2 + se_ref ** 2) ** 2 / (se_gen ** 2 / dof_gen + se_ref ** 2 / dof_ref)}[rule]
            q = 1.959963984540054 if dof == math.inf else stats.t_quantile(dof)
            gap, se = flip * (p_gen - p_ref), se_of(se_gen, se_ref)
            rows.append((gap, se, abs(gap) > q * se))
        return rows

    def same(rows):
        return all(abs(a[0] - b[0]) <= 1e-9 and abs(a[1] - b[1]) <= 1e-9 * (1 + b[1]) and a[2] == b[2]
                   for a, b in zip(outs, rows))
    for rule, words in (("conservative", "the conservative rule (the smaller of the two degrees of freedom)"),
                        ("Welch", "Welch-Satterthwaite's degrees of freedom"),
                        ("Welch rounded down", "Welch-Satterthwaite's degrees of freedom rounded down")):
        if same(under(rule)):
            return _report(name, "pass", f"its verdicts agree with {words} on {len(cases)} hidden cases, among them "
                                         "cases where the normal quantile, the summed degrees of freedom, Welch's and "
                                         "the conservative rule give different verdicts, and cases where a rule one "
                                         "degree of freedom off either accepted rule gives another")
    suspects = [
        (under("normal"), "the verdict uses the normal quantile 1.96: with the estimates' own degrees of freedom "
                          "the t-quantile is larger, and the interval claims more than the data give"),
        (under("sum"), "the verdict takes the sum of the two degrees of freedom (a pooled t-test's, which assumes "
                       "equal variances): that claims more than the data give; take the smaller of the two, or "
                       "Welch-Satterthwaite's"),
        (under("batch"), "the verdict always takes the batch's degrees of freedom: where the reference is the "
                         "smaller sample (a short reference run), that claims more than the data give; take the "
                         "smaller of the two, or Welch-Satterthwaite's"),
        (under("larger"), "the verdict takes the larger of the two degrees of freedom: that claims more than the data "
                          "give; take the smaller of the two, or Welch-Satterthwaite's"),
        (under("Welch slip"), "Welch's denominator has se^4 / dof: (se_gen^2 + se_ref^2)^2 / (se_gen^4 / dof_gen + "
                              "se_ref^4 / dof_ref); with se^2 / dof the degrees of freedom come out far too few where "
                              "the standard errors are small"),
    ]
    for rule in ("conservative", "Welch"):
        suspects += [
            (under(rule, se_of=lambda s1, s2: s1 + s2), "the standard errors were added as numbers: for two "
                                                        "independent estimates, what adds?"),
            (under(rule, se_of=lambda s1, s2: s1), "the difference's standard error is the batch's alone: the "
                                                   "reference is an estimate too, with an error of its own"),
            (under(rule, flip=-1.0), "the difference is batch minus reference, not reference minus batch"),
        ]
    hint = next((h for rows, h in suspects if same(rows)), None)
    if hint is None:
        right = all(abs(a[0] - b[0]) <= 1e-9 and abs(a[1] - b[1]) <= 1e-9 * (1 + b[1])
                    for a, b in zip(outs, under("conservative")))
        hint = ("the values differ from the reference in the verdicts: the difference and its standard error are "
                "right, but the verdicts follow neither the conservative rule nor Welch-Satterthwaite's (as it comes or "
                "rounded down) on every case"
                if right else "the values differ from the reference; the difference, its standard error and the "
                              "t-interval's verdict")
    return _report(name, "fail", hint)


def check_core_gaps(gaps: dict, *, report: dict, reference: dict, n: int) -> CheckResult:
    """Assignment 7: ``gaps[core] = (gap, se_gap, resolved)`` for each core: the batch's share minus the reference's,
    its standard error sqrt(se_batch^2 + se_ref^2) (two independent estimates), and whether the 95 % t-interval
    excludes zero, with the degrees of freedom the smaller of the reference's N_eff - 1 and n - 1 (conservative) or
    Welch-Satterthwaite's from those two (either verdict is accepted); recomputed from ``report``
    (``report[core]["share"]``, ``["se"]``) and ``reference`` (``reference[core] = (p, se)``)."""
    from . import _checks, stats
    from .systems.alanine_dipeptide import BASINS
    name = "core-state gaps"
    n = _checks.integer("n", n, low=2)
    if gaps is None:
        return _report(name, "not implemented", "not implemented yet: fill in gaps in the cell of the plot")
    for what, value in (("report", report), ("reference", reference)):
        if not isinstance(value, dict) or set(value) != set(BASINS):
            raise ValueError(f"{what} must be a dict with one entry per core state {BASINS}, got {value!r:.80}")
    if not isinstance(gaps, dict) or set(gaps) != set(BASINS):
        return _report(name, "fail", f"the submission's gaps must be a dict with one entry per core state, {BASINS}")

    def verdicts(gap, se_gap, se_gen, se_ref, dof_ref):
        # the 95 % verdicts that are accepted: the smaller of the two degrees of freedom, and Welch-Satterthwaite's
        # (as it comes or rounded down)
        rules = _gap_rules(se_gen, n - 1, se_ref, dof_ref)
        return {abs(gap) > stats.t_quantile(rules[r]) * se_gap for r in ("conservative", "Welch", "Welch rounded down")}

    truth, flipped, alone, linear = {}, {}, {}, {}
    for core in BASINS:
        p_ref, se_ref = (float(v) for v in reference[core])
        p_gen, se_gen = float(report[core]["share"]), float(report[core]["se"])
        dof_ref = max(p_ref * (1 - p_ref) / se_ref ** 2 - 1, 1.0) if se_ref > 0 else 1.0
        se_gap = math.sqrt(se_gen ** 2 + se_ref ** 2)
        gap = p_gen - p_ref
        truth[core] = (gap, se_gap, verdicts(gap, se_gap, se_gen, se_ref, dof_ref))
        flipped[core] = (-gap, se_gap, truth[core][2])
        alone[core] = (gap, se_gen, verdicts(gap, se_gen, se_gen, se_ref, dof_ref))
        linear[core] = (gap, se_gen + se_ref, verdicts(gap, se_gen + se_ref, se_gen, se_ref, dof_ref))
    def same(entry, want):
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            return False
        values = [_as_number(v) for v in entry[:2]]
        return None not in values and all(abs(v - w) <= 1e-9 for v, w in zip(values, want[:2])) and \
            bool(entry[2]) in want[2]
    if all(same(gaps[core], truth[core]) for core in BASINS):
        return _report(name, "pass", "each core's difference, its standard error and its verdict match your report "
                                     "and reference")
    for hint, wrong in (("the difference is batch minus reference, not reference minus batch", flipped),
                        ("the difference's standard error is the batch's alone: the reference is an estimate too, "
                         "with an error of its own", alone),
                        ("the standard errors were added as numbers: for two independent estimates, what adds?",
                         linear)):
        if all(same(gaps[core], wrong[core]) for core in BASINS):
            return _report(name, "fail", hint)
    core = next(c for c in BASINS if not same(gaps[c], truth[c]))
    return _report(name, "fail", f"the values differ: gaps[{core!r}] is not (batch - reference, its standard error, "
                                 "whether the 95 % t-interval excludes 0) from your report and reference")


# -- assignment 6: sampling the guided target ------------------------------------------------------------
from . import smc  # noqa: E402 - the module that assignment 6 reimplements

_SMC_REFUSED = {smc.log_weight_factor: _refusal("tutorial_pkg.smc.log_weight_factor", "write the increment yourself"),
                smc.guidance_terms: _refusal("tutorial_pkg.smc.guidance_terms", "call the model yourself"),
                smc.systematic_resample: _refusal("tutorial_pkg.smc.systematic_resample",
                                                  "write the resampling yourself"),
                smc.effective_sample_size: _refusal("tutorial_pkg.smc.effective_sample_size",
                                                    "compute the ESS yourself"),
                smc.smc_sample: _refusal("tutorial_pkg.smc.smc_sample", "write the loop yourself")}


def check_log_weight_increment(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 6: ``fn(eps_cond, eps_uncond, gamma, alpha_bar, alpha_bar_prev)``, the Feynman-Kac log-weight
    increment of one guided step from t to t' < t (chapter 10, eq. fkc-weight), shape ``(B,)``.

    Compared with ``smc.log_weight_factor(schedule, t, gamma, t_prev=t')`` times ``||eps_c - eps_u||^2`` on a
    schedule, a step (often one that spans several of the schedule's steps, or ends at the clean data) and a gamma
    that are new at every call."""
    name = "Feynman-Kac weight increment"
    g = _generator(seed)
    schedule = linear_schedule(int(torch.randint(50, 1001, (), generator=g)))
    t = int(torch.randint(1, schedule.T, (), generator=g))
    t_prev = int(torch.randint(-1, t, (), generator=g))
    gamma = _scale(g, 1.5, 4.0)
    eps_c, eps_u = torch.randn(2, 16, 3, generator=g, dtype=torch.float64)
    ab = schedule.value("alpha_bars", t)
    ab_prev = schedule.value("alpha_bars", t_prev) if t_prev >= 0 else 1.0
    out, failed = _call(name, fn, eps_c.clone(), eps_u.clone(), gamma, ab, ab_prev, refused=_SMC_REFUSED)
    if failed:
        return failed
    square = (eps_c - eps_u).pow(2).sum(1)
    k = smc.log_weight_factor(schedule, t, gamma, t_prev=t_prev)
    expected = k * square
    per_beta = gamma * (gamma - 1) / (2 * (1 - ab))
    suspects = {
        "check the sign: the factor is gamma (gamma - 1), so that for gamma > 1 the increment is never negative":
            -expected,
        "the increment has a factor 1/2 (from the Fokker-Planck equation, eq. fkc-pde)": 2 * expected,
        "divide by 1 - alpha_bar_t, the variance of the noise, not by its square root": expected * math.sqrt(1 - ab),
        "the squared norm sums over the coordinates; do not average it": expected / eps_c.shape[1],
        "the increment needs the squared norm ||eps_c - eps_u||^2, not the norm": k * square.sqrt(),
        "the factor is gamma (gamma - 1), not gamma^2": expected * gamma / (gamma - 1),
        "a factor of the scale is missing: the increment grows with gamma itself as well as with the gap gamma - 1 "
        "between the guided and the plain model (w = gamma - 1 and gamma are two conventions, and both appear here)":
            expected / gamma,
        "a factor of the scale is missing: the increment must vanish at gamma = 1, where the guided model is the "
        "plain conditional one and nothing needs reweighting": expected / (gamma - 1),
        "for a step from t to t', beta_t becomes 1 - alpha_bar_t / alpha_bar_t' (not 1 - alpha_bar_t: the "
        "step's own noise, not the total)": per_beta * (1 - ab) * square,
        "for a step from t to t', beta_t becomes 1 - alpha_bar_t / alpha_bar_t', not alpha_bar_t' - alpha_bar_t":
            per_beta * (ab_prev - ab) * square,
    }
    return _diagnose(name, out, expected, suspects, 1e-8)


def _counts(index: Tensor, K: int) -> Tensor:
    return torch.nn.functional.one_hot(index, K).sum(-2)


def check_systematic_resample(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 6: ``fn(log_weights, u)``, systematic resampling of G systems of K particles (chapter 10, eq.
    systematic): ``log_weights`` ``(G, K)``, not normalised; ``u`` ``(G, 1)``, one uniform in [0, 1) per system;
    returns ``(G, K)`` long indices, each row indexing its own system (0 .. K - 1).

    Compared with ``smc.systematic_resample`` fed the same uniforms (a generator in the same state), and the
    copies of each particle checked to be the floor or the ceiling of K w_i."""
    name = "systematic resampling"
    g = _generator(seed)
    G, K = int(torch.randint(3, 7, (), generator=g)), int(torch.randint(20, 60, (), generator=g))
    log_w = 2 * torch.randn(G, K, generator=g, dtype=torch.float64) + 10 * torch.rand(G, 1, generator=g, dtype=torch.float64)
    state = int(torch.randint(0, 2 ** 31, (), generator=g))
    u = torch.rand((G, 1), generator=torch.Generator().manual_seed(state), dtype=torch.float64)
    out, failed = _call(name, fn, log_w.clone(), u.clone(), refused=_SMC_REFUSED)
    if failed:
        return failed
    expected = smc.systematic_resample(log_w, generator=torch.Generator().manual_seed(state))
    if not isinstance(out, Tensor):
        return _report(name, "fail", f"return a torch.Tensor of indices, not {type(out).__name__}")
    if out.shape != expected.shape:
        return _report(name, "fail", f"the result has shape {tuple(out.shape)}, expected {tuple(expected.shape)}: "
                                     "K indices per system")
    if out.dtype not in (torch.int64, torch.int32):
        return _report(name, "fail", f"return a tensor of integer indices (torch.long), not {out.dtype}")
    if torch.equal(out.long(), expected):
        return _report(name, "pass", "the same indices as the reference from the same uniforms; each particle copied "
                                     "floor or ceil of K w_i times")
    cdf_raw = log_w.exp().cumsum(-1)
    points = u + torch.arange(K, dtype=torch.float64)
    if torch.equal(out.long(), torch.searchsorted(cdf_raw, points / K).clamp(max=K - 1)):
        return _report(name, "fail", "normalise the weights first: the cumulative weights must end at 1 "
                                     "(softmax of the log-weights, or exp and divide by the sum)")
    if bool((out >= K).any() and (out < G * K).all() and (out >= 0).all()) and \
            torch.equal(out.long() - K * torch.arange(G)[:, None], expected):
        return _report(name, "fail", "each row indexes its own system: return indices 0 .. K - 1, not positions in "
                                     "the flattened batch")
    if bool((out < 0).any() or (out >= K).any()):
        return _report(name, "fail", f"the result holds indices outside 0 .. K - 1 = {K - 1}: {int(out.min())} .. {int(out.max())}"
                                     " (the last point of the cumulative weights may round below 1: clamp)")
    if torch.equal(out.long(), torch.searchsorted(torch.softmax(log_w, -1).cumsum(-1), points).clamp(max=K - 1)):
        return _report(name, "fail", "the K points are (u + j) / K, spread evenly over [0, 1): divide by K")
    w = torch.softmax(log_w, -1)
    counts = _counts(out.long(), K)
    if bool(((counts < (K * w).floor() - 1e-9) | (counts > (K * w).ceil() + 1e-9)).any()):
        return _report(name, "fail", "some particle is copied fewer than floor(K w_i) or more than ceil(K w_i) times: "
                                     "one uniform u per system, and the K evenly spaced points (u + j) / K, j = 0 .. K - 1")
    return _report(name, "fail", "the values differ from the reference's indices, though the copies have the right counts: "
                                 "place the points (u + j) / K on the cumulative weights, in increasing order")


def _smc_reference(eps_model, cond, gamma, schedule, timesteps, x_T, groups, generator, ess_threshold, *,
                   reset=True, weighted=True) -> tuple[Tensor, Tensor]:
    """The loop of assignment 6, from the package's own pieces (the same draws as :func:`smc.smc_sample`);
    ``reset`` and ``weighted`` False give two likely mistakes."""
    steps = sampling.sampler_steps(schedule, sampler="ddim", timesteps=timesteps)
    G, N = groups, x_T.shape[0]
    K = N // G
    x, log_w = x_T, torch.full((G, K), -math.log(K), dtype=torch.float64)
    offset = K * torch.arange(G)[:, None]
    for t, t_prev in steps:
        eps_c, eps_u = eps_model(x, t, cond), eps_model(x, t, None)
        if weighted:
            log_w = log_w + smc.log_weight_factor(schedule, t, gamma, t_prev=t_prev) * \
                (eps_c - eps_u).pow(2).flatten(1).sum(1).view(G, K)
        log_w = log_w - log_w.logsumexp(1, keepdim=True)
        c_x, c_eps, sigma = sampling.ddim_coefficients(schedule, t, t_prev, 1.0)
        x_next = c_x * x + c_eps * (gamma * eps_c + (1 - gamma) * eps_u)
        if sigma > 0:
            x_next = x_next + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        resample = (smc._ess(log_w) < ess_threshold * K)[:, None]
        index = torch.where(resample, smc._systematic(log_w, generator), torch.arange(K).expand(G, K))
        x = x_next[(index + offset).flatten()]
        if reset:
            log_w = torch.where(resample, torch.full_like(log_w, -math.log(K)), log_w)
    return x, log_w.flatten()


def _smc_setting(g: torch.Generator):
    """A two-class mixture in two dimensions, new at every call, with a short schedule and a few systems."""
    schedule = linear_schedule(200)
    centre, direction = torch.randn(2, 2, generator=g, dtype=torch.float64)
    means = centre + 1.5 * torch.stack([-direction, direction]) / direction.norm()  # classes 3 apart: weights vary
    mixture = GaussianMixture([0.5, 0.5], means, [[[0.4, 0.1], [0.1, 0.3]]] * 2)
    G, K = 3, 16
    timesteps = sorted(torch.randperm(199, generator=g)[:24].add(1).tolist(), reverse=True)
    x_T = torch.randn(G * K, 2, generator=g, dtype=torch.float64)
    gamma = round(_scale(g, 2.0, 3.5), 2)
    return mixture.eps_model(schedule), torch.ones(G * K, dtype=torch.long), gamma, schedule, timesteps, x_T, G


def check_smc_sampler(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """Assignment 6: ``fn(eps_model, cond, gamma, schedule, timesteps, x_T, groups, generator, ess_threshold)``, the
    loop of Feynman-Kac-corrected guided sampling with the student's increment and resampling; returns
    ``(particles, log_weights)``, shapes ``(G K, D)`` and ``(G K,)``.

    Compared with the package's ``smc.smc_sample`` from the same ``x_T`` and a generator in the same state, on an
    exact two-class mixture that is new at every call; the package's SMC functions and CFG refuse to run meanwhile.
    """
    name = "SMC sampler"
    g = _generator(seed)
    model, cond, gamma, schedule, timesteps, x_T, G = _smc_setting(g)
    threshold = round(_scale(g, 0.85, 0.97), 2)
    state = int(torch.randint(0, 2 ** 31, (), generator=g))
    refused = {**_SMC_REFUSED, **_CFG_REFUSED,
               sampling.ddim_sample: _refusal("tutorial_pkg.sampling.ddim_sample", "write the loop yourself"),
               sampling.ddpm_sample: _refusal("tutorial_pkg.sampling.ddpm_sample", "write the loop yourself"),
               _smc_reference: _refusal("the grader's reference", "write the loop yourself")}
    out, failed = _call(name, fn, model, cond.clone(), gamma, schedule, list(timesteps), x_T.clone(), G,
                        torch.Generator().manual_seed(state), threshold, refused=refused)
    if failed:
        return failed
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        return _report(name, "fail", "return a pair of tensors: (particles, log_weights)")
    particles, log_w = out
    expected = smc.smc_sample(guidance.cfg_model(model, gamma), tuple(x_T.shape), schedule, cond=cond, groups=G,
                              timesteps=timesteps, x_T=x_T, generator=torch.Generator().manual_seed(state),
                              ess_threshold=threshold, dtype=torch.float64)
    hint = _shape_hint(particles, expected.particles) or _shape_hint(log_w, expected.log_weights)
    if hint is not None:
        return _report(name, "fail", hint)
    weights = lambda lw: torch.softmax(lw.detach().double().view(G, -1), 1)
    run = lambda **kw: _smc_reference(model, cond, gamma, schedule, timesteps, x_T, G,
                                      torch.Generator().manual_seed(state), kw.pop("threshold", threshold), **kw)
    close = lambda ref: _close(particles.detach().double(), ref[0], 1e-6) and _close(weights(log_w), weights(ref[1]), 1e-6)
    if close((expected.particles, expected.log_weights)):
        return _report(name, "pass", f"the same particles and weights as the reference on a new mixture "
                                     f"({expected.num_resampled} resamplings in {G} systems)")
    suspects = {
        "your weights stay equal: add your log_weight_increment to each particle's log-weight at every step":
            run(weighted=False),
        "you never resample: resample a system when its ESS falls below ess_threshold * K (draw its uniform at every "
        "step all the same)": run(threshold=0.0),
        "you resample a system at every step: only when its ESS falls below ess_threshold * K": run(threshold=1.0),
        "after a system resamples, reset its log-weights to log(1 / K): the copies carry the weight now": run(reset=False),
    }
    hint = next((h for h, ref in suspects.items() if close(ref)), None)
    if hint is None and _close(particles.detach().double(), expected.particles, 1e-6):
        hint = "the particles are right but not the weights: return the log-weights normalised within each system"
    return _report(name, "fail", hint or "the values differ from the reference: follow the order of the steps and of "
                                         "the random draws that the notebook gives")


# -- assignment 1: a classifier-guided DDIM sampler ---------------------------------------------------------
class _GuidedEps:
    """eps - scale sqrt(1 - alpha_bar_t) grad log p_t(y | x_t), the guided eps written out here, for the wrong answers
    that the package's guided model does not make (a negative scale)."""

    def __init__(self, eps_model, likelihood, schedule: NoiseSchedule, y: Tensor, scale: float):
        self.eps_model, self.likelihood, self.schedule, self.y, self.scale = eps_model, likelihood, schedule, y, scale

    def __call__(self, x_t: Tensor, t, cond=None) -> Tensor:
        ab = self.schedule.alpha_bars[torch.as_tensor(t).reshape(-1)].to(x_t.dtype).expand(x_t.shape[0])
        grad = self.likelihood.grad_log_prob(self.y, x_t, ab)
        return self.eps_model(x_t, t) - self.scale * (1 - ab).sqrt()[:, None] * grad


def check_guided_ddim(fn: Callable, *, seed: Optional[int] = None) -> CheckResult:
    """``fn(eps_model, predictor, y, x_T, scale, schedule, num_steps)``: a deterministic DDIM sampler with classifier
    guidance, each step's eps guided by ``scale`` times the noise-aware classifier's gradient.

    Compared with the package's ``ddim_sample(classifier_guided_model(...))`` from the same ``x_T`` on an exact
    Gaussian prior and an exact linear-Gaussian noise-aware classifier, both new at every call; the package's
    guided eps, gradient, guided model and samplers refuse to run inside the student's function.
    """
    from .analytic import LinearGaussianLikelihood

    name = "classifier-guided DDIM sampler"
    g = _generator(seed)
    schedule = linear_schedule(200)
    prior = GaussianMixture([1.0], torch.randn(1, 2, generator=g, dtype=torch.float64),
                            [[[1.0, 0.3], [0.3, 0.6]]])
    likelihood = LinearGaussianLikelihood(prior, torch.randn(2, generator=g, dtype=torch.float64),
                                          tau=round(_scale(g, 0.4, 1.0), 2))
    model, predictor = prior.eps_model(schedule), likelihood.predictor(schedule)
    x_T = torch.randn(64, 2, generator=g, dtype=torch.float64)
    y = torch.full((64,), round(_scale(g, -2.0, 2.0), 2), dtype=torch.float64)
    scale, num_steps = round(_scale(g, 1.5, 3.0), 2), int(torch.randint(10, 25, (), generator=g))
    write = lambda what: f"write {what} yourself, with your functions of tasks 1 and 3"
    refused = {guidance.classifier_guided_eps: _refusal("tutorial_pkg.guidance.classifier_guided_eps", write("the guided eps")),
               guidance.grad_log_likelihood: _refusal("tutorial_pkg.guidance.grad_log_likelihood", write("the gradient")),
               guidance.classifier_guided_model: _refusal("tutorial_pkg.guidance.classifier_guided_model",
                                                          write("the guided eps")),
               sampling.ddim_sample: _refusal("tutorial_pkg.sampling.ddim_sample", "write the sampling loop yourself"),
               sampling.ddpm_sample: _refusal("tutorial_pkg.sampling.ddpm_sample", "write the sampling loop yourself"),
               sampling.ddim_step: _refusal("tutorial_pkg.sampling.ddim_step", "write the DDIM step yourself")}
    out, failed = _call(name, fn, model, predictor, y.clone(), x_T.clone(), scale, schedule, num_steps, refused=refused)
    if failed:
        return failed

    def run(m, **kw):
        return sampling.ddim_sample(m, (64, 2), schedule, num_steps=num_steps, cond=y, x_T=x_T, dtype=torch.float64,
                                    **kw)

    guided = guidance.classifier_guided_model(model, predictor, schedule, scale)
    expected = run(guided)
    trajectory = sampling.Trajectory()
    run(guided, callback=trajectory)
    suspects = {
        "your samples equal unguided samples: guide the eps at every step, with the gradient at the current x_t":
            run(lambda x_t, t, cond=None: model(x_t, t)),
        "your samples move away from y: the guided eps subtracts scale * sqrt(1 - alpha_bar_t) * grad log p "
        "(a flipped sign)": run(_GuidedEps(model, likelihood, schedule, y, -scale)),
        "your samples stop one step short: after the last timestep, jump to alpha_bar = 1 (t_prev = -1, clean "
        "data), as the last step of eq. (ddim-step)": trajectory.states[-2].double(),
    }
    if isinstance(out, Tensor):
        out = out.detach().double()
    return _diagnose(name, out, expected, suspects, 1e-4)


# assignment 1's setting of task 4 (cell a1-14): N(0, 1) prior, y | x ~ N(x, tau^2), 50 DDIM steps
_A1_SETTING = dict(scales=(0.0, 1.0, 2.0, 4.0), n=2000, num_steps=50, tau=0.5, y=1.5)
_TABLE_KEYS = ("mean", "std", "se_mean", "se_std", "target_mean", "target_std")


def _guided_table_reference(seed: int, *, scales=_A1_SETTING["scales"], n: int = _A1_SETTING["n"],
                           num_steps: int = _A1_SETTING["num_steps"], tau: float = _A1_SETTING["tau"],
                           y: float = _A1_SETTING["y"]) -> dict:
    """Assignment 1, task 4: the table regenerated from ``seed`` with the package's guided DDIM sampler
    (``ddim_sample(classifier_guided_model(...))``, the sampler of ``check_guided_ddim``), from the same starting
    points, ``randn(n, 1)`` of ``torch.Generator().manual_seed(seed)`` at each scale; and the exact tilted target
    p(x) p(y|x)^s = N(s y / tau^2 / (1 + s / tau^2), 1 / (1 + s / tau^2)), for :func:`check_guided_table`."""
    from .analytic import LinearGaussianLikelihood
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, the seed of the starting points, got {seed!r}")
    schedule = linear_schedule(1000)
    prior = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    eps_model, predictor = prior.eps_model(schedule), LinearGaussianLikelihood(prior, [1.0], tau=tau).predictor(schedule)
    cond = torch.full((n,), y, dtype=torch.float64)
    table = {}
    for s in scales:
        x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        x = sampling.ddim_sample(guidance.classifier_guided_model(eps_model, predictor, schedule, s), (n, 1), schedule,
                                 num_steps=num_steps, cond=cond, x_T=x_T, dtype=torch.float64)[:, 0]
        precision = 1.0 + s / tau ** 2
        sd = x.std().item()
        table[s] = {"mean": x.mean().item(), "std": sd, "se_mean": sd / math.sqrt(n), "se_std": sd / math.sqrt(2 * (n - 1)),
                    "target_mean": s * y / tau ** 2 / precision, "target_std": precision ** -0.5}
    return table


def check_guided_table(table: dict, *, seed, scales=_A1_SETTING["scales"], n: int = _A1_SETTING["n"],
                       num_steps: int = _A1_SETTING["num_steps"], tau: float = _A1_SETTING["tau"],
                       y: float = _A1_SETTING["y"], reference: Optional[dict] = None) -> CheckResult:
    """Assignment 1, task 4: ``table[s]`` for each scale, a dict of the samples' ``mean``, ``std``, ``se_mean``
    (std / sqrt(n)), ``se_std`` (std / sqrt(2 (n - 1))) and the tilted target's ``target_mean``, ``target_std``.

    The samples are regenerated from ``seed`` with the package's sampler (:func:`_guided_table_reference`), so a
    table that does not come from a run of the sampler at that seed fails; the std may divide by n or by n - 1.
    ``reference`` (the grader's) replaces that regenerated table, in the same form: the student's own sampler's."""
    name = "guided samples table"
    if table is None:
        return _report(name, "not implemented", "not implemented yet: fill in table in the cell above")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return _report(name, "fail", f"seed must be the int you seeded the starting points with, got {seed!r}")
    if not isinstance(table, dict) or set(table) != set(scales):
        return _report(name, "fail", f"table must be a dict with one entry per scale in scales, {tuple(scales)}")
    rows = {}
    for s in scales:
        row = table[s]
        numbers = {k: _as_number(row.get(k)) for k in _TABLE_KEYS} if isinstance(row, dict) else {}
        if None in numbers.values() or len(numbers) < len(_TABLE_KEYS):
            return _report(name, "fail", f"table[{s!r}] must be a dict of the numbers {', '.join(_TABLE_KEYS)}")
        rows[s] = numbers
    want = reference if reference is not None else \
        _guided_table_reference(seed, scales=scales, n=n, num_steps=num_steps, tau=tau, y=y)
    near = lambda a, b, tol: abs(a - b) <= tol * abs(b) + 1e-9  # noqa: E731
    for s in scales:
        row, ref = rows[s], want[s]
        precision = 1.0 + s / tau ** 2
        if not near(row["target_mean"], ref["target_mean"], 1e-9) or not near(row["target_std"], ref["target_std"], 1e-9):
            if near(row["target_std"], 1 / precision, 1e-9) and s:
                return _report(name, "fail", "target_std is a standard deviation: the square root of the tilted "
                                             "target's variance 1 / (1 + s / tau^2)")
            return _report(name, "fail", f"the target in table[{s!r}] is not the tilted target p(x) p(y|x)^s: "
                                         "precisions add (1 + s / tau^2), and the mean is s y / tau^2 over that precision")
        # the sampler's output to 1e-4 of its spread, as check_guided_ddim compares it (the std to 1e-3: n or n - 1)
        if abs(row["mean"] - ref["mean"]) > 1e-4 * ref["std"] + 1e-9 or not near(row["std"], ref["std"], 1e-3):
            return _report(name, "fail", f"the samples are not those of your seed at s = {s:g}: run guided_ddim from "
                                         "x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), "
                                         "dtype=torch.float64) at each scale")
        sd = row["std"]
        if not near(row["se_mean"], sd / math.sqrt(n), 1e-3):
            return _report(name, "fail", f"se_mean in table[{s!r}] is the standard error of the mean, std / sqrt(n)")
        if not near(row["se_std"], sd / math.sqrt(2 * (n - 1)), 1e-3):
            if near(row["se_std"], sd / math.sqrt(n), 1e-3):
                return _report(name, "fail", "se_std is the standard error of the std, std / sqrt(2 (n - 1)) for "
                                             "Gaussian samples, not that of the mean")
            return _report(name, "fail", f"se_std in table[{s!r}] is std / sqrt(2 (n - 1))")
    return _report(name, "pass", "the samples repeat from your seed, and the table's statistics and the tilted "
                                 "target match them")


class _PairEps:
    """Assignment 6's exact eps-model of two one-dimensional Gaussians, tabulated as the notebook tabulates it:
    cond = 1 is N(mean_c, var_c); None (or the null -1) is N(mean_u, var_u). A class, so that the grader can send
    it to the process that runs a submission."""

    null_value = -1

    def __init__(self, schedule: NoiseSchedule, mean_c: float, var_c: float, mean_u: float, var_u: float):
        ab = schedule.alpha_bars.double()

        def table(mean, var):
            a = (1 - ab).sqrt() / (ab * var + 1 - ab)
            return a, -a * ab.sqrt() * mean

        (self.a_c, self.c_c), (self.a_u, self.c_u) = table(mean_c, var_c), table(mean_u, var_u)

    def __call__(self, x_t, t, cond):
        if cond is None:
            return self.a_u[t] * x_t + self.c_u[t]
        return torch.where((cond == 1)[:, None], self.a_c[t] * x_t + self.c_c[t], self.a_u[t] * x_t + self.c_u[t])


def _pair_eps(schedule: NoiseSchedule, mean_c: float, var_c: float, mean_u: float, var_u: float) -> Callable:
    return _PairEps(schedule, mean_c, var_c, mean_u, var_u)


def check_smc_estimates(estimates: dict, *, seed: int, particle_counts: dict, timesteps, schedule: NoiseSchedule,
                        gamma: float = 3.0, mean_c: float = 1.0, var_c: float = 0.25, mean_u: float = 0.0,
                        var_u: float = 1.0, ess_threshold: float = 0.5) -> CheckResult:
    """Assignment 6's experiment, repeated here from the student's ``seed``: for each K of ``particle_counts`` (K:
    number of systems G), ``generator = manual_seed(seed + K)``, ``x_T = randn(G K, 1)`` from it, the SMC loop of the
    notebook (the package's reference from the same generator) on the exact pair of Gaussians, and per system the
    weighted mean, the weighted variance and the ESS / K of the final weights. ``estimates[K]`` must hold them
    (``"mean"``, ``"variance"``, ``"ess"``, one value per system). A resampling decision at a tie can flip on
    rounding, so up to 2 % of the systems (at least one) may differ; typed-in or other seeds' numbers do not pass."""
    from . import _checks
    name = "SMC bias experiment"
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    if not isinstance(particle_counts, dict) or not particle_counts:
        raise ValueError(f"particle_counts must be a non-empty dict K -> number of systems, got {particle_counts!r}")
    for K, G in particle_counts.items():
        _checks.integer("K", K, low=1)
        _checks.integer("number of systems", G, low=1)
    timesteps = [int(t) for t in timesteps]
    if not timesteps or any(not 0 <= t < schedule.T for t in timesteps):
        raise ValueError(f"timesteps must be steps of the schedule (0 to {schedule.T - 1}), got {timesteps!r:.80}")
    if estimates is None:
        return _report(name, "not implemented", "not implemented yet: fill in estimates")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return _report(name, "fail", f"seed must be the int your generators are seeded from (seed + K), got {seed!r}")
    if not isinstance(estimates, dict) or set(estimates) != set(particle_counts):
        return _report(name, "fail", f"estimates must be a dict with one entry per K of {sorted(particle_counts)}")
    model = _pair_eps(schedule, mean_c, var_c, mean_u, var_u)
    for K, G in particle_counts.items():
        entry = estimates[K]
        if not isinstance(entry, dict) or not {"mean", "variance", "ess"} <= set(entry):
            return _report(name, "fail", f"estimates[{K}] must hold 'mean', 'variance' and 'ess'")
        try:
            got = {key: torch.as_tensor(entry[key], dtype=torch.float64).reshape(-1) for key in ("mean", "variance", "ess")}
        except (TypeError, ValueError, RuntimeError):
            return _report(name, "fail", f"estimates[{K}] must hold arrays of numbers, one per system")
        if any(v.numel() != G for v in got.values()):
            return _report(name, "fail", f"estimates[{K}] must hold {G} values each, one per system")
        generator = torch.Generator().manual_seed(seed + K)
        x_T = torch.randn(G * K, 1, generator=generator, dtype=torch.float64)
        x, log_w = _smc_reference(model, torch.ones(G * K, dtype=torch.long), gamma, schedule, timesteps, x_T, G,
                                  generator, ess_threshold)
        w, x = log_w.exp().view(G, K), x[:, 0].view(G, K)
        means = (w * x).sum(1)
        want = {"mean": means, "variance": (w * (x - means[:, None]) ** 2).sum(1), "ess": 1 / w.pow(2).sum(1) / K}
        bad = torch.zeros(G, dtype=torch.bool)
        for key in want:
            bad |= ~torch.isclose(got[key], want[key], atol=1e-6, rtol=1e-6)
        if int(bad.sum()) > max(1, G // 50):
            return _report(name, "fail", f"estimates[{K}] is not what the notebook's run gives from your seed "
                                         f"({int(bad.sum())} of {G} systems differ): seed each K's generator with "
                                         "seed + K, draw x_T from it, pass it on to your sampler")
    return _report(name, "pass", "every K's systems repeat from your seed, and their estimates match")


def check_dropout_experiment(results: dict, *, trained: dict, seed: int, mixture: GaussianMixture,
                             schedule: NoiseSchedule, rates, gammas, n_nets: int, n: int, num_steps: int,
                             make_net: Callable, sample: Optional[Callable] = None) -> CheckResult:
    """Assignment 2's dropout experiment, repeated here from the student's ``seed``: for each rate ``p`` and each
    ``i < n_nets`` the network trained as ``train_net(p, seed + i)`` (its weights ``trained["p<1000 p>_seed<seed + i>"]``,
    loaded into ``make_net()``), ``x_T = randn(n, 1)`` from ``manual_seed(seed + i)`` in float64, class 1, and the
    package's DDIM sampler with CFG at each ``gamma`` against the same sampler on the exact ``mixture``.
    ``results[p][gamma]`` must hold ``"error"``, the mean of ``|x - x_exact|``, and ``"wrong"``, the share x < 0, one
    per network in the order of ``i``. Typed-in numbers, or another seed's, do not pass. ``sample(model, x_T, gamma)``
    (the grader's: the student's own sampler) replaces the package's sampler, for the networks and the exact model."""
    name = "dropout experiment"
    if results is None:
        return _report(name, "not implemented", "not implemented yet: fill in results")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return _report(name, "fail", f"seed must be the int your networks are trained from (seed + i), got {seed!r}")
    if not isinstance(results, dict) or set(results) != set(rates):
        return _report(name, "fail", f"results must be a dict with one entry per rate of {sorted(rates)}")
    cond = torch.ones(n, dtype=torch.long)

    def package_sample(model, x_T, gamma):
        with torch.no_grad():
            return sampling.ddim_sample(guidance.cfg_model(model, gamma), (n, 1), schedule, num_steps=num_steps,
                                        x_T=x_T, cond=cond, dtype=torch.float64).double()

    if sample is None:
        sample = package_sample
    exact_model = mixture.eps_model(schedule)
    parsed = {}
    for p in rates:
        if not isinstance(results[p], dict) or set(results[p]) != set(gammas):
            return _report(name, "fail", f"results[{p}] must be a dict with one entry per gamma of {list(gammas)}")
        for g in gammas:
            entry = results[p][g]
            if not isinstance(entry, dict) or not {"error", "wrong"} <= set(entry):
                return _report(name, "fail", f"results[{p}][{g}] must hold 'error' and 'wrong'")
            try:
                got = {key: torch.as_tensor(entry[key], dtype=torch.float64).reshape(-1) for key in ("error", "wrong")}
            except (TypeError, ValueError, RuntimeError):
                return _report(name, "fail", f"results[{p}][{g}] must hold lists of numbers, one per network")
            if any(v.numel() != n_nets for v in got.values()):
                return _report(name, "fail", f"results[{p}][{g}] must hold {n_nets} values each, one per network")
            parsed[p, g] = got
    for i in range(n_nets):
        x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed + i), dtype=torch.float64)
        exact = {g: sample(exact_model, x_T, g) for g in gammas}
        for p in rates:
            key = f"p{round(p * 1000)}_seed{seed + i}"
            if key not in trained:
                return _report(name, "fail", f"no network was trained as train_net({p}, {seed + i}): train network i "
                                             "of each rate with train_net(p_uncond, seed + i)")
            net = make_net()
            try:
                net.load_state_dict(trained[key])
            except (RuntimeError, KeyError, TypeError):
                return _report(name, "fail", f"the network {key} is not one that train_net made")
            net.eval()
            for g in gammas:
                x = sample(net, x_T, g)
                want = {"error": (x - exact[g]).abs().mean().item(), "wrong": (x < 0).double().mean().item()}
                got = parsed[p, g]
                if abs(got["error"][i].item() - want["error"]) > 1e-4 + 1e-3 * want["error"]:
                    return _report(name, "fail", f"results[{p}][{g}]['error'][{i}] is not the mean |x - x_exact| that "
                                                 "the network and the exact model give from your seed: draw x_T from "
                                                 "manual_seed(seed + i), float64, and use the same x_T for both")
                if abs(got["wrong"][i].item() - want["wrong"]) > 2.5 / n:
                    return _report(name, "fail", f"results[{p}][{g}]['wrong'][{i}] is not the share of that "
                                                 "network's samples with x < 0")
    return _report(name, "pass", "every network's error and wrong-mode share repeat from your seed")


# -- the value tasks, tied to the student's own function (for the grader) ---------------------------------------
# A value task's numbers pass only when the student's function, called again by the grader on one entry of the
# notebook's setting (chosen by the grader's hidden seed), gives that entry as reported: numbers typed in, or made
# by anything but the student's function, do not.
def _tie_failed(name: str, what: str) -> CheckResult:
    return _report(name, "fail", f"the submission: {what}")


def _tie_dropout_training(fn: Callable, trained: dict, *, seed: int, picks: dict, mixture: GaussianMixture,
                          schedule: NoiseSchedule, rates, n_nets: int, make_net: Callable, steps: int = 400,
                          batch: int = 256, exact: bool = True) -> CheckResult:
    """Assignment 2: for each rate ``p``, the networks ``i`` of ``picks[p]`` (indices below ``n_nets``) trained
    again here as cell a2-14's ``train_net(p, seed + i)`` trains them, with ``fn`` (the student's
    ``drop_condition``) called at every step on that step's labels and generator, which it advances as it does in
    the student's run; the weights must be those that the student's run stored in ``trained``. The rows it dropped
    are counted for each class: each class's share must be ``p`` to 5 standard errors (a dropout that depends on
    the label trains no unconditional null branch). With ``exact`` (the dropout's own task passed), the rows must be
    those of the notebook's draw, ``torch.rand(batch, generator=g) < p``. Networks trained another way (another
    rate, other steps) stored under a rate's key do not pass when they are among those picked; the others are not
    looked at."""
    name = "dropout experiment"
    refused = {training.drop_condition: _refusal("tutorial_pkg.training.drop_condition", "write the dropout yourself")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the process that trained them
    other_length = False  # a call drew more or fewer numbers from the generator than the notebook's draw
    try:
        for p in rates:
            for i in picks[p]:
                if not 0 <= i < n_nets:
                    raise ValueError(f"picks[{p}] holds {i}, not a network index in 0 .. {n_nets - 1}")
                key = f"p{round(p * 1000)}_seed{seed + i}"
                rows, dropped = torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed + i)  # the initial weights
                    net = make_net()
                    g = torch.Generator().manual_seed(seed + i)
                    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
                    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
                    for _ in range(steps):
                        x0, c = mixture.sample(batch, generator=g)
                        t = torch.randint(0, schedule.T, (batch,), generator=g)
                        eps = torch.randn(batch, 1, generator=g, dtype=torch.float64)
                        labels = c
                        # the notebook's draw, from a copy of the generator in the state the student's function gets
                        copy = torch.Generator().set_state(g.get_state())
                        draw = torch.rand(batch, generator=copy) < p
                        c, failed = _call(name, fn, c, p, net.null_value, g, refused=refused)
                        if failed:
                            return _tie_failed(name, f"your drop_condition, run again: {failed.message}")
                        if not isinstance(c, Tensor) or c.shape != (batch,):
                            return _tie_failed(name, "your drop_condition, run again in training, did not return one "
                                                     "condition per row")
                        if exact and not torch.equal(c, torch.where(draw, torch.full_like(labels, net.null_value),
                                                                    labels)):
                            return _tie_failed(name, f"your drop_condition, run again in training network {i} at "
                                                     f"p_uncond = {p:g}, dropped other rows than the notebook's draw "
                                                     "(torch.rand(N, generator=generator) < p_uncond), which it "
                                                     "followed in its own task")
                        if not torch.equal(g.get_state(), copy.get_state()):  # drew more or fewer numbers
                            if exact:
                                return _tie_failed(name, f"your drop_condition, run again in training network {i} at "
                                                         f"p_uncond = {p:g}, left the generator elsewhere than the "
                                                         "notebook's draw does (it drew more or fewer numbers than "
                                                         "one per row), though it followed that draw in its own task: "
                                                         "its networks are not the notebook's")
                            other_length = True
                        rows += torch.bincount(labels, minlength=2)[:2]
                        dropped += torch.bincount(labels[(c == net.null_value) & (labels != net.null_value)],
                                                  minlength=2)[:2]
                        loss = torch.nn.functional.mse_loss(net(schedule.q_sample(x0, t, eps).float(), t, c),
                                                            eps.float())
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        decay.step()
                # the share of rows that the student's function dropped in this training, overall and in each class
                total, share = int(rows.sum()), int(dropped.sum()) / int(rows.sum())
                if abs(share - p) > 5 * math.sqrt(p * (1 - p) / total):
                    return _tie_failed(name, f"your drop_condition, run again in training network {i} at p_uncond = "
                                             f"{p:g}, dropped the condition in a share {share:.3f} of the "
                                             f"{total} rows; expected about {p:g}")
                for label in range(2):
                    m, k = int(rows[label]), int(dropped[label])
                    if m and abs(k / m - p) > 5 * math.sqrt(p * (1 - p) / m):
                        return _tie_failed(name, f"your drop_condition, run again in training network {i} at "
                                                 f"p_uncond = {p:g}, dropped the condition in a share {k / m:.3f} of "
                                                 f"the {m} rows of class {label}; expected about {p:g} in each class: "
                                                 "drop each row with probability p_uncond independently of the label")
                stored = trained.get(key, {})
                ours = net.state_dict()
                if set(stored) != set(ours) or any(not torch.allclose(torch.as_tensor(stored[k]).double(), v.double(),
                                                                      rtol=0, atol=1e-6) for k, v in ours.items()):
                    return _tie_failed(name, f"the network stored as {key} is not what train_net({p:g}, {seed + i}) "
                                       "makes (the grader trained it again, with your drop_condition called on the "
                                       "generator of each training step): train network i of each rate with "
                                       "train_net(p_uncond, seed + i), as the notebook's train_net does")
    finally:
        torch.set_num_threads(threads)
    which = "; ".join(f"{_networks(picks[p])} at p = {p:g}" for p in rates)
    return _report(name, "pass", f"the networks trained again by the grader, {which}, are what train_net makes "
                                 f"(the grader retrains {max(len(picks[p]) for p in rates)} of the {n_nets} of each "
                                 "rate, drawn from its hidden seed: the others are not checked this way), with "
                                 "the dropped share p_uncond in each class" + (f"; {_OTHER_LENGTH}" if other_length else ""))


# how the training tie says that the student's dropout drew another number of values in training than the notebook's
# draw (a draw whose length chooses among sets of networks): the experiment on them then earns at most half
_OTHER_LENGTH = ("but your drop_condition drew more or fewer numbers from the generator in training than the "
                 "notebook's draw, so the networks are not the notebook's")


def _networks(indices) -> str:
    """``[2, 5, 9]`` -> "networks 2, 5 and 9" (one: "network 2")."""
    words = [str(i) for i in indices]
    if len(words) == 1:
        return f"network {words[0]}"
    return f"networks {', '.join(words[:-1])} and {words[-1]}"


def _tie_guided_table(fn: Callable, table: dict, *, seed: int, pick: int) -> CheckResult:
    """Assignment 1: ``fn`` (the student's ``guided_ddim``) run at one scale of the table (``pick`` chooses it) from
    the student's ``seed``; its samples' mean and std must be the table's row at that scale."""
    from .analytic import LinearGaussianLikelihood
    name, setting = "guided samples table", _A1_SETTING
    s = setting["scales"][pick % len(setting["scales"])]
    schedule, n = linear_schedule(1000), setting["n"]
    prior = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    predictor = LinearGaussianLikelihood(prior, [1.0], tau=setting["tau"]).predictor(schedule)
    x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    y = torch.full((n,), setting["y"], dtype=torch.float64)
    refused = {guidance.classifier_guided_model: _refusal("tutorial_pkg.guidance.classifier_guided_model", "write it"),
               sampling.ddim_sample: _refusal("tutorial_pkg.sampling.ddim_sample", "write the loop yourself"),
               _guided_table_reference: _refusal("the grader's reference", "run your own sampler")}
    out, failed = _call(name, fn, prior.eps_model(schedule), predictor, y, x_T, s, schedule, setting["num_steps"],
                        refused=refused)
    if failed:
        return _tie_failed(name, f"your guided_ddim, run again at s = {s:g}: {failed.message}")
    if not isinstance(out, torch.Tensor) or out.shape != (n, 1):
        return _tie_failed(name, f"your guided_ddim, run again at s = {s:g}, did not return {n} samples")
    x = out.detach().double()[:, 0]
    row = table[s]
    if abs(row["mean"] - x.mean().item()) > 1e-4 * x.std().item() + 1e-9 or \
            abs(row["std"] - x.std().item()) > 1e-3 * x.std().item() + 1e-9:
        return _tie_failed(name, f"table[{s:g}] is not what your guided_ddim gives from your seed at s = {s:g} (the "
                                 "grader ran it again): the table must come from a run of your sampler")
    return _report(name, "pass", f"your guided_ddim, run again at s = {s:g}, gives this row of the table")


def _tie_smc_estimates(fn: Callable, estimates: dict, *, seed: int, particle_counts: dict, timesteps,
                       schedule: NoiseSchedule, gamma: float, pick: int) -> CheckResult:
    """Assignment 6: ``fn`` (the student's ``smc_sampler``) run for one K (``pick`` chooses it among the K whose run
    holds at most 6 400 particles) from the student's ``seed``; its systems' estimates must be ``estimates[K]``."""
    name = "SMC bias experiment"
    cheap = [K for K, G in sorted(particle_counts.items()) if K * G <= 6400] or sorted(particle_counts)[:1]
    K = cheap[pick % len(cheap)]
    G = particle_counts[K]
    generator = torch.Generator().manual_seed(seed + K)
    x_T = torch.randn(G * K, 1, generator=generator, dtype=torch.float64)
    refused = {**_SMC_REFUSED, **_CFG_REFUSED,
               sampling.ddim_sample: _refusal("tutorial_pkg.sampling.ddim_sample", "write the loop yourself"),
               _smc_reference: _refusal("the grader's reference", "write the loop yourself")}
    out, failed = _call(name, fn, _pair_eps(schedule, 1.0, 0.25, 0.0, 1.0), torch.ones(G * K, dtype=torch.long), gamma,
                        schedule, [int(t) for t in timesteps], x_T, G, generator, refused=refused)
    if failed:
        return _tie_failed(name, f"your smc_sampler, run again at K = {K}: {failed.message}")
    try:
        x, log_w = out
        w, x = log_w.detach().double().exp().view(G, K), x.detach().double()[:, 0].view(G, K)
    except (TypeError, ValueError, RuntimeError, AttributeError):
        return _tie_failed(name, f"your smc_sampler, run again at K = {K}, did not return (particles, log_weights)")
    means = (w * x).sum(1)
    mine = torch.as_tensor(estimates[K]["mean"], dtype=torch.float64).reshape(-1)
    if int((~torch.isclose(mine, means, atol=1e-6, rtol=1e-6)).sum()) > max(1, G // 50):
        return _tie_failed(name, f"estimates[{K}] is not what your smc_sampler gives from your seed (the grader ran "
                                 "it again): the estimates must come from a run of your sampler")
    return _report(name, "pass", f"your smc_sampler, run again at K = {K}, gives these estimates")


def _tie_mmps_samples(fn: Callable, samples, *, prior: GaussianMixture, a: Tensor, sigma_y: float, y: float,
                      schedule: NoiseSchedule, seed: int, pick: int, rows: int = 16, num_steps: int = 50) -> CheckResult:
    """Assignment 5: ``fn`` (the student's ``mmps_eps``, called at every step) drives the 50-step DDIM sampler of
    the notebook for ``rows`` of the student's samples (``pick`` chooses them), from the student's ``seed``; the
    results must be those rows of ``samples``."""
    from . import analytic, tweedie
    name = "MMPS samples and report"
    n, D = samples.shape
    x_T = torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    index = torch.randperm(n, generator=torch.Generator().manual_seed(pick))[:rows]
    eps_prior = prior.eps_model(schedule)
    refused = {tweedie.tweedie_vjp: _refusal("tutorial_pkg.tweedie.tweedie_vjp", "write it yourself"),
               tweedie.posterior_covariance: _refusal("tutorial_pkg.tweedie.posterior_covariance", "write it yourself"),
               tweedie._LinearGaussian.__call__: _refusal("tutorial_pkg.tweedie.mmps_model", "write it yourself"),
               tweedie.DPSModel.__call__: _refusal("tutorial_pkg.tweedie.dps_model", "write it yourself"),
               GaussianMixture.posterior_moments: _refusal("tutorial_pkg.analytic.GaussianMixture.posterior_moments",
                                                           "write it yourself"),
               analytic.ExactX0Model.__call__: _refusal("tutorial_pkg.analytic.ExactX0Model", "write it yourself")}
    failures: list = []

    def model(x_t, t, cond):
        if failures:
            return torch.zeros_like(x_t)
        out, failed = _call(name, fn, _CallOnly(eps_prior), x_t.clone(), int(torch.as_tensor(t).reshape(-1)[0]),
                            cond.clone(), a.clone(), sigma_y, schedule, refused=refused)
        if failed or not isinstance(out, torch.Tensor) or out.shape != x_t.shape:
            failures.append(failed.message if failed else "it did not return a tensor shaped like x_t")
            return torch.zeros_like(x_t)
        return out.detach().to(x_t.dtype)

    x = sampling.ddim_sample(model, (rows, D), schedule, num_steps=num_steps, x_T=x_T[index],
                             cond=torch.full((rows,), y, dtype=torch.float64), dtype=torch.float64)
    if failures:
        return _tie_failed(name, f"your mmps_eps, run again in the sampler: {failures[0]}")
    if not torch.allclose(x, samples.double()[index], atol=1e-6, rtol=1e-6):
        return _tie_failed(name, "the samples are not what your mmps_eps gives from your seed (the grader ran the "
                                 "sampler again on some of them): they must come from a run of your function")
    return _report(name, "pass", f"your mmps_eps, run again on {rows} of the samples, gives them")


def _tie_band_share(fn: Callable, reference: dict, *, core: Tensor, band: Tensor, name_of_core: str) -> CheckResult:
    """Assignment 7: ``fn`` (the student's ``band_share``) on one core of the MD band; it must give that core's entry
    of the student's ``reference``."""
    from . import stats
    name = "core-state gaps"
    refused = {fn_: _refusal(f"tutorial_pkg.stats.{fn_.__name__}", "count the effective size yourself")
               for fn_ in (stats.share, stats.series_mean, stats.effective_size)}
    refused[_band_share_reference] = _refusal("the grader's reference", "count the share and its error yourself")
    out, failed = _call(name, fn, core.clone(), band.clone(), refused=refused)
    if failed:
        return _tie_failed(name, f"your band_share, run again on {name_of_core}: {failed.message}")
    entry = reference.get(name_of_core) if isinstance(reference, dict) else None
    pair = [_as_number(v) for v in out] if isinstance(out, (tuple, list)) and len(out) == 2 else [None]
    theirs = [_as_number(v) for v in entry] if isinstance(entry, (tuple, list)) and len(entry) == 2 else [None, None]
    if None in pair or None in theirs or abs(pair[0] - theirs[0]) > 1e-9 or abs(pair[1] - theirs[1]) > 1e-9 * abs(pair[1]) + 1e-12:
        return _tie_failed(name, f"reference[{name_of_core!r}] is not what your band_share gives on the band (the "
                                 "grader ran it again): the reference must come from your function")
    return _report(name, "pass", f"your band_share, run again on {name_of_core}, gives your reference")


def _gap_inputs(report: dict, reference: dict, n: int, core: str) -> tuple:
    """The arguments of ``gap_verdict`` for one core, as the notebook's gaps cell passes them: the batch's share, its
    standard error and n - 1 degrees of freedom, the reference's share, its standard error and N_eff - 1."""
    p_ref, se_ref = (float(v) for v in reference[core])
    dof_ref = max(p_ref * (1 - p_ref) / se_ref ** 2 - 1, 1.0) if se_ref > 0 else 1.0
    return float(report[core]["share"]), float(report[core]["se"]), float(n - 1), p_ref, se_ref, dof_ref


def _gap_table(report: dict, reference: dict, *, n: int) -> str:
    """The gaps as the grader recomputes them, with the degrees of freedom and the verdict of each accepted rule
    (and of the normal quantile), so that the marker can read the student's comment on the rule beside them."""
    from . import stats
    from .systems.alanine_dipeptide import BASINS
    lines = ["the gaps as the grader recomputes them from your seed's batch and your reference (points; dof and verdict "
             "under each rule):"]
    for core in BASINS:
        p_gen, se_gen, dof_gen, p_ref, se_ref, dof_ref = _gap_inputs(report, reference, n, core)
        gap, se = p_gen - p_ref, math.hypot(se_gen, se_ref)
        rules = _gap_rules(se_gen, dof_gen, se_ref, dof_ref)
        words = []
        for rule in ("conservative", "Welch", "normal"):
            dof = rules[rule]
            q = 1.959963984540054 if dof == math.inf else stats.t_quantile(dof)
            shown = "inf" if dof == math.inf else f"{dof:.0f}"
            words.append(f"{rule} (dof {shown}): {'resolved' if abs(gap) > q * se else 'not resolved'}")
        lines.append(f"  {core:>8s}: {100 * gap:+5.1f} ± {100 * se:.1f}; " + "; ".join(words))
    return "\n".join(lines)


def _tie_gap_verdict(fn: Callable, gaps, *, report: dict, reference: dict, n: int, name_of_core: str) -> CheckResult:
    """Assignment 7: ``fn`` (the student's ``gap_verdict``) on one core's numbers; it must give that core's entry of
    the student's ``gaps``."""
    name = "core-state gaps"
    out, failed = _call(name, fn, *_gap_inputs(report, reference, n, name_of_core))
    if failed:
        return _tie_failed(name, f"your gap_verdict, run again on {name_of_core}: {failed.message}")
    entry = gaps.get(name_of_core) if isinstance(gaps, dict) else None
    def triple(x):
        if not isinstance(x, (tuple, list)) or len(x) != 3:
            return None
        flag = x[2].item() if isinstance(x[2], Tensor) and x[2].numel() == 1 else x[2]
        values = [_as_number(x[0]), _as_number(x[1])]
        return None if None in values or not isinstance(flag, bool) else (*values, flag)
    mine, theirs = triple(out), triple(entry)
    if mine is None or theirs is None or abs(mine[0] - theirs[0]) > 1e-9 or abs(mine[1] - theirs[1]) > 1e-9 or \
            mine[2] != theirs[2]:
        return _tie_failed(name, f"gaps[{name_of_core!r}] is not what your gap_verdict gives on that core's numbers "
                                 "(the grader ran it again): the gaps must come from your function")
    return _report(name, "pass", f"your gap_verdict, run again on {name_of_core}, gives your gaps")
