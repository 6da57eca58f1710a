"""Grading the assignments on the instructor's side: hidden tests, in a fresh process, on the submitted answers.

Usage (``make grade SUBMISSIONS=folder``)::

    python -m tutorial_pkg.grader SUBMISSIONS [--out gradebook.csv] [--feedback FOLDER] [--jobs 2] [--seed N]
                                 [--solutions FOLDER]

``SUBMISSIONS`` is a folder of submitted notebooks (``a2_classifier_free_guidance.ipynb`` files, one per student,
either as ``STUDENT.ipynb`` / ``STUDENT_a2_....ipynb`` or as ``STUDENT/a2_....ipynb``). For each submission:

1. **Only the answer cells are taken from it**, found by their cell ids (``a2-07``, ...), which Jupyter keeps. Every
   other cell is regenerated from the assignment's template, the student notebook that ``make assignments``
   makes (``book/assignments/``): edited check cells, new cells and stored outputs are ignored.
2. **Each answer cell is read before it runs** (:func:`screen`, on its syntax tree): it may import only
   ``torch``, ``math``, ``numpy`` and ``itertools``; it may not name ``exec``, ``eval``, ``compile``,
   ``__import__``, ``getattr`` and their kin, touch an underscore attribute (``__code__``, ``__globals__``,
   ``np._core``), write a string that is itself a module's or a double-underscore name (prose in docstrings and
   strings is the student's), pass ``allow_pickle=`` or ``weights_only=``, reach ``sys``, ``os``, ``importlib``,
   ``inspect``, ``types``, ``operator``, ``torch.load`` or numpy's ``read_array`` through an attribute, nor use the
   package modules that the notebook imports other than the few calls its task names
   (``sampling.ddim_timesteps`` in the DDIM sampler, the sampling calls that the value tasks give). A
   refused cell scores zero on its tasks, with the reason: a module copy, ``exec`` of copied source, code-object
   surgery, monkeypatching or a call of a package function that solves the task never runs.
3. **The screened cells run in a fresh Python process** (one per submission, on the CPU, standard output
   discarded; forked from a server process that imported torch and the package and ran nothing else, so that it
   starts in milliseconds rather than the seconds those imports take), between the regenerated cells they need; a cell whose TODO is still open is not run.
   Before the first answer cell, the child installs an audit hook (:func:`_lock_down`) that refuses writes outside
   its own temporary folder, new processes, sockets and ctypes, and unpickling, marshal and new code objects
   unless the grader itself loads its inputs with no answer's code on the stack: a tripwire, not a sandbox (grade
   submissions you do not trust in a throw-away container). Around each call of a student's function the child
   installs the self-check's own refusals (:func:`tutorial_pkg.grading._refusing`), sent by the grader.
   An answer cell runs in a namespace of its own, which holds the notebook's variables but none of the package's
   modules, functions or classes beyond the calls its task names, and torch, numpy, math, itertools and pyplot as
   views without the modules they import (:func:`_view`): a way round the screen finds nothing there. A thread that
   an answer starts may not compile, run or swap code, nor unpickle (:func:`_lock_down`).
4. **The hidden tests run in the grader's own process**: they draw inputs from a seed the student never saw
   (fresh from the operating system's entropy unless ``--seed`` is given), send them to the child, receive the
   student's outputs (loaded as tensors, numbers and containers only), and compare them with the references
   computed here, where no student code has run. The value tasks (assignment 1's table, assignments 3 to 7)
   regenerate the student's samples from the student's seed here and recompute the report, so numbers of another
   seed score zero; a value task whose numbers come from the student's functions (``Task.uses``) scores zero unless
   their tasks passed, and its check calls the student's function again in the child on one entry of the setting,
   chosen by the hidden seed, which must give the entry reported. The feedback shows what a value task's cell
   printed in the submission, as stored.

Points: a task that passes earns its points; a failure that the self-check names (a flipped sign, the w/gamma
off-by-one, ...) earns half, with its hint (assignment 1's guided eps with the sign flipped, which reverses guidance,
none: ``_NO_HALF``); any other failure, a refusal or an open TODO earns zero. A function that
calls an earlier answer function whose task failed, or whose cell was refused or left unfinished, is checked with
the grader's reference (``_REFERENCES``) bound in its place, so that it is graded on its own logic. Written
answers are graded by hand: the feedback file of each submission holds the student's text and the task's
rubric (from ``instructor/rubrics/``, which stays with the solutions: ``--rubrics`` names another folder), and the
gradebook a column for those points: blank for an answer to grade, 0 where none was written (the cell missing,
or empty once ``ANSWER_MARK`` is taken out, and no markdown cell with text added next to it, above or below: such
cells are shown under the task). For A2 to A7 the feedback also shows, beside the written answer, the
comparisons that it quotes as the grader computed them from the value task's re-run values (``NUMBERS_HEADING``),
whenever the samples repeat from the student's seed (also after a named slip in the student's intervals); for
A5's Think! 2, the table of cell a5-22 as the student's own ``window_moments`` makes it, called again on that
cell's setting (``FUNCTION_NUMBERS_HEADING``), when that task passed or made a named slip.

Writes the gradebook (CSV, one row per submission: each task's points, the automatic total and maximum, the
written answers' maximum, the ``copied`` package code and the ``identical`` answers: the same, whitespace aside, as
another submission's in the folder or as the model answer of ``--solutions``, and written answers similar to them
by 4-word shingles of their content words, with the similarity) and one feedback file per
submission (each task's report and hint, the seed of the hidden inputs, so that a case can be replayed with
``--seed``).
"""

from __future__ import annotations

import argparse
import ast
import base64
import contextlib
import copy
import csv
import dataclasses
import functools
import io
import json
import os
import pathlib
import random
import re
import sys
import tempfile
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple, Optional

__all__ = ["Task", "screen", "copied", "rubrics", "grade_notebook", "grade_folder", "main"]

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "book" / "assignments"
RUBRICS = ROOT / "instructor" / "rubrics"
SOLUTIONS = ROOT / "instructor" / "solutions"  # the model answers, which identical answers are compared with
TODO_MARK = "raise NotImplementedError  # TODO"
ANSWER_MARK = "*Your answer here.*"


# -- the tasks ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Task:
    """One graded task: the answer cell (its id), its points, and how it is graded.

    ``kind`` is ``"function"`` (``check`` is a self-check of :mod:`tutorial_pkg.grading` called here on the
    student's function ``name``, run in the child), ``"values"`` (``check(get, seed, call)`` with ``get`` fetching
    the named variables from the child and ``call(name)`` the student's function ``name`` there) or ``"written"``
    (graded by hand with its rubric, :func:`rubrics`). ``allowed`` names the attributes of the package modules that
    the answer cell may use; ``uses`` the function tasks whose functions a value task's numbers must come from: the
    value task scores zero unless each of them passed, and its check calls one of them again on an entry of the
    notebook's setting chosen by the hidden seed."""

    name: str
    cell: str
    points: float
    kind: str
    check: Optional[Callable] = None
    allowed: tuple = ()
    uses: tuple = ()

    def __post_init__(self):
        if self.kind not in ("function", "values", "written"):
            raise ValueError(f"kind must be 'function', 'values' or 'written', got {self.kind!r}")
        if not isinstance(self.points, (int, float)) or isinstance(self.points, bool) or self.points <= 0:
            raise ValueError(f"points must be a positive number, got {self.points!r}")
        if (self.check is None) != (self.kind == "written"):
            raise ValueError(f"check must be given for a {self.kind!r} task, and only for one graded automatically")


def _function(check_name: str) -> Callable:
    def run(remote, seed):
        from . import grading
        return getattr(grading, check_name)(remote, seed=seed)
    return run


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _muller_brown():
    """The notebooks' shared setting, loaded once per grading run."""
    if "mb" not in _CACHE:
        import torch
        from . import schedules, zoo
        with _quiet():
            data = zoo.muller_brown_data()
            loaded = zoo.load("muller_brown_cfg", device="cpu", progress=False)
        _CACHE["mb"] = (torch, data, loaded.model, schedules.linear_schedule(zoo.SCHEDULE_T))
    return _CACHE["mb"]


_CACHE: dict = {}


def _energy_report(get, seed, call=None):
    """Assignment 3 (cell a3-02: 5 blocks of n = 300): every block of every scale regenerated here from the student's
    seed; every block's error and distance and the intervals recomputed. When it passes, the comparisons that the
    written answer quotes (:func:`_a3_numbers`) are computed from those blocks and samples."""
    from . import grading, metrics
    torch, data, eps_model, schedule = _muller_brown()
    if "a3 reference" not in _CACHE:  # the notebook's reference (cell a3-04)
        _CACHE["a3 reference"] = data.conditional_reference(-40.0, 4000, delta=0.5,
                                                            generator=torch.Generator().manual_seed(7))
    if "a3 floors" not in _CACHE:  # the noise floor of cell a3-04: 5 draws of 300 exact samples
        _CACHE["a3 floors"] = [metrics.sliced_wasserstein(
            data.conditional_reference(-40.0, 300, delta=0.5, generator=torch.Generator().manual_seed(100 + k)),
            _CACHE["a3 reference"], generator=torch.Generator().manual_seed(1)) for k in range(5)]
    values = get("samples", "report", "seed")
    result = grading.check_energy_report(values["report"], values["samples"], data=data, eps_model=eps_model,
                                         schedule=schedule, target=-40.0, reference=_CACHE["a3 reference"],
                                         seed=values["seed"], n=300, blocks=5)
    # a named mistake (1.96 for t, ...) is named only after every block of every scale was regenerated from the
    # seed: the samples are the seed's, and the numbers are computed from them, not from the student's report
    confirmed = result.status == "fail" and not result.message.startswith(_GENERIC)

    def numbers():
        report = values["report"] if result.status == "pass" else _a3_blocks(values["samples"], data,
                                                                               _CACHE["a3 reference"])
        return _a3_numbers(report, values["samples"], data, _CACHE["a3 reference"], _CACHE["a3 floors"])
    return _with_numbers(result, numbers, confirmed)


def _a3_blocks(samples: dict, data, reference) -> dict:
    """Assignment 3's per-block energy errors and distances (cell a3-06's report, blocks only), recomputed from the
    samples as the check does."""
    import torch
    from . import metrics
    out = {}
    for g, x in samples.items():
        x = torch.as_tensor(x).double()
        out[g] = {"energy_error": {"blocks": [metrics.energy_error(data.system.energy(b), -40.0).median for b in x]},
                  "sliced_w1": {"blocks": [metrics.sliced_wasserstein(b, reference, generator=torch.Generator()
                                                                      .manual_seed(1)) for b in x]}}
    return out


def _nll_up_to_a_constant(nll: Callable, seed: int) -> str:
    """Assignment 4: ``""`` when the student's ``gaussian_nll`` (called in the child, with ``grad=True``: the
    gradients are taken there) is the Gaussian negative log-likelihood up to one additive constant (the 0.5 log(2 pi)
    left out, say) in its values, and has its gradients with respect to f and log_sigma, on fresh inputs of the hidden
    seed: the regenerated cell a4-07 then trains the reference's regressor through it; otherwise what is wrong with
    it."""
    import math
    import torch
    from .grading import _nll_gradient_is_right
    g = torch.Generator().manual_seed(seed)
    f, E = 3 * torch.randn(2, 64, generator=g, dtype=torch.float64)
    log_sigma = torch.randn(64, generator=g, dtype=torch.float64)
    try:
        answer = nll(f.clone().requires_grad_(True), log_sigma.clone().requires_grad_(True), E, grad=True)
    except NotImplementedError:
        return "is not written yet"
    except Exception as err:  # noqa: BLE001 - the submission's function failed, or its cell did not run
        return f"raised {type(err).__name__}"
    out = answer.get("value") if isinstance(answer, dict) else None
    if not isinstance(out, torch.Tensor) or out.shape != f.shape:
        return "does not return one value per sample"
    expected = 0.5 * ((E - f) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)
    offset = out.double() - expected
    # 1e-6: a constant made in float32 is one constant too
    if not torch.isfinite(offset).all() or ((offset - offset[0]).abs() > 1e-6 * (1 + expected.abs())).any():
        return "is not the Gaussian negative log-likelihood up to a constant"
    if not _nll_gradient_is_right(answer.get("grad"), f, log_sigma, E):
        return ("has the right values but not the right gradient (nothing inside it may be detached), so the "
                "regressor does not train")
    return ""


def _gaussian_nll(remote, seed):
    """Assignment 4's 'Gaussian NLL' task: :func:`tutorial_pkg.grading.check_gaussian_nll` on the student's function,
    its gradients taken in the child."""
    from . import grading
    return grading.check_gaussian_nll(remote, seed=seed, remote=True)


def _a4_regressor_as_the_notebook_trains_it() -> dict:
    """The weights that cell a4-07 trains with a right gaussian_nll (the reference, whose gradients every passing
    answer shares), from its fixed seeds, on one thread as in the child: about ten seconds, once per grading run."""
    import math
    import torch
    from . import nets, training
    _, data, _, schedule = _muller_brown()
    nll = lambda f, log_sigma, E: 0.5 * ((E - f) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)  # noqa
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            regressor = nets.NoiseAwareRegressor(2, hidden=64, depth=2, spread="x_t",
                                                 energy_shift=data.E_train.mean().item(),
                                                 energy_scale=data.E_train.std().item())
            model = training.train_predictor(regressor, data.standardize(data.x_train).float(), data.E_train.float(),
                                             schedule, steps=2000, batch_size=256, lr=2e-3, ema_decay=0.995, seed=0,
                                             progress=False, loss=nll).model
    finally:
        torch.set_num_threads(threads)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _guided_report(get, seed, call=None):
    """Assignment 4: the student's gaussian_nll checked first (:func:`_nll_up_to_a_constant`: one that is right up
    to its constant in values, with the right gradients, which loses half of the 'Gaussian NLL' task, trains the same
    regressor, so these numbers are the
    student's own); then the student's regressor rebuilt here from its weights as the regenerated cell a4-07 trained
    them in the child (copied at the end of that cell, before any later answer cell runs: :data:`_SNAPSHOTS`); every
    block of the guided samples of each regressor (the student's and the shipped sigma(x_t, t) one) regenerated here
    from the student's seed; the errors and the paired difference recomputed (cell a4-02: 5 blocks). When it passes,
    the comparisons that the written answer quotes (:func:`_a4_numbers`) are computed from those blocks and the
    unguided model's blocks on the same noise, sampled here, and so is the calibration and sharpness table of cell
    a4-12 (:func:`_a4_calibration`), from that regressor and the two shipped ones."""
    from . import grading, nets
    if call is not None:
        wrong = _nll_up_to_a_constant(call("gaussian_nll"), seed)
        if wrong:  # "the submission" opens the message: zero points, not the half of a named mistake
            return grading.CheckResult("guided samples", "fail", (
                f"the submission's regressor is trained through your `gaussian_nll` (task 'Gaussian NLL'), which "
                f"{wrong}: a value task is graded only on numbers that your own functions make (a `gaussian_nll` "
                "that is off by a constant alone, with the right gradients, trains the same regressor, and passes here)"))
    torch, data, eps_model, schedule = _muller_brown()
    values = get("samples", "report", "seed", "__regressor_as_trained__")
    regressor = nets.NoiseAwareRegressor(2, hidden=64, depth=2, spread="x_t", energy_shift=data.E_train.mean().item(),
                                         energy_scale=data.E_train.std().item())
    regressor.load_state_dict(values["__regressor_as_trained__"])
    if "a4 regressor" not in _CACHE:
        _CACHE["a4 regressor"] = _a4_regressor_as_the_notebook_trains_it()
    reference = _CACHE["a4 regressor"]
    trained = values["__regressor_as_trained__"]
    if set(trained) != set(reference) or any(not torch.allclose(torch.as_tensor(trained[k]).double(), v.double(),
                                                                rtol=0, atol=1e-5) for k, v in reference.items()):
        return grading.CheckResult("guided samples", "fail", (
            "the submission: the regressor that cell a4-07 trained in your run is not the one that the notebook's "
            "training makes (the grader trained it again, from the same seeds, with the reference negative "
            "log-likelihood): an answer cell must not change how the notebook trains it"))
    if "a4 shipped" not in _CACHE:
        from . import zoo
        with _quiet():
            _CACHE["a4 shipped"] = zoo.load("muller_brown_regressor", device="cpu", progress=False).model
            _CACHE["a4 shipped t"] = zoo.load("muller_brown_regressor_t", device="cpu", progress=False).model
    result = grading.check_guided_report(values["report"], values["samples"], data=data, eps_model=eps_model,
                                         regressor=regressor.eval(), schedule=schedule, target=-60.0, scale=1.0,
                                         seed=values["seed"], shipped=_CACHE["a4 shipped"], blocks=5)

    def numbers():  # cell a4-16: the conditional model without guidance, on the same noise as the blocks
        from . import metrics, sampling
        blocks, n = 5, 300
        with torch.no_grad():
            z = sampling.ddim_sample(eps_model, (blocks * n, 2), schedule, num_steps=50,
                                     cond=torch.full((blocks * n,), -60.0), device="cpu",
                                     generator=torch.Generator("cpu").manual_seed(values["seed"]))
        none = [metrics.energy_error(data.system.energy(xb), -60.0).median
                for xb in data.unstandardize(z.cpu().double()).reshape(blocks, n, 2)]
        return (_a4_numbers(values["report"], none) + "\n\n" + _a4_calibration(
            regressor, {"shipped sigma(x_t, t)": _CACHE["a4 shipped"], "shipped sigma(t)": _CACHE["a4 shipped t"]}))
    return _with_numbers(result, numbers)


def _guided_table(get, seed, call=None, own=False):
    """Assignment 1: the table of cell a1-16 checked against the samples regenerated here from the student's seed
    (cell a1-14's setting) with the package's guided DDIM sampler, and the student's guided_ddim run again in the
    child at one scale (chosen by the hidden seed), which must give that row; the feedback shows the recomputed
    table, to hold beside the one that the submission stored (printed with it). With ``own`` (a function it uses
    has a named mistake), the samples are regenerated instead with the student's guided_ddim, run again in the child
    at every scale: the table passes if it is what the student's own functions give."""
    from . import grading
    values = get("table", "seed")
    if own:
        if not isinstance(values["seed"], int) or isinstance(values["seed"], bool) or call is None:
            return grading.check_guided_table(values["table"], seed=values["seed"])
        return grading.check_guided_table(values["table"], seed=values["seed"],
                                          reference=_own_guided_table(call("guided_ddim"), values["seed"]))
    result = grading.check_guided_table(values["table"], seed=values["seed"])
    if not isinstance(values["seed"], int) or isinstance(values["seed"], bool):
        return result
    if result.status == "pass" and call is not None:
        result = grading._tie_guided_table(call("guided_ddim"), values["table"], seed=values["seed"], pick=seed)
    rows = [f"{'s':>4s} {'mean':>14s} {'target mean':>11s} {'std':>15s} {'target std':>10s}"] + [
        f"{s:4.1f} {r['mean']:6.3f} ± {r['se_mean']:.4f} {r['target_mean']:11.3f} {r['std']:6.3f} ± {r['se_std']:.4f} "
        f"{r['target_std']:10.3f}" for s, r in grading._guided_table_reference(values["seed"]).items()]
    return result._replace(message=f"{result.message}\n\nThe table recomputed by the grader from seed "
                                   f"{values['seed']} (the package's sampler):\n\n```text\n" + "\n".join(rows) + "\n```")


def _own_guided_table(fn, seed: int) -> dict:
    """Assignment 1's table as the student's ``guided_ddim`` (``fn``, run in the child) makes it from ``seed`` at
    every scale of cell a1-14, in the form of :func:`grading._guided_table_reference`."""
    import math
    import torch
    from . import analytic, grading, schedules
    setting = grading._A1_SETTING
    schedule, n, tau, y = schedules.linear_schedule(1000), setting["n"], setting["tau"], setting["y"]
    prior = analytic.GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    predictor = analytic.LinearGaussianLikelihood(prior, [1.0], tau=tau).predictor(schedule)
    table = {}
    for s in setting["scales"]:
        x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        out = fn(prior.eps_model(schedule), predictor, torch.full((n,), y, dtype=torch.float64), x_T, s, schedule,
                 setting["num_steps"])
        if not isinstance(out, torch.Tensor) or out.shape != (n, 1):
            raise ValueError(f"your guided_ddim, run again at s = {s:g}, did not return {n} samples")
        x = out.detach().double()[:, 0]
        precision, sd = 1.0 + s / tau ** 2, x.std().item()
        table[s] = {"mean": x.mean().item(), "std": sd, "se_mean": sd / math.sqrt(n),
                    "se_std": sd / math.sqrt(2 * (n - 1)), "target_mean": s * y / tau ** 2 / precision,
                    "target_std": precision ** -0.5}
    return table


def _dropout_experiment(get, seed, call=None, own=False):
    """Assignment 2 (cells a2-14, a2-15): every network the student's run trained (its weights, from the child's
    ``trained``) sampled here from the student's seed with the package's CFG sampler, against the exact mixture;
    each network's error and wrong-mode share recomputed. Then one network at one scale (chosen by the hidden seed)
    is sampled again in the child with the student's cfg_ddim_sampler, which must give its reported error, and
    ``_A2_RETRAINED`` networks of each rate (``_a2_retrained``) are trained again with the student's
    drop_condition, which must give their stored weights. When all of it passes, the table and the comparisons that
    the written answer quotes (:func:`_a2_numbers`) are computed from those errors and shares."""
    import torch
    from . import analytic, grading, nets, schedules
    values = get("results", "seed", state_dict="trained")
    trained: dict = {}  # the ModuleDict's state dict, "p20_seed0.embed.0.weight", split into one per network
    for key, tensor in values["trained"].items():
        net, _, parameter = key.partition(".")
        trained.setdefault(net, {})[parameter] = tensor
    mixture = analytic.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[0.36]], [[0.36]]])
    schedule, rates, gammas, n_nets, n, num_steps = schedules.linear_schedule(1000), (0.02, 0.5), (1.0, 3.0), \
        _A2_NETS, 500, 25
    make_net = lambda: nets.MLPEpsModel(1, hidden=32, depth=1, cond="label", num_classes=2, null="learned")  # noqa
    sample = None
    if own and call is not None:  # a function it uses has a named mistake: every network sampled with the student's
        sampler = call("cfg_ddim_sampler")  # own sampler (which calls the student's cfg), in the child

        def sample(model, x_T, gamma):
            out = sampler(model, x_T, torch.ones(n, dtype=torch.long), gamma, schedule, num_steps)
            if not isinstance(out, torch.Tensor) or out.shape != (n, 1):
                raise ValueError(f"your cfg_ddim_sampler, run again, did not return {n} samples")
            return out.detach().double()
    result = grading.check_dropout_experiment(
        values["results"], trained=trained, seed=values["seed"], mixture=mixture, schedule=schedule, rates=rates,
        gammas=gammas, n_nets=n_nets, n=n, num_steps=num_steps, make_net=make_net, sample=sample)
    if result.status != "pass" or call is None:
        return result
    if own:
        trainings = grading._tie_dropout_training(call("drop_condition"), trained, seed=values["seed"],
                                                  picks=_a2_retrained(seed, rates, n_nets), mixture=mixture,
                                                  schedule=schedule, rates=rates, n_nets=n_nets, make_net=make_net,
                                                  exact=False)
        if trainings.status != "pass":
            return trainings
        result = grading._report(
            "dropout experiment", "pass", "every network's error and wrong-mode share repeat from your seed with your "
            f"own cfg_ddim_sampler (the grader ran it again on every network), and {trainings.message}")
    cond = torch.ones(n, dtype=torch.long)
    if not own:
        # the tie: one network, one scale, sampled again with the student's sampler in the child
        i, p, g = seed % n_nets, rates[(seed // n_nets) % 2], gammas[(seed // (2 * n_nets)) % 2]
        net = make_net()
        net.load_state_dict(trained[f"p{round(p * 1000)}_seed{values['seed'] + i}"])
        x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(values["seed"] + i), dtype=torch.float64)
        with torch.no_grad():
            exact = grading.sampling.ddim_sample(grading.guidance.cfg_model(mixture.eps_model(schedule), g), (n, 1), schedule,
                                                 num_steps=num_steps, x_T=x_T, cond=cond, dtype=torch.float64).double()
        out, failed = grading._call("dropout experiment", call("cfg_ddim_sampler"), net.eval(), x_T, cond, g, schedule,
                                    num_steps, refused=dict(grading._CFG_REFUSED))
        if failed:
            return grading._tie_failed("dropout experiment", f"your cfg_ddim_sampler, run again: {failed.message}")
        error = (out.detach().double() - exact).abs().mean().item() if isinstance(out, torch.Tensor) and \
            out.shape == exact.shape else float("nan")
        if not abs(float(torch.as_tensor(values["results"][p][g]["error"], dtype=torch.float64).reshape(-1)[i]) - error) <= 1e-4 + 1e-3 * error:
            return grading._tie_failed("dropout experiment", f"results[{p}][{g}]['error'][{i}] is not what your "
                                       "cfg_ddim_sampler gives on that network (the grader ran it again): the results "
                                       "must come from a run of your sampler")
        # the networks: _A2_RETRAINED of each rate (drawn from the hidden seed, for each rate on its own) trained again,
        # with the student's dropout
        trainings = grading._tie_dropout_training(call("drop_condition"), trained, seed=values["seed"],
                                                  picks=_a2_retrained(seed, rates, n_nets), mixture=mixture,
                                                  schedule=schedule, rates=rates, n_nets=n_nets, make_net=make_net)
        if trainings.status != "pass":
            return trainings
        result = grading._report("dropout experiment", "pass", "every network's error and wrong-mode share repeat from "
                                 f"your seed, your cfg_ddim_sampler, run again on network {i} at p = {p:g}, gamma = {g:g}, "
                                 f"gives its error, and {trainings.message}")

    def numbers():  # cell a2-16, with the exact sampler's shares of cell a2-15 sampled here
        exact_wrong = {gamma: [] for gamma in gammas}
        for k in range(n_nets):
            noise = torch.randn(n, 1, generator=torch.Generator().manual_seed(values["seed"] + k), dtype=torch.float64)
            for gamma in gammas:
                with torch.no_grad():
                    x = grading.sampling.ddim_sample(
                        grading.guidance.cfg_model(mixture.eps_model(schedule), gamma), (n, 1), schedule,
                        num_steps=num_steps, x_T=noise, cond=cond, dtype=torch.float64)
                exact_wrong[gamma].append((x < 0).double().mean().item())
        return _a2_numbers(values["results"], exact_wrong, rates, gammas, n_nets)
    return _with_numbers(result, numbers)


def _a2_retrained(seed: int, rates, n_nets: int) -> dict:
    """The networks of assignment 2 that the grader trains again: ``_A2_RETRAINED`` distinct indices of the
    ``n_nets`` for each rate, drawn from the hidden ``seed`` independently for each rate. With m of 16 retrained per
    rate, k networks trained otherwise and stored under one rate's keys are caught with probability
    1 - C(16 - k, m) / C(16, m): 1/4 for k = 1, m = 4."""
    draw = random.Random(seed)
    return {p: sorted(draw.sample(range(n_nets), min(_A2_RETRAINED, n_nets))) for p in rates}


# -- the numbers that the written answers are graded on, computed here from the values that a value task re-ran -----
# The comparisons that the written answers quote (A2's table and paired verdicts of cell a2-16, A3's paired
# differences of cell a3-18 with the distinct counts of a3-07 and the basin shares of a3-09, A4's comparisons of
# cell a4-16; A5's statistics of cells a5-08 and a5-11; A6's table of cell a6-15; A7's reference, shares and gaps)
# are printed by cells that the grader does not take from a submission, so their stored outputs are the student's to
# edit. When the value task passed, its numbers are those of the student's seed, and the grader computes these
# comparisons itself from them, with the package's stats, and prints them beside the written answer. A5's table of
# cell a5-22, which the grader does not run, is made with the student's own window_moments (_FUNCTION_NUMBERS).
NUMBERS_HEADING = ("Numbers the grader computed from your samples, re-run from your seed (grade the written statements "
                   "on these)")
# written task -> the value task whose re-run values its numbers come from
_WRITTEN_NUMBERS = {"Think! what the dropout rate buys": "dropout experiment",
                    "Think! error against distance": "energy report",
                    "Think! calibration and guidance": "guided samples",
                    "Think! bias against K": "bias experiment",
                    "Think! MMPS against the exact posterior": "MMPS samples and report",
                    "Think! what limits the comparison": "core-state gaps",
                    "Think! guidance by window": "window moments"}
# a function task whose written answer quotes a table that the grader makes with the student's own function, called
# again on the notebook's setting (exact numbers: no samples, no seed), with the cell that prints that table
_FUNCTION_NUMBERS = {"window moments": "a5-22"}


class _WithNumbers(NamedTuple):
    """A value task's result with the text of the numbers that its written answer is graded on."""

    result: object
    numbers: str


def _with_numbers(result, numbers: Callable[[], str], confirmed: bool = False):
    """``result`` with ``numbers()`` attached when it passed, or when the check ``confirmed`` that the samples (or
    networks) repeat from the student's seed although the student's intervals or functions are wrong (a failure of
    ``numbers`` is said in their place)."""
    if getattr(result, "status", None) != "pass" and not confirmed:
        return result
    try:
        text = numbers()
    except Exception as err:  # noqa: BLE001 - the numbers are a courtesy to the marker: say why they are missing
        text = f"(the grader could not compute them: {type(err).__name__}: {err})"
    return _WithNumbers(result, text)


def _floats(values) -> list[float]:
    import torch
    return [float(v) for v in torch.as_tensor(values, dtype=torch.float64).reshape(-1)]


def _a2_numbers(results: dict, exact_wrong: dict, rates, gammas, n_nets: int) -> str:
    """Cell a2-16's table of means and its paired comparisons, from the re-run networks' errors and shares."""
    from . import stats
    low, high = rates
    results = {p: {g: {k: _floats(results[p][g][k]) for k in ("error", "wrong")} for g in gammas} for p in rates}
    lines = [f"mean over {n_nets} networks ± SE   {'error':>15s} {'share at x < 0':>17s}"]
    for g in gammas:
        lines.append(f"exact sampler, gamma = {g:.0f}: {'':>15s} {str(stats.replicates(exact_wrong[g])):>17s}")
        for p in rates:
            row = results[p][g]
            lines.append(f"p_uncond = {p:g}, gamma = {g:.0f}: {str(stats.replicates(row['error'])):>15s} "
                         f"{str(stats.replicates(row['wrong'])):>17s}")
    for g in gammas:  # the rates, on the same seeds
        for key in ("error", "wrong"):
            both = results[low][g][key] + results[high][g][key]
            if min(both) == max(both):
                lines.append(f"gamma = {g:.0f}, {key}: {both[0]:g} for every network at both rates (degenerate: no "
                             "comparison)")
                continue
            lines.append(f"gamma = {g:.0f}, {key}: " + str(stats.paired(
                results[low][g][key], results[high][g][key], names=(f"p = {low:g}", f"p = {high:g}"))))
    for p in rates:  # the scales, on the same networks
        for key in ("error", "wrong"):
            lines.append(f"p_uncond = {p:g}, {key}: " + str(stats.paired(
                results[p][gammas[1]][key], results[p][gammas[0]][key],
                names=(f"gamma {gammas[1]:g}", f"gamma {gammas[0]:g}"))))
    for p in rates:  # each network against the exact sampler, from the same x_T, at gamma = 1
        lines.append(f"gamma = {gammas[0]:g}, wrong: " + str(stats.paired(
            results[p][gammas[0]]["wrong"], _floats(exact_wrong[gammas[0]]),
            names=(f"p = {p:g} networks", "exact sampler"))))
    return "\n".join(lines)


def _a3_numbers(report: dict, samples: dict, data, reference, floors: list, target: float = -40.0) -> str:
    """Cell a3-18's paired differences between scales, cell a3-04's noise floor with its interval and gamma = 1
    against it (with the package's stats, which print the verdicts), cell a3-07's distinct samples, largest pile and
    the piles that hold each gamma = 5 block's middle samples, and cell a3-09's basin shares, from the re-run blocks
    and samples."""
    import torch
    from . import metrics, stats
    scales = sorted(report)
    pairs = list(zip(scales[1:], scales[:-1])) + ([(scales[-1], 1.0)] if scales[-2] != 1.0 else [])
    name = lambda g: f"gamma = {g:g}"  # noqa: E731
    lines = []
    for key in ("energy_error", "sliced_w1"):
        blocks = {g: _floats(report[g][key]["blocks"]) for g in scales}
        for a, b in pairs:
            lines.append(f"{key:>12s}: {stats.paired(blocks[a], blocks[b], names=(name(a), name(b)))}")
    floor = stats.replicates(floors)  # cell a3-04's noise floor, whose interval the sliced W1's are held against
    lines.append(f"noise floor of the sliced W1 (cell a3-04, {len(floors)} exact draws): {floor}, 95 % interval "
                 f"{floor.interval()}")
    lines.append(str(stats.unpaired(_floats(report[1.0]["sliced_w1"]["blocks"]), floors,
                                    names=("sliced W1 at gamma = 1", "floor"))))
    x_all = {g: torch.as_tensor(samples[g]).double() for g in scales}
    lines += ["", f"distinct samples (rounded to 3 decimals) of the {x_all[scales[0]].reshape(-1, 2).shape[0]} per "
              "scale, and the largest pile's share"]
    for g, x in x_all.items():
        _, counts = torch.unique(x.reshape(-1, 2).round(decimals=3), dim=0, return_counts=True)
        lines.append(f"gamma = {g:g}: {len(counts):5d} distinct, largest pile "
                     f"{counts.max().item() / counts.sum().item():.3f}")
    g5 = scales[-1]  # the largest scale: the piles that hold each block's two middle samples by |E - E*|
    n = x_all[g5].shape[1]
    lines.append(f"gamma = {g5:g}, each block: its median |E - E*|, and the piles (identical samples, to 3 decimals) "
                 f"that hold its two middle samples by |E - E*|, of its {n}")
    for k, xb in enumerate(x_all[g5]):
        err = (data.system.energy(xb) - target).abs()
        _, pile, counts = torch.unique(xb.round(decimals=3), dim=0, return_inverse=True, return_counts=True)
        middle = err.argsort()[[(n - 1) // 2, n // 2]]
        sizes = [counts[pile[i]].item() for i in middle]
        lines.append(f"  block {k}: median {metrics.energy_error(data.system.energy(xb), target).median:.3f}, "
                     f"middle samples on piles of {sizes[0]} and {sizes[1]}")
    mb = data.system
    p_ref = metrics.basin_occupancy(mb.basin(reference), 3)
    shares = {"reference": (p_ref, (p_ref * (1 - p_ref) / len(reference)).sqrt())}
    for g, x in x_all.items():
        per_block = torch.stack([metrics.basin_occupancy(mb.basin(b), 3) for b in x])
        shares[name(g)] = (per_block.mean(0), per_block.std(0) / len(per_block) ** 0.5)
    lines += ["", "basin shares ± standard error (over the blocks; binomial for the reference's independent draws)",
              f"{'':>12s} " + " ".join(f"{'basin ' + str(k):>13s}" for k in range(3))]
    for label, (s, se) in shares.items():
        lines.append(f"{label:>12s} " + " ".join(f"{v:6.2f} ± {e:.3f}" for v, e in zip(s.tolist(), se.tolist())))
    return "\n".join(lines)


def _a4_calibration(regressor, shipped: dict) -> str:
    """Cell a4-12's calibration and sharpness table, computed here with the reference z-scores, coverage, standard
    error of a standard deviation (delta method) and Gaussian NLL, from the student's regressor as the notebook trains
    it (tied to the grader's own training) and the two shipped ones, on the notebook's test draw and noise: the table
    is the same for every submission whose regressor passed that tie."""
    import math
    import torch
    from . import metrics, stats
    _, data, _, schedule = _muller_brown()
    regressors = {"yours": regressor, **shipped}
    x_test, E_test = data.standardize(data.x_test).float(), data.E_test.float()
    noise = torch.randn(x_test.shape, generator=torch.Generator().manual_seed(2))

    def std_and_se(v):
        v = v.double()
        s, m4 = v.std().item(), (v - v.mean()).pow(4).mean().item()
        return s, math.sqrt(max(m4 - s ** 4, 0.0) / v.numel()) / (2 * s)

    def nll(f, log_sigma, E):
        return 0.5 * ((E - f) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)

    lines = ["the calibration and sharpness table of cell a4-12:",
             f"{'regressor':>22s} {'t':>4s} {'std z ± se':>12s} {'cov 0.95 ± se':>15s} {'mean sigma':>10s} "
             f"{'NLL':>5s}   std z ± standard error, flat to steep"]
    per_point = {}
    with torch.no_grad():
        for name, model in regressors.items():
            for t in (10, 50, 200, 700):
                x_t = schedule.q_sample(x_test, t, noise)
                f, log_sigma = model(x_t, t)
                f, log_sigma = f.double(), log_sigma.double()
                z = (E_test.double() - f) / log_sigma.exp()
                losses = nll(f, log_sigma, E_test.double())
                per_point[name, t] = (log_sigma.exp(), losses)
                x0 = data.unstandardize(x_t.double() / schedule.alpha_bars[t].sqrt())
                steep = data.system.gradient(x0).norm(dim=1)
                groups = torch.bucketize(steep, torch.quantile(steep, torch.tensor([0.25, 0.5, 0.75],
                                                                                   dtype=steep.dtype)))
                s, se = std_and_se(z)
                cov = metrics.coverage(z, 0.95)
                cells = " ".join(f"{a:4.2f} ± {b:.2f}" for a, b in (std_and_se(z[groups == k]) for k in range(4)))
                lines.append(f"{name:>22s} {t:4d} {f'{s:.3f} ± {se:.3f}':>14s} {cov:7.3f} ± "
                             f"{math.sqrt(cov * (1 - cov) / len(z)):.3f} {log_sigma.exp().mean().item():10.1f} "
                             f"{losses.mean().item():5.2f}   {cells}")
    lines.append("sharpness, yours - shipped sigma(x_t, t), paired on the test points (one training of each):")
    for t in (10, 50, 200, 700):
        pair = [stats.paired(per_point["yours", t][j], per_point["shipped sigma(x_t, t)", t][j],
                             names=("yours", "shipped")) for j in (0, 1)]
        lines.append(f"t = {t:3d}: sigma {pair[0]}")
        lines.append(f"         NLL {pair[1]}")
    return "\n".join(lines)


def _a4_numbers(report: dict, none: list) -> str:
    """Cell a4-16's comparisons (both regressors against no guidance on the same noise, yours - shipped paired and
    unpaired, the correlation of the two regressors' block errors), from the re-run blocks."""
    import torch
    from . import stats
    yours, shipped = _floats(report["yours"]), _floats(report["shipped"])
    blocks = len(yours)
    lines = [f"{key:>11s}: median |E - E*| {stats.replicates(v)} over {blocks} blocks"
             for key, v in (("yours", yours), ("shipped", shipped), ("no guidance", none))]
    lines.append(str(stats.paired(yours, shipped, names=("yours", "shipped"))))
    lines.append(str(stats.unpaired(yours, shipped, names=("yours", "shipped"))))
    r = torch.corrcoef(torch.tensor([yours, shipped], dtype=torch.float64))[0, 1].item()
    lines.append(f"correlation of the two regressors' block errors over the {blocks} blocks: {r:+.2f}")
    for key, v in (("yours", yours), ("shipped", shipped)):
        lines.append(str(stats.paired(v, none, names=(key, "no guidance"))))
    return "\n".join(lines)


# the value tasks whose check can regenerate the numbers with the student's own functions in the child (``own=True``):
# when the only failures among the tasks they use are named mistakes, they earn half their points on those numbers
_OWN_RERUN = {_guided_table, _dropout_experiment}
# a used task's named mistake that leaves that value task's numbers as right as the model's, by how its check's message
# opens: a dropout right in distribution that consumes the generator exactly as the notebook's draw does (u > 1 -
# p_uncond) trains other networks with no choice among them, so the experiment on those networks, made again with the
# student's own functions, earns its full points (the dropout's own task has paid the slip); a draw of another length,
# whose length chooses among sets of networks, leaves it at half
# (the prefix is grading._SAME_DRAW, written out here: this module imports the package's modules only where it uses them)
_PAID_ONCE = {"condition dropout": "your dropout is right in distribution and consumes the generator"}
_OWN_IN_FULL = "full: numbers of your own functions, after a slip that leaves them right"
# grading._OTHER_LENGTH, written out: the training tie found a draw of another length in training (half, not full)
_OTHER_LENGTH = "drew more or fewer numbers from the generator in training than the notebook's draw"
_A2_NETS = 16  # networks per rate in cell a2-14
_A2_RETRAINED = 4  # networks per rate that the grader trains again: each takes about 2 s on one core, with the
# student's drop_condition called in the child at every step


ASSIGNMENTS: dict[str, list[Task]] = {
    "a1_classifier_guidance": [
        Task("guided eps", "a1-04", 1, "function", _function("check_classifier_guided_eps")),
        Task("shifted mean", "a1-07", 1, "function", _function("check_shifted_mean")),
        Task("gradient of log p", "a1-10", 3, "function", _function("check_grad_log_likelihood")),
        Task("guided DDIM sampler", "a1-15", 5, "function", _function("check_guided_ddim"),
             allowed=("sampling.ddim_timesteps",)),
        Task("guided samples table", "a1-16", 2, "values", _guided_table,
             uses=("guided eps", "gradient of log p", "guided DDIM sampler")),
        Task("Think! tilted target", "a1-19", 4, "written"),
    ],
    "a2_classifier_free_guidance": [
        Task("condition dropout", "a2-04", 1, "function", _function("check_drop_condition")),
        Task("CFG combination", "a2-07", 2, "function", _function("check_cfg")),
        Task("CFG DDIM sampler", "a2-10", 5, "function", _function("check_cfg_sampler"),
             allowed=("sampling.ddim_timesteps",)),
        Task("dropout experiment", "a2-15", 5, "values", _dropout_experiment,
             uses=("condition dropout", "CFG combination", "CFG DDIM sampler")),
        Task("Think! what the dropout rate buys", "a2-18", 5, "written"),
    ],
    "a3_energy_target": [
        Task("energy report", "a3-06", 2, "values", _energy_report,
             allowed=("sampling.ddim_sample", "guidance.cfg_model", "metrics.energy_error",
                      "metrics.sliced_wasserstein", "stats.t_quantile")),
        Task("paired difference", "a3-16", 2, "function", _function("check_paired_difference"),
             allowed=("stats.t_quantile",)),
        Task("Think! error against distance", "a3-11", 6, "written"),
    ],
    "a4_calibrated_regressor": [
        Task("Gaussian NLL", "a4-04", 1, "function", _gaussian_nll),  # values and gradients
        Task("z-scores", "a4-09", 1, "function", _function("check_z_scores")),
        Task("coverage", "a4-09", 1, "function", _function("check_coverage")),
        Task("std and its SE", "a4-21", 2, "function", _function("check_std_and_se")),
        Task("guided samples", "a4-14", 2, "values", _guided_report,
             allowed=("guidance.classifier_guided_model", "sampling.ddim_sample", "metrics.energy_error",
                      "stats.t_quantile")),  # gaussian_nll's tie is in _guided_report: a constant may be off
        Task("Think! calibration and guidance", "a4-18", 6, "written"),
    ],
}
# Points: a formula that the notebook prints, or the wiring of the package calls that a
# cell names, earns fewer points than a task that the student derives (the guided sampler, MMPS, the window
# moments, the band share's error, NeRF, the SMC loop).
# the student's function that each function task calls
_FUNCTION = {"guided eps": "classifier_guided_eps", "shifted mean": "shifted_mean",
             "gradient of log p": "grad_log_likelihood", "guided DDIM sampler": "guided_ddim", "condition dropout": "drop_condition",
             "CFG combination": "cfg", "CFG DDIM sampler": "cfg_ddim_sampler", "Gaussian NLL": "gaussian_nll",
             "z-scores": "z_scores", "coverage": "coverage", "paired difference": "paired_difference",
             "std and its SE": "std_and_se"}
# regenerated cells that no task needs (figures, tables), not run in the child
_SKIP = {"a3-09", "a3-14", "a4-12", "a4-16"}
# lines run in the child at the end of a regenerated cell: a copy of what it trained, under a double-underscore name
# that no screened answer cell may name, so that a later answer cell that retrains or replaces the network (or
# changes its weights in place) does not change what the grader takes as the template's training
_SNAPSHOTS = {"a4-07": "\n__regressor_as_trained__ = None if regressor is None else "
                       "{k: v.detach().clone() for k, v in regressor.state_dict().items()}\n",
              # A7's reference, as the student's band_share made it, before the answer cell a7-17 can change it
              "a7-12": "\n__reference_as_made__ = __import__('copy').deepcopy(reference)\n"}
# the regenerated cells that fix the seed of an assignment's value task: the seed as they set it, which an answer
# cell may not change (a value task's numbers must come from that seed, not from one chosen for its verdicts)
_SEED_CELLS = {"a1_classifier_guidance": "a1-14", "a2_classifier_free_guidance": "a2-14", "a3_energy_target": "a3-02",
               "a4_calibrated_regressor": "a4-02", "a5_guidance_through_x0": "a5-07",
               "a6_sampling_the_guided_target": "a6-13", "a7_alanine_dipeptide": "a7-12"}
for _cell in _SEED_CELLS.values():
    _SNAPSHOTS[_cell] = _SNAPSHOTS.get(_cell, "") + "\n__seed_as_set__ = seed\n"


class SeedChanged(Exception):
    """An answer cell changed the ``seed`` that a regenerated cell of the notebook sets."""


def _seed_guarded(get: Callable, name: str) -> Callable:
    """``get`` for a value task of assignment ``name``: where a regenerated cell sets the seed (:data:`_SEED_CELLS`),
    ``seed`` must still be that value when the grader reads it."""
    if name not in _SEED_CELLS:
        return get

    def guarded(*names, state_dict=None):
        if "seed" not in names:
            return get(*names, state_dict=state_dict)
        values = get(*names, "__seed_as_set__", state_dict=state_dict)
        as_set = values.pop("__seed_as_set__")
        if values["seed"] != as_set:
            raise SeedChanged(f"an answer cell set seed = {values['seed']!r}, but cell {_SEED_CELLS[name]} sets "
                              f"seed = {as_set!r}: the numbers must come from the notebook's seed")
        return values
    return guarded

# -- assignment 5: guidance through x0_hat (MMPS) and the guidance interval
def _mmps_report(get, seed, call=None):
    """Assignment 5: the notebook's Gaussian prior and observation (cell a5-07); the MMPS samples regenerated here
    from the student's seed with the package's MMPS, the exact posterior and the statistics recomputed; then 16 of
    the samples (chosen by the hidden seed) made again with the student's mmps_eps, called in the child at every
    step."""
    import torch
    from . import analytic, grading, schedules
    prior = analytic.GaussianMixture([1.0], [[0.5, -0.3]], [[[1.0, 0.6], [0.6, 0.8]]])
    values = get("samples", "report", "seed")
    setting = dict(prior=prior, a=torch.tensor([1.5, -0.7], dtype=torch.float64), sigma_y=0.3, y=1.2,
                   schedule=schedules.linear_schedule(1000), seed=values["seed"])
    result = grading.check_mmps_report(values["report"], values["samples"], n=2000, **setting)  # cell a5-07's n
    if result.status != "pass" or call is None:
        return result
    result = grading._tie_mmps_samples(call("mmps_eps"), values["samples"], pick=seed, **setting)
    return _with_numbers(result, lambda: _a5_mmps_numbers(values["samples"], **setting))


def _a5_mmps_numbers(samples, *, prior, a, sigma_y, y, schedule, seed) -> str:
    """What cells a5-08 and a5-11 print, from the re-run samples: the exact posterior of a.x0, the samples' moments
    and z-statistics, the largest distance of the samples from those of the exact posterior eps from the same seed,
    and the exact output moments of the 50-step DDIM and 1000-step DDPM samplers on that eps (affine recursion)."""
    import math
    import torch
    from . import analytic, sampling, tweedie
    a = a.double()
    s_u, m_u = (a @ prior.covs[0] @ a).item(), (a @ prior.means[0]).item()  # the prior of u = a.x0: N(m_u, s_u)
    e_mean, e_var = m_u + s_u / (s_u + sigma_y ** 2) * (y - m_u), s_u * sigma_y ** 2 / (s_u + sigma_y ** 2)
    samples = torch.as_tensor(samples, dtype=torch.float64)
    n, u = samples.shape[0], samples @ a
    mean, var = u.mean().item(), u.var().item()
    exact_eps = analytic.LinearGaussianLikelihood(prior, a, 0.0, sigma_y).eps_model(schedule)
    cond = torch.full((n,), y, dtype=torch.float64)
    same = sampling.ddim_sample(exact_eps, tuple(samples.shape), schedule, num_steps=50, cond=cond,
                                dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    gap = (samples - same).abs().max().item()
    lines = [f"exact posterior of a.x0: mean {e_mean:.4f}, variance {e_var:.4f}",
             f"MMPS samples (n = {n}):  mean {mean:.4f}, variance {var:.4f}",
             f"z_mean = {(mean - e_mean) / math.sqrt(var / n):.1f}, z_var = "
             f"{(var / e_var - 1) / math.sqrt(2 / (n - 1)):.1f}, var / exact_var = {var / e_var:.2f}",
             f"largest |your MMPS sample - exact-eps sample| from the same seed: "
             f"{'< 1e-8' if gap < 1e-8 else f'{gap:.2g}'}"]
    for label, kw in (("DDIM, 50 steps", dict(sampler="ddim", num_steps=50)),
                      ("DDPM, 1000 steps, large variance", dict(sampler="ddpm", variance="large"))):
        M, V = tweedie.affine_sampler_moments(exact_eps, schedule, 2, cond=torch.tensor(y, dtype=torch.float64), **kw)
        lines.append(f"{label:>32s}, exact eps: output mean - exact mean {(a @ M).item() - e_mean:+.4f}, "
                     f"output var / exact var {(a @ V @ a).item() / e_var:.3f}")
    return "\n".join(lines)


def _window_moments(remote, seed):
    """Assignment 5: the window moments graded on hidden inputs; when the function passes, or makes a named slip
    (half), the student's window_moments is called again on the notebook's setting (cell a5-22, which the grader does
    not run) for the table that its written answer is graded on (:func:`_a5_window_numbers`)."""
    from . import grading
    result = grading.check_window_moments(remote, seed=seed)
    slip = result.status == "fail" and not result.message.startswith(_GENERIC)
    return _with_numbers(result, lambda: _a5_window_numbers(remote), confirmed=slip)


def _a5_window_numbers(window_moments) -> str:
    """Cell a5-22's table, from the student's ``window_moments`` on its setting: gamma = 3 in each of ten windows of
    100 package steps, always, in chapter 8's two intervals, and no guidance (gamma = 1), each with its KL divergence
    to the tilted target N(1.2, 0.1); then the sum of the windows' mean shifts against the shift of CFG always."""
    import math
    import torch
    from . import schedules
    schedule = schedules.linear_schedule(1000)
    mu_c, var_c, mu_u, var_u, gamma = 1.0, 0.25, 0.0, 1.0, 3.0
    precision = gamma / var_c + (1 - gamma) / var_u                     # eq. (tilted-target)
    m_tilt, v_tilt = (gamma * mu_c / var_c + (1 - gamma) * mu_u / var_u) / precision, 1 / precision
    windows = [(100 * k, 100 * k + 99) for k in range(10)]
    named = {"always (0-999)": (0, 999), "middle 100-600": (100, 600), "0-600": (0, 600)}

    def rows(scale, spans):
        out = torch.as_tensor(window_moments(mu_c, var_c, mu_u, var_u, scale, list(spans), schedule),
                              dtype=torch.float64)
        if out.shape != (len(spans), 2):
            raise ValueError(f"window_moments returned shape {tuple(out.shape)}, not ({len(spans)}, 2)")
        return [(M.item(), V.item()) for M, V in out]

    by_window = rows(gamma, windows)
    by_name = dict(zip(named, rows(gamma, named.values())))
    by_name["none (gamma = 1)"] = rows(1.0, [(0, 999)])[0]
    kl = lambda M, V: 0.5 * (V / v_tilt + (M - m_tilt) ** 2 / v_tilt - 1 + math.log(v_tilt / V))
    lines = [f"tilted target: mean {m_tilt:.2f}, variance {v_tilt:.2f}",
             f"{'gamma = 3 in':>18s} {'mean':>7s} {'variance':>9s} {'KL to tilted':>13s}"]
    for label, (M, V) in [*((f"steps {lo}-{hi}", r) for (lo, hi), r in zip(windows, by_window)), *by_name.items()]:
        lines.append(f"{label:>18s} {M:7.3f} {V:9.4f} {kl(M, V) if V > 0 else float('nan'):13.3f}")
    none = by_name["none (gamma = 1)"][0]
    lines.append(f"sum of the ten windows' mean shifts {sum(M - none for M, _ in by_window):.2f}; the shift of CFG at "
                 f"every step {by_name['always (0-999)'][0] - none:.2f}")
    return "\n".join(lines)


ASSIGNMENTS["a5_guidance_through_x0"] = [
    Task("MMPS eps", "a5-04", 6, "function", _function("check_mmps_eps")),
    Task("exact posterior", "a5-26", 2, "function", _function("check_exact_posterior")),
    Task("MMPS samples and report", "a5-08", 2, "values", _mmps_report, allowed=("sampling.ddim_sample",),
         uses=("MMPS eps", "exact posterior")),
    Task("Think! MMPS against the exact posterior", "a5-13", 3, "written"),
    Task("interval rule", "a5-16", 2, "function", _function("check_interval_cfg")),
    Task("window moments", "a5-19", 5, "function", _window_moments,
         allowed=("analytic.GaussianMixture", "sampling.ddim_timesteps")),
    Task("Think! guidance by window", "a5-24", 4, "written"),
]
_FUNCTION.update({"MMPS eps": "mmps_eps", "exact posterior": "exact_posterior", "interval rule": "interval_cfg_eps", "window moments": "window_moments"})
_SKIP |= {"a5-11", "a5-22"}

# -- assignment 7: alanine dipeptide ---------------------------------------------------------------------------
def _alanine():
    """Chapter 11's setting, loaded once per grading run: the molecule, the MD data, the features, the shipped
    energy-conditioned model and the schedule, and the notebook's target (the median held-out energy)."""
    if "ala" not in _CACHE:
        import torch
        from . import schedules, zoo
        with _quiet():
            system, md, features = zoo.alanine_data()
            loaded = zoo.load("alanine_cfg", device="cpu", progress=False)
        _CACHE["ala"] = (system, features, loaded.model, schedules.linear_schedule(zoo.SCHEDULE_T),
                         torch.quantile(md.E_test, 0.5).item())
    return _CACHE["ala"]


def _core_gaps(get, seed, call=None):
    """Assignment 7: the gaps of cell a7-17 recomputed from the batch regenerated here from the student's seed and
    from the student's own reference of the MD band (cell a7-12, delta = 5 kJ/mol, made with the student's
    band_share). The arithmetic is graded on the student's own reference whenever their band_share earns points
    (it passes, or it makes one named mistake, which the band-share task already marks down): one slip is not
    paid twice. The reference is the one the regenerated cell a7-12 made (copied at the end of that cell, before the
    answer cell a7-17 runs: :data:`_SNAPSHOTS`), so an entry changed in the answer cell is not taken. The tie then
    runs their band_share again on each of the four cores, which must give that core's entry."""
    from . import grading
    from .systems.alanine_dipeptide import BASINS
    import torch
    system, features, eps_model, schedule, target = _alanine()
    if "ala labels" not in _CACHE:
        from . import zoo
        with _quiet():
            _, md, _ = zoo.alanine_data()
        _CACHE["ala labels"] = system.basin(*system.torsions(md.x_test.double()))[0]
        _CACHE["ala band"] = (md.E_test - target).abs() < 5.0
    name = "core-state gaps"
    if call is not None:  # the band-share task's verdict, as the grader gives it: pass, or half for a named mistake
        with _quiet():
            share = grading.check_band_share(call("band_share"), seed=seed)
        if share.status != "pass" and not (share.status == "fail" and not share.message.startswith(_GENERIC)):
            return grading.CheckResult(name, "depends on the band share", "these numbers must come from your `band_share` (task 'band "
                                       "share'), which earned no points: the gaps are graded on a reference made by "
                                       "your own function once that function is right or makes one named mistake")
    own_slip = None  # the named slip of the student's gap_verdict, which its own task marks down: not paid twice
    if call is not None:  # the gaps come from the student's gap_verdict: it passes, or it makes one named mistake
        with _quiet():
            verdict = grading.check_gap_verdict(call("gap_verdict"), seed=seed)
        if verdict.status != "pass":
            if verdict.status != "fail" or verdict.message.startswith(_GENERIC):
                return grading.CheckResult(name, "depends on the gap verdict", "these numbers must come from your "
                                           "`gap_verdict` (task 'gap verdict'), which earned no points")
            own_slip = verdict.message
    values = get("gaps", "seed", "report", "__reference_as_made__")
    values["reference"] = values.pop("__reference_as_made__")
    if not isinstance(values["seed"], int) or isinstance(values["seed"], bool):
        return grading.CheckResult(name, "fail", f"seed must be the int of your batch, got {values['seed']!r}")
    f = grading.sampling.ddim_sample(eps_model, (64, features.dim), schedule, num_steps=10,
                                     cond=torch.full((64,), target), generator=torch.Generator().manual_seed(values["seed"]))
    report = grading._core_shares(features.decode(f.double()), system, 64)
    for core, entry in report.items():  # a report whose se divides by n - 1 (accepted there) carries into the gaps
        theirs = (values["report"] or {}).get(core) if isinstance(values["report"], dict) else None
        p = entry["share"]
        if isinstance(theirs, dict) and isinstance(theirs.get("se"), (int, float)) and \
                abs(theirs["se"] - (p * (1 - p) / 63) ** 0.5) < 1e-9:
            entry["se"] = theirs["se"]
    theirs = values["reference"] if isinstance(values["reference"], dict) else {}
    reference = {}
    for core in BASINS:  # the student's own reference, which the tie below confirms their band_share makes
        entry = theirs.get(core)
        pair = [grading._as_number(v) for v in entry] if isinstance(entry, (tuple, list)) and len(entry) == 2 else [None]
        if None in pair or not 0 <= pair[0] <= 1 or not pair[1] > 0:
            return grading.CheckResult(name, "fail", f"reference[{core!r}] must be the pair (share, se) that your "
                                                     f"band_share gives, with 0 <= share <= 1 and se > 0")
        reference[core] = tuple(pair)
    if own_slip is None:
        result = grading.check_core_gaps(values["gaps"], report=report, reference=reference, n=64)
        if result.status != "pass" or call is None:
            return result
    # the ties: the student's gap_verdict on each core's numbers, which must give that core's entry of gaps, and
    # their band_share run again on each core (milliseconds each), which must give their reference
    for k, core in enumerate(BASINS):
        result = grading._tie_gap_verdict(call("gap_verdict"), values["gaps"], report=report, reference=reference,
                                          n=64, name_of_core=core)
        if result.status != "pass":
            return result
        result = grading._tie_band_share(call("band_share"), values["reference"], core=_CACHE["ala labels"] == k,
                                         band=_CACHE["ala band"], name_of_core=core)
        if result.status != "pass":
            return result
    tied = ("your gap_verdict, run again on each core's numbers, gives your gaps, and your band_share, run again on "
            "each of the four cores, gives your reference")
    if own_slip is not None:
        tied += (" (graded on your own gap_verdict, whose slip its own task marks down: "
                 f"{own_slip.split(' [inputs of seed')[0]})")
    return _with_numbers(grading._report(name, "pass", tied + "\n" + grading._gap_table(report, reference, n=64)),
                         lambda: _a7_numbers(report, reference, int(_CACHE["ala band"].sum())))


def _a7_numbers(report: dict, reference: dict, n_band: int) -> str:
    """What the written answer of A7 quotes: the student's reference as cell a7-12 made it (share, se, the effective
    size p (1 - p) / se^2 and the se of independent frames), the batch's shares regenerated from the seed, and the
    gaps with their verdicts under each rule (:func:`grading._gap_table`)."""
    import math
    from . import grading
    lines = [f"your reference (your band_share, cell a7-12; {n_band} frames in the band):",
             f"{'core':>8s} {'share':>6s} {'se':>6s} {'N_eff':>6s} {'se if independent':>17s}"]
    for core, (p, se) in reference.items():
        n_eff = f"{p * (1 - p) / se ** 2:6.0f}" if se > 0 else f"{'nan':>6s}"
        lines.append(f"{core:>8s} {p:6.3f} {se:6.3f} {n_eff} {math.sqrt(p * (1 - p) / n_band):17.3f}")
    lines.append("the batch of 64 molecules, regenerated from your seed:")
    for core, entry in report.items():
        lines.append(f"{core:>8s}: {round(entry['share'] * 64):2d} of 64 molecules, share {entry['share']:.3f} ± "
                     f"{entry['se']:.3f}")
    return "\n".join(lines) + "\n" + grading._gap_table(report, reference, n=64)


def _core_report(get, seed, call=None):
    """Assignment 7: the batch regenerated here from the student's seed (cell a7-14's setting: n = 64, 10 DDIM
    steps), its core-state shares and their standard errors recomputed."""
    from . import grading
    system, features, eps_model, schedule, target = _alanine()
    values = get("samples", "report", "seed")
    return grading.check_core_report(values["report"], values["samples"], system=system, features=features,
                                     eps_model=eps_model, schedule=schedule, target=target, seed=values["seed"],
                                     n=64, num_steps=10)


ASSIGNMENTS["a7_alanine_dipeptide"] = [
    Task("NeRF placement", "a7-04", 4, "function", _function("check_nerf_place")),
    Task("band share", "a7-09", 5, "function", _function("check_band_share"),
         allowed=("stats.statistical_inefficiency",)),
    Task("core-state report", "a7-14", 1, "values", _core_report, allowed=("sampling.ddim_sample",)),
    Task("gap verdict", "a7-23", 2, "function", _function("check_gap_verdict"), allowed=("stats.t_quantile",)),
    Task("core-state gaps", "a7-17", 1, "values", _core_gaps, allowed=("stats.t_quantile",)),  # its band share
    # and gap verdict: in _core_gaps, which grades the gaps on the student's own reference and gap_verdict (each
    # passing or making one named mistake, which its own task marks down)
    Task("Think! what limits the comparison", "a7-19", 6, "written"),
]
_FUNCTION.update({"NeRF placement": "place", "band share": "band_share", "gap verdict": "gap_verdict"})
_SKIP |= {"a7-07"}  # a7-12 builds the reference that a7-17's gaps need

# -- assignment 6: sampling the guided target (chapter 10) ------------------------------------------------------
ASSIGNMENTS["a6_sampling_the_guided_target"] = [
    Task("weight increment", "a6-04", 3, "function", _function("check_log_weight_increment")),
    Task("systematic resampling", "a6-07", 3, "function", _function("check_systematic_resample")),
    Task("SMC sampler", "a6-10", 4, "function", _function("check_smc_sampler"), allowed=("sampling.ddim_coefficients",)),
    Task("Think! bias against K", "a6-17", 6, "written"),
]
_FUNCTION.update({"weight increment": "log_weight_increment", "systematic resampling": "systematic_resample",
                  "SMC sampler": "smc_sampler"})

def _smc_estimates(get, seed, call=None):
    """Assignment 6: the experiment of cell a6-15 repeated here from the student's seed with the package's reference
    loop (its setting: gamma = 3, the pair N(1, 0.5^2) / N(0, 1), 250 trailing DDIM steps); then the student's
    smc_sampler run again in the child for one K (chosen by the hidden seed), which must give that K's estimates."""
    from . import grading, sampling, schedules
    schedule = schedules.linear_schedule(1000)
    timesteps = [t for t, _ in sampling.sampler_steps(schedule, sampler="ddim", num_steps=250, spacing="trailing")]
    values = get("estimates", "seed")
    setting = dict(seed=values["seed"], particle_counts={4: 400, 16: 200, 64: 100, 256: 320}, timesteps=timesteps,
                   schedule=schedule, gamma=3.0)
    result = grading.check_smc_estimates(values["estimates"], **setting)
    if result.status != "pass" or call is None:
        return result
    result = grading._tie_smc_estimates(call("smc_sampler"), values["estimates"], pick=seed, **setting)
    return _with_numbers(result, lambda: _a6_numbers(values["estimates"]))


def _a6_numbers(estimates: dict) -> str:
    """Cell a6-15's table (each K's bias of the weighted mean and variance against the exact target, N(1.2, 0.1),
    and the final ESS / K, over the systems), with Var(system mean) = SE^2 x G and the variance's bias with it added
    back per system (question 4), from the re-run estimates."""
    import torch
    from . import stats
    m_g, v_g = 1.2, 0.1  # the target of the notebook's pair at gamma = 3 (cell a6-13, eq. target-gaussian)
    lines = [f"{'K':>5s} {'systems':>7s} {'bias of the mean':>17s} {'bias of the variance':>21s} {'final ESS / K':>14s} "
             f"{'Var(system mean)':>16s} {'variance bias + Var(system mean)':>33s}"]
    for K, e in estimates.items():
        mean, var = (torch.as_tensor(e[k], dtype=torch.float64) for k in ("mean", "variance"))
        G = len(mean)
        fixed = stats.replicates(var + (mean - mean.mean()) ** 2 * G / (G - 1) - v_g)
        lines.append(f"{K:5d} {G:7d} {str(stats.replicates(mean - m_g)):>17s} {str(stats.replicates(var - v_g)):>21s} "
                     f"{str(stats.replicates(torch.as_tensor(e['ess'], dtype=torch.float64))):>14s} "
                     f"{mean.var().item():16.4f} {str(fixed) + f' [{fixed.low:+.3f}, {fixed.high:+.3f}]':>33s}")
    lines.append("plain CFG's exact bias (cell a6-13): mean +0.1136, variance -0.0413; the K -> infinity floor: mean "
                 "+0.0180, variance -0.0139")
    return "\n".join(lines)

ASSIGNMENTS["a6_sampling_the_guided_target"].insert(3, Task("bias experiment", "a6-15", 2, "values", _smc_estimates,
                                                            allowed=("stats.replicates",),
                                                            uses=("weight increment", "systematic resampling",
                                                                  "SMC sampler")))


# -- the references that stand in for an earlier answer whose task failed (P: graded on its own logic) ----------
# Written here, in the grader's trusted code, not taken from the package: the self-checks refuse the package's own
# versions while a student's function runs. Each has the signature of the notebook's answer that it replaces.
def _ref_classifier_guided_eps(eps, grad_log_p, alpha_bar_t, scale):
    return eps - scale * (1 - alpha_bar_t) ** 0.5 * grad_log_p


def _ref_grad_log_likelihood(predictor, x_t, t, y):
    import torch
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(predictor.log_prob(x, t, y).sum(), x)
    return grad


def _ref_cfg(eps_cond, eps_uncond, gamma):
    return gamma * eps_cond + (1 - gamma) * eps_uncond


def _ref_interval_cfg_eps(eps_cond, eps_uncond, t, gamma, t_low, t_high):
    import torch
    t = torch.as_tensor(t)
    inside = ((t >= t_low) & (t <= t_high)).reshape(-1, *([1] * (eps_cond.ndim - 1))) if t.ndim else \
        (t_low <= t <= t_high)
    return torch.where(torch.as_tensor(inside), gamma * eps_cond + (1 - gamma) * eps_uncond, eps_cond)


def _ref_log_weight_increment(eps_cond, eps_uncond, gamma, alpha_bar, alpha_bar_prev):
    beta = 1 - alpha_bar / alpha_bar_prev
    return gamma * (gamma - 1) * beta / (2 * (1 - alpha_bar)) * (eps_cond - eps_uncond).pow(2).sum(1)


def _ref_systematic_resample(log_weights, u):
    import torch
    K = log_weights.shape[-1]
    cdf = torch.softmax(log_weights, dim=-1).cumsum(-1)
    return torch.searchsorted(cdf, (u + torch.arange(K, dtype=log_weights.dtype)) / K).clamp(max=K - 1)


_REFERENCES = {"classifier_guided_eps": _ref_classifier_guided_eps, "grad_log_likelihood": _ref_grad_log_likelihood,
               "cfg": _ref_cfg, "interval_cfg_eps": _ref_interval_cfg_eps,
               "log_weight_increment": _ref_log_weight_increment, "systematic_resample": _ref_systematic_resample}


# -- the static screen of an answer cell --------------------------------------------------------------------
_IMPORTS = {"torch", "math", "numpy", "itertools"}
_NAMES = {"exec", "eval", "compile", "__import__", "globals", "locals", "vars", "getattr", "setattr", "delattr",
          "open", "breakpoint", "input", "exit", "quit", "help", "memoryview", "__builtins__", "__loader__",
          "__spec__"}
# modules that no answer names, even as a bare name (the set-up cell binds importlib, subprocess and sys), unless
# the answer binds the name itself (a local ``signal`` or ``code`` is the student's: the namespace holds no module)
_MODULES = {"sys", "os", "importlib", "inspect", "types", "builtins", "subprocess", "ctypes", "pickle", "marshal",
            "operator", "multiprocessing", "shutil", "socket", "pathlib", "io", "gc", "runpy", "pkgutil", "code",
            "codeop", "imp", "zipimport", "tempfile", "threading", "signal", "pty", "platform", "sysconfig", "site"}
_ATTRIBUTES = {"modules", "sys", "os", "importlib", "inspect", "types", "builtins", "subprocess", "load", "hub",
               "jit", "package", "f_globals", "f_locals", "f_back", "gi_frame", "tb_frame", "getsource",
               "spec_from_file_location", "module_from_spec", "exec_module", "tutorial_pkg", "loader", "func_globals",
               "ctypes", "ctypeslib", "pickle", "marshal", "_C", "ops", "library", "operator", "attrgetter",
               "methodcaller", "getattr_static", "cr_frame", "ag_frame", "gi_code", "f_code", "multiprocessing",
               "reducer", "ForkingPickler", "loads", "bltns", "glob", "re", "enum", "save", "savetxt", "tofile",
               "memmap", "fromfile", "DataSource", "serialization", "distributed", "utils", "testing", "compiler",
               "read_array", "open_memmap", "npyio", "NpzFile", "Unpickler", "dlpack", "fx", "typing",
               "get_type_hints", "f2py", "crackfortran", "string", "Formatter", "get_field"}
# keyword arguments that only serve to unpickle
_KEYWORDS = {"allow_pickle", "weights_only", "pickle_module"}
# a string constant that is a dotted name of the package, of a refused module or of a dunder attribute: a name used as
# code (prose, docstrings included, is the student's own)
_NAME_STRING = re.compile(r"\s*[\w.]*(tutorial_pkg|__\w*__|\b(?:builtins|importlib|sys|os|pickle|marshal)\b)[\w.]*\s*")
# a format field that reads an underscore attribute, "{0.__globals__}" or "{x._module}": str.format and format_map
# look attributes up by the names in their fields, which are no Attribute nodes, so a constant string that holds one
# is refused wherever it is (no task needs it)
_FORMAT_FIELD = re.compile(r"\{[^{}]*\.\s*_")
# ... and str.format / format_map are accepted only on a string constant, whose fields that rule reads (numpy's
# lib.format module is refused by the same word: no answer needs it)
_FORMAT_METHODS = {"format", "format_map"}


def _in_points(points: float) -> str:
    """``1 point``, ``0.5 points``, ``3 points``: a number of points as the feedback writes it."""
    return f"{points:g} point" + ("" if points == 1 else "s")


_PARSE_LOCK = threading.Lock()


def _parse(source: str) -> ast.AST:
    """``ast.parse``, one thread at a time: CPython 3.11 can raise ``SystemError: AST constructor recursion depth
    mismatch`` when two threads build syntax trees at once (python/cpython#106905), and ``grade_folder`` screens
    submissions in threads."""
    with _PARSE_LOCK:
        return ast.parse(source)


def _package_names(template: dict) -> set[str]:
    """The names that the template's cells bind to the package's modules or objects by import, and the names of
    all the package's modules (whether the notebook imports them or not)."""
    modules = {"tutorial_pkg", "tp", "systems"} | {p.stem for p in pathlib.Path(__file__).parent.glob("*.py")
                                                 if not p.stem.startswith("_")}
    names, assigned = set(), set()
    for cell in template["cells"]:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = _parse(_text(cell))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tutorial_pkg":
                names.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.asname or alias.name.split(".")[0] for alias in node.names
                             if alias.name.split(".")[0] == "tutorial_pkg")
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                assigned.add(node.id)  # the notebook's own variables (device = tp.default_device()) stay usable
    return names | (modules - assigned)


def _bound(tree: ast.AST) -> set[str]:
    """The names that a cell binds anywhere: assignments, loop and comprehension targets, arguments, function and
    class names, ``with ... as``, ``except ... as`` and import aliases."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
    return names


def screen(source: str, package_names, allowed=()) -> Optional[str]:
    """Why an answer cell is refused before it runs, or None if it may run.

    ``package_names``: the notebook's names of package modules (``guidance``, ``sampling``, ``tp``, ...), of which
    only the ``module.attribute`` pairs in ``allowed`` may appear."""
    if not isinstance(source, str):
        raise TypeError(f"source must be the text of a cell, got {type(source).__name__}")
    try:
        tree = _parse(source)
    except SyntaxError as err:
        return f"the cell is not valid Python (line {err.lineno}: {err.msg})"
    allowed, package_names = set(allowed), set(package_names)
    # a package name that the answer binds itself (a local ``guidance = eps_c - eps_u``, an argument ``device``) is
    # the student's own: the answer's namespace holds none of the package's modules, so it cannot be one of them
    bound = _bound(tree)
    package_names -= bound
    allowed_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                f"{node.value.id}.{node.attr}" in allowed:
            allowed_nodes.add(id(node.value))
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Match):
            # a class pattern reads attributes by the names in its keywords (case object(__self__=x)), which are no
            # Attribute nodes: no task needs a match statement, so none is accepted
            return f"line {line}: a match statement is not accepted in an answer"
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            # setting or deleting an attribute (torch.optim.AdamW.step = ...) could change the classes and modules
            # that the notebook's own cells and the grader's run use; no task needs it
            return (f"line {line}: setting or deleting an attribute ({ast.unparse(node)}) is not accepted in an "
                    "answer: it could change torch's, numpy's or the package's classes for the cells that follow")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in _IMPORTS or set(alias.name.split(".")) & _ATTRIBUTES:
                    return f"line {line}: import {alias.name} (an answer imports only torch, math, numpy or itertools)"
        elif isinstance(node, ast.ImportFrom):
            parts = set((node.module or "").split(".")) | {a.name for a in node.names}
            if (node.module or "").split(".")[0] not in _IMPORTS or node.level or parts & (_ATTRIBUTES | _NAMES) or \
                    any(part.startswith("_") for part in parts):
                return (f"line {line}: from {node.module} import ... (an answer imports only torch, math, numpy or "
                        "itertools)")
        elif isinstance(node, ast.Name):
            if node.id in _NAMES or (node.id in _MODULES and node.id not in bound) or \
                    (node.id.startswith("__") and node.id.endswith("__")):
                return f"line {line}: {node.id} is not accepted in an answer"
            if node.id in package_names and id(node) not in allowed_nodes:
                uses = ", ".join(sorted(allowed)) or "none of them"
                return (f"line {line}: the package's {node.id} is not accepted in this answer (write it yourself; "
                        f"this task may use {uses})")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in _ATTRIBUTES:
                return f"line {line}: the attribute .{node.attr} is not accepted in an answer"
            if node.attr in _FORMAT_METHODS and not (isinstance(node.value, ast.Constant) and
                                                              isinstance(node.value.value, str)):
                # str.format reads the attributes its fields name: only a string constant, whose fields the rule
                # below reads, may call it (a format string built at run time could name any attribute)
                return (f"line {line}: .{node.attr} is accepted only on a string constant (\"{{0:.3f}}\".format(x)) "
                        "or as an f-string, not on a string built at run time")
        elif isinstance(node, (ast.Global, ast.Nonlocal)) and set(node.names) & package_names:
            return f"line {line}: rebinding the package's names is not accepted in an answer"
        elif isinstance(node, ast.keyword) and node.arg in _KEYWORDS:
            return f"line {getattr(node.value, 'lineno', '?')}: the argument {node.arg}= is not accepted in an answer"
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and \
                _NAME_STRING.fullmatch(node.value if isinstance(node.value, str) else node.value.decode("latin-1")):
            return (f"line {line}: the string {node.value!r} names a module or a double-underscore attribute, which an "
                    "answer may not use as code")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                _FORMAT_FIELD.search(node.value.replace("{{", "").replace("}}", "")):  # {{ and }} are literal braces
            return (f"line {line}: the string {node.value!r} holds a format field that reads an underscore attribute "
                    "(str.format and format_map would look it up), which is not accepted in an answer")
    return None


# -- the child process -----------------------------------------------------------------------------------------
# -- code copied from the package: flagged for the instructor's eye, not refused ----------------------------------
_COPY_MINIMUM = 30  # syntax-tree nodes: a statement smaller than this (a one-line formula) is anybody's


def _size(node: ast.AST) -> int:
    return sum(1 for _ in ast.walk(node))


class _Anonymise(ast.NodeTransformer):
    """Renames every variable, argument and function to v0, v1, ... in order of first use, and drops docstrings,
    import statements, annotations and decorators: what is left is the statement's structure, its attributes and
    its constants. Imports go because an answer cannot hold the package's (``from . import stats``: the notebook's
    view of ``stats`` serves instead), and they go before the names are numbered."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node):
        return ast.copy_location(ast.Name(self._name(node.id), node.ctx), node)

    def visit_arg(self, node):
        return ast.copy_location(ast.arg(self._name(node.arg), None), node)

    def visit_Import(self, node):
        return None

    visit_ImportFrom = visit_Import

    def visit_FunctionDef(self, node):
        # the annotation and decorators go before the names are numbered: a copy without them (a runnable one,
        # where `-> Tensor` would raise NameError) numbers its names as the package's function does
        node.returns, node.decorator_list = None, []
        first = node.body[0] if node.body else None
        if _docstring(first):
            node.body = node.body[1:]
        self.generic_visit(node)
        node.name = self._name(node.name)
        node.body = node.body or [ast.Pass()]
        return node

    def visit_AnnAssign(self, node):
        self.generic_visit(node)
        return ast.copy_location(ast.Assign([node.target], node.value or ast.Constant(None)), node)


def _docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _fingerprints(tree: ast.AST) -> dict[str, ast.stmt]:
    """Each whole function of at least ``_COPY_MINIMUM`` nodes, by the dump of its anonymised syntax tree (its
    docstring and import statements left out). Single statements are not compared on their own: a loop or a call
    that the notebook prescribes (the value tasks' sampling runs), or a textbook formula, matches the package's in
    honest work; :func:`_statements` compares a function's statements as a whole."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _size(node) >= _COPY_MINIMUM:
            out.setdefault(ast.dump(_Anonymise().visit(copy.deepcopy(node)), annotate_fields=False), node)
    return out


_STATEMENT_MINIMUM = 6  # syntax-tree nodes: a smaller statement (`return x`, `a, b = b, a`) is not counted
_SHARE = 0.8  # the share of a function's statements found in one package function that flags it
_STATEMENTS = 4  # ... out of at least this many counted statements


def _statements(function: ast.AST) -> list[str]:
    """The statements of ``function`` (nested blocks and functions included), each anonymised on its own (its names
    numbered afresh), a compound statement by its header only (its body's statements are counted one by one), so that
    an edit to one statement changes one entry; docstrings, imports and statements under ``_STATEMENT_MINIMUM``
    nodes are left out."""
    out = []
    for node in ast.walk(function):
        if (node is function or not isinstance(node, ast.stmt) or _docstring(node)
                or isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef))):
            continue
        node = copy.copy(node)
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            if getattr(node, field, None):
                setattr(node, field, [])
        if _size(node) < _STATEMENT_MINIMUM:
            continue
        out.append(ast.dump(_Anonymise().visit(copy.deepcopy(node)), annotate_fields=False))
    return out


@functools.lru_cache(maxsize=1)
def _package_code() -> tuple[dict[str, str], dict[str, set[str]], dict[str, int]]:
    """The fingerprints of the package's own functions (the self-checks' reference code included), each with its
    name; and, for the statement-level match, each anonymised statement with the package functions that hold it,
    and each function's number of distinct counted statements. The grader's own reference solutions (``_ref_*``)
    are left out: they are written as the chapters teach, so an honest answer matches them statement for statement
    (the instructor's own answer to assignment 6 does)."""
    root = pathlib.Path(__file__).parent
    prints: dict[str, str] = {}
    holders: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        if path.stem == "grader" or path.stem.startswith("_"):
            continue
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        for node in ast.walk(_parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                name = f"tutorial_pkg.{module}.{node.name}"
                for fp in _fingerprints(node):  # the function and the functions nested in it
                    prints.setdefault(fp, name)
                statements = set(_statements(node))
                sizes[name] = max(sizes.get(name, 0), len(statements))
                for statement in statements:
                    holders.setdefault(statement, set()).add(name)
    return prints, holders, sizes


def _package_fingerprints() -> dict[str, str]:
    return _package_code()[0]


def _mostly_in_one(statements: set[str], holders: dict[str, set[str]], sizes: dict[str, int]) -> Optional[str]:
    """Which package function shares at least ``_STATEMENTS`` of ``statements`` (distinct anonymised statements)
    and at least ``_SHARE`` of the statements of one side: of the answer's (a copy with a statement changed) or of
    the package function's (a copy with a statement added); ``"k of its m statements as in NAME"``, or None."""
    counts: dict[str, int] = {}
    for statement in statements:
        for name in holders.get(statement, ()):
            counts[name] = counts.get(name, 0) + 1
    best = None
    for name, n in sorted(counts.items()):
        share = max(n / len(statements), n / max(sizes[name], 1))
        if n >= _STATEMENTS and share >= _SHARE and (best is None or n > best[1]):
            best = (name, n)
    return None if best is None else f"{best[1]} of its {len(statements)} statements as in {best[0]}"


def copied(source: str, given: str = "") -> list[str]:
    """Where an answer cell defines a function that repeats one of the package's (the self-checks' reference code
    included), variable names, docstrings, annotations, decorators and import statements aside: ``line N: as in
    tutorial_pkg.module.function`` for a whole copy, statement for statement; ``line N: k of its m statements as in
    tutorial_pkg.module.function`` where a function shares at least 4 statements with one package function, each
    anonymised on its own, and these are at least 80 % of its own statements or of the package function's (a copy
    with a statement added, dropped or changed). Statements under 6 syntax-tree nodes are not counted.
    ``given`` is the template's cell, whose functions and statements (the code the notebook prescribes) are not
    counted. A rewritten copy (statements reordered into others, split or merged, loops made vector operations) is
    not found. The grader reports these in the gradebook's ``copied`` column for the instructor to read by eye; they
    cost no points, since a standard formula written out by a student can match the package's (the NeRF placement
    of assignment 7, say)."""
    if not isinstance(source, str):
        raise TypeError(f"source must be the text of a cell, got {type(source).__name__}")
    try:
        tree = _parse(source)
    except SyntaxError:
        return []
    package, holders, sizes = _package_code()
    try:
        given_tree = _parse(given)
    except SyntaxError:
        given_tree = ast.Module([], [])
    prescribed = set(_fingerprints(given_tree))
    prescribed_statements = {s for node in ast.walk(given_tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                             for s in _statements(node)}
    found, spans = [], []
    functions = [node for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _size(node) >= _COPY_MINIMUM]
    whole = _fingerprints(tree)
    for node in sorted(functions, key=lambda node: (node.lineno, -_size(node))):
        if any(first <= node.lineno <= last for first, last in spans):
            continue
        fp = next((fp for fp, n in whole.items() if n is node), None)
        if fp is not None and fp in package and fp not in prescribed:
            where = f"as in {package[fp]}"
        else:
            where = _mostly_in_one(set(_statements(node)) - prescribed_statements, holders, sizes)
            if where is None:
                continue
        spans.append((node.lineno, node.end_lineno or node.lineno))
        found.append(f"line {node.lineno}: {where}")
    return found


# What every child imports before it runs a cell: imported once, by the server that forks the children
# (:func:`_children`), so that a child starts in milliseconds instead of the seconds these imports take. The server
# imports them and runs nothing else: no student code, no computation (so no thread pool is forked).
_PRELOAD = ["torch", "torch.optim", "torch.optim.lr_scheduler", "torch.func", "torch._dynamo", "torch.distributions",
            "torch.special", "torch.fft", "torch.autograd.functional", "numpy", "matplotlib", "tutorial_pkg.grading",
            "tutorial_pkg.grader"]


_SERVER = threading.Lock()
_SERVER_STARTED = []


def _children():
    """The multiprocessing context whose fork server starts the submissions' processes. The server is started once,
    with the environment of a child (:data:`_CHILD_ENV`: CPU only, matplotlib's Agg backend), imports
    :data:`_PRELOAD` and forks one fresh process per submission from that state (:func:`_forked_child`)."""
    import multiprocessing
    import multiprocessing.forkserver
    context = multiprocessing.get_context("forkserver")
    with _SERVER:
        if not _SERVER_STARTED:
            context.set_forkserver_preload(_PRELOAD)
            saved = {k: os.environ.get(k) for k in _CHILD_ENV}
            os.environ.update(_CHILD_ENV)
            try:
                multiprocessing.forkserver.ensure_running()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            _SERVER_STARTED.append(True)
    return context


class _Child:
    """A fresh process, forked from a server that imported torch and the package and ran nothing else, that runs
    the screened cells and answers calls; its standard output is discarded."""

    def __init__(self, cells: list[tuple[str, str]], timeout: float):
        self.timeout = timeout
        self.folder = tempfile.TemporaryDirectory(prefix="grade-")
        context = _children()
        self.conn, theirs = context.Pipe()
        from . import grader as this  # the function by its module's name, also when this module runs as __main__
        self.proc = context.Process(target=this._forked_child, args=(theirs, self.folder.name), daemon=True)
        with _SERVER:  # one start at a time: the stand-in for __main__ is process-wide
            # multiprocessing would run the caller's main script (or module) again in the child, as __mp_main__,
            # before the child's function: an instructor's grading script, a kernel's launcher. A bare __main__
            # while the child starts tells it there is none to run
            main = sys.modules.get("__main__")
            sys.modules["__main__"] = types.ModuleType("__main__")
            try:
                self.proc.start()
            finally:
                sys.modules["__main__"] = main
        theirs.close()
        reply = self._ask({"cells": cells}, timeout=timeout * max(1, len(cells)))
        self.errors = reply.get("errors", {})
        # what each answer cell printed and drew when it ran here (the child is the student's: strings only, capped)
        self.printed = {str(k): str(v)[-_PRINTED:] for k, v in dict(reply.get("printed", {})).items()}
        self.drawn = {}
        for k, images in dict(reply.get("drawn", {})).items():
            try:
                self.drawn[str(k)] = [base64.b64decode(str(image), validate=True) for image in list(images)[:4]]
            except (ValueError, TypeError):
                self.drawn[str(k)] = []

    def _ask(self, message: dict, timeout: Optional[float] = None) -> dict:
        if not self.proc.is_alive():
            raise RuntimeError("the submission's process has ended")
        self.conn.send_bytes(json.dumps(message).encode())
        ready = self.conn.poll(timeout or self.timeout)
        try:
            line = self.conn.recv_bytes() if ready else b""
        except (EOFError, OSError):
            line = b""
        if not line:
            self.close(wait=0)
            raise TimeoutError("the submission's code did not answer in time" if not ready else
                               "the submission's process ended")
        return json.loads(line)  # JSON only: nothing the student's process sends is unpickled here

    def _result(self, reply: dict):
        import torch
        if "error" in reply:
            if reply["error"] == "NotImplementedError":
                raise NotImplementedError(reply["message"])
            raise type(reply["error"], (Exception,), {})(reply["message"])
        try:  # tensors, numbers and containers only: nothing the student's process pickled can run here
            return torch.load(reply["path"], weights_only=True)
        except Exception as err:
            raise TypeError(f"returned something that is not tensors, numbers, strings or dicts/lists of them "
                            f"({type(err).__name__})") from None

    def call(self, name: str, args: tuple, bound=(), grad: bool = False):
        """The student's function ``name`` on ``args``; ``bound`` names earlier answer functions that the grader's
        references (:data:`_REFERENCES`) replace for this call. With ``grad``, ``{"value": ..., "grad": ...}``: the
        value and the gradients of its sum with respect to the tensor arguments that require grad, taken in the child
        (``None`` where the value carries no gradient), since a tensor crosses the pipe without its graph."""
        import torch
        path = os.path.join(self.folder.name, "args.pt")
        torch.save(tuple(("generator", a.get_state()) if isinstance(a, torch.Generator) else ("value", a)
                         for a in args), path)
        reply = self._ask({"call": name, "path": path, "refused": _refusal_specs(), "bind": list(bound), "grad": grad})
        value = self._result(reply)
        # the generators advanced as the student's function left them in the child, as a call in one process would
        generators = [a for a in args if isinstance(a, torch.Generator)]
        if generators and "generators" in reply:
            try:
                states = torch.load(reply["generators"], weights_only=True)
                for generator, state in zip(generators, states, strict=True):
                    generator.set_state(state)
            except Exception as err:
                raise TypeError(f"left its generator in a state that is not a generator's ({type(err).__name__})") \
                    from None
        return value

    def get(self, names: tuple, state_dict: Optional[str] = None) -> dict:
        return self._result(self._ask({"get": list(names), "state_dict": state_dict}))

    def close(self, wait: float = 5.0):
        """End the child: the closed pipe ends its loop, and it exits as a process should (releasing what it
        holds: tqdm's lock is a semaphore that the grader's resource tracker would otherwise report as leaked);
        killed if it has not ended within ``wait`` seconds."""
        self.conn.close()
        self.proc.join(wait)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.folder.cleanup()


# the environment of the fork server, and so of every child (the child adds its own folder: _forked_child)
_CHILD_ENV = {"MPLBACKEND": "Agg", "TUTORIAL_PKG_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""}


def _from_package(value) -> bool:
    """Whether a value is one of the package's modules, functions or classes (not an object made with them)."""
    name = value.__name__ if isinstance(value, types.ModuleType) else (
        getattr(value, "__module__", "") if isinstance(value, (types.FunctionType, type)) else "")
    return isinstance(name, str) and name.split(".")[0] == "tutorial_pkg"


# the modules an answer cell finds in its namespace (the notebook's other modules, importlib, subprocess and sys of
# the set-up cell among them, are left out)
_ANSWER_MODULES = {"torch", "math", "numpy", "matplotlib.pyplot", "itertools"}
# the submodules that an answer reaches through them; every other attribute of theirs that is a module is left out of
# the answer's view, since from one module a walk through the modules that it imports reaches any other (numpy's
# f2py holds the standard library's string module, whose Formatter reads any attribute by a name built at run time)
_SUBMODULES = {"torch": ("nn", "nn.functional", "nn.init", "linalg", "distributions", "special", "fft", "autograd",
                         "autograd.functional", "func", "optim", "optim.lr_scheduler", "random"),
               "numpy": ("linalg", "random", "fft")}
_VIEWS: dict[str, types.ModuleType] = {}


def _view(module: types.ModuleType, allowed=None, prefix: str = "") -> types.ModuleType:
    """What an answer sees of ``module``: a stand-in module with its public attributes, those that are modules left
    out unless named in :data:`_SUBMODULES` (and then their views in turn). Built from the module's own dict, so that
    nothing is imported for it."""
    root = module.__name__.split(".")[0]
    allowed = _SUBMODULES.get(root, ()) if allowed is None else allowed
    view = types.ModuleType(module.__name__, getattr(module, "__doc__", None))
    for name, value in list(vars(module).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, types.ModuleType):
            path = prefix + name
            if path not in allowed or value.__name__ != f"{module.__name__}.{name}":
                continue
            value = _view(value, allowed, path + ".")
        setattr(view, name, value)
    return view


def _import_submodules() -> None:
    """Import the submodules that the answers' views hold (:data:`_SUBMODULES`; numpy loads its random on first use),
    before the lock-down: a view is built from what is imported and imports nothing."""
    import importlib
    for root, subs in _SUBMODULES.items():
        for sub in subs:
            importlib.import_module(f"{root}.{sub}")


def _view_of(name: str) -> types.ModuleType:
    if name not in _VIEWS:
        _VIEWS[name] = _view(sys.modules[name])
    return _VIEWS[name]


def _answer_import(name, globals=None, locals=None, fromlist=(), level=0):
    """An answer's ``import``: the modules the screen lets it import (:data:`_IMPORTS`), as the views that its
    namespace holds (:func:`_view`), never the modules themselves. A library's C code that imports a module while an
    answer's frame is current (numpy's ``var`` imports ``numpy._core._methods`` on first use) comes here too: it
    passes a list as ``fromlist`` and reads the module from ``sys.modules``, ignoring what it gets back (CPython's
    ``PyImport_Import``), so it gets the real import; an import statement passes None or a tuple."""
    if isinstance(fromlist, list):
        import builtins
        return builtins.__import__(name, globals, locals, fromlist, level)
    parts = name.split(".")
    if level or parts[0] not in _IMPORTS or parts[0] not in sys.modules:
        raise ImportError(f"grading: an answer may import only {', '.join(sorted(_IMPORTS))}, not {name!r}")
    top = target = _view_of(parts[0])
    for part in parts[1:]:
        target = getattr(target, part, None) if not part.startswith("_") else None
        if not isinstance(target, types.ModuleType):
            raise ImportError(f"grading: an answer may not import {name!r}")
    return target if fromlist else top


def _run_answer(source: str, cell_id: str, allowed, namespace: dict) -> None:
    """Run an answer cell in a namespace of its own: the notebook's variables and objects, but no module beyond torch,
    math, numpy and pyplot, and none of the package's modules, functions or classes, except the calls its task
    names (``module.attr``), each behind a stand-in module that holds only those. The functions the cell defines
    keep that namespace as their globals, so that nothing they reach by name, by a frame or by a string solves the
    task for them; what the cell binds is copied back into the notebook's namespace for the regenerated cells after
    it."""
    import builtins
    own = {k: v for k, v in namespace.items() if not _from_package(v) and
           not (isinstance(v, types.ModuleType) and v.__name__ not in _ANSWER_MODULES)}
    views = {k: _view_of(v.__name__) for k, v in own.items() if isinstance(v, types.ModuleType)}
    own.update(views)
    own["__builtins__"] = {**vars(builtins), "__import__": _answer_import}
    stand_ins: dict[str, types.SimpleNamespace] = {}
    for call in allowed:
        module, attr = call.split(".", 1)
        if module in namespace and hasattr(namespace[module], attr):
            stand_ins.setdefault(module, types.SimpleNamespace())
            setattr(stand_ins[module], attr, getattr(namespace[module], attr))
    own.update(stand_ins)
    exec(compile(source, f"{_ANSWER_FILE}{cell_id}>", "exec"), own)
    for key, value in own.items():
        if key != "__builtins__" and not (key in stand_ins and value is stand_ins[key]) and \
                not (key in views and value is views[key]) and (key not in namespace or namespace[key] is not value):
            namespace[key] = value


# the audit events that an answer cell may not raise in the child (besides writing outside its folder)
_REFUSED_EVENTS = ("subprocess.", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
                   "os.kill", "os.killpg", "pty.spawn", "socket.", "ctypes.", "shutil.", "webbrowser.", "urllib.",
                   "http.", "ftplib.", "smtplib.", "os.chdir", "os.putenv", "os.unsetenv", "sys.setprofile",
                   "sys.settrace", "sys.remote_exec")
# events that load code or objects by name (unpickling finds any module's attribute by its name; marshal and new code
# objects make functions from bytes; swapping a function's __code__): refused while an answer's code is on the stack,
# and everywhere once the answers start unless the grader itself asks (loading its arguments, installing the
# self-checks' refusals) with no answer's code on the stack
_LOADING_EVENTS = ("pickle.find_class", "marshal.load", "marshal.loads", "code.__new__", "function.__new__")
# events that compile or run code from a string or a code object (eval, exec, compile: typing's get_type_hints
# evaluates any string it is handed in any namespace): refused while an answer's code is on the stack, unless the
# import system runs a module's code for a package function's lazy import
_CODE_EVENTS = ("compile", "exec")
_ANSWER_FILE = "<answer "  # the file name of an answer cell's code: "<answer a2-07>"
_TRUSTED = threading.local()  # .on: the grader's own loading in the child


def _answer_on_stack(_file=_ANSWER_FILE, _getframe=sys._getframe) -> bool:
    frame = _getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith(_file):
            return True
        frame = frame.f_back
    return False


def _answer_runs_code(_file=_ANSWER_FILE, _getframe=sys._getframe) -> bool:
    """Whether an answer's code is on the stack of a compile or exec event with no module import in between (the
    import system runs a module's code with exec: a package function's lazy import, which an answer cannot reach
    for a module of its own choosing, since the screen refuses imports and importlib)."""
    frame = _getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith("<frozen importlib._bootstrap"):
            return False
        if name.startswith(_file):
            return True
        frame = frame.f_back
    return False


def _importing(_getframe=sys._getframe) -> bool:
    """Whether the event's caller is the import system loading a module's cached bytecode: a package function that
    imports a module on first use (``stats`` imports pymbar, torch its optimiser's helpers) does so after the
    lock-down, and a fresh installation has compiled every module, so the loader unmarshals it. An answer cannot
    reach the loader itself: ``importlib``, ``__import__`` and imports of other modules are refused by the screen."""
    caller = _getframe(2)
    return caller.f_code.co_filename == "<frozen importlib._bootstrap_external>" and \
        caller.f_code.co_name == "_compile_bytecode"


@contextlib.contextmanager
def _trusted():
    """The grader's own unpickling and code swaps in the child, after the lock-down: permitted unless an answer's
    code is on the stack."""
    _TRUSTED.on = True
    try:
        yield
    finally:
        _TRUSTED.on = False


# events that change the file system: each path they name must lie in the child's own folder
_PATH_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.chmod": (0,),
                "os.chown": (0,), "os.link": (0, 1), "os.symlink": (0, 1), "os.truncate": (0,), "os.utime": (0,),
                "os.chflags": (0,), "os.lchown": (0,), "os.mkfifo": (0,), "os.mknod": (0,), "os.setxattr": (0,),
                "os.removexattr": (0,)}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _lock_down(folder: str) -> None:
    """From here on, this process refuses (PermissionError, through a Python audit hook, PEP 578, which cannot be
    removed once added) to write or change files outside ``folder``, to start processes, to open sockets, to load
    code with ctypes, to trace frames, to unpickle (``pickle.find_class``: numpy's ``read_array`` with
    ``allow_pickle``, ``torch.load`` without ``weights_only``, ...), to load marshalled code, to make code objects
    and to swap a function's code, and (while an answer runs) to compile or run code from strings, except for the grader's own loading with no answer's code on the stack. Installed before the first answer cell runs. An audit hook is a tripwire,
    not a sandbox: CPython's documentation says it cannot stop code that is determined to get round it, which is
    why the README asks for submissions one does not trust to be graded in a throw-away container."""
    root = os.path.realpath(folder)
    # everything the hook reads, bound here: an answer that reached this module could rebind its globals, not these
    answer_runs_code, answer_on_stack, importing = _answer_runs_code, _answer_on_stack, _importing
    trusted, current_thread, main = _TRUSTED, threading.current_thread, threading.main_thread()
    write_flags, path_events, refused_events = _WRITE_FLAGS, dict(_PATH_EVENTS), tuple(_REFUSED_EVENTS)
    code_events, loading_events = tuple(_CODE_EVENTS), tuple(_LOADING_EVENTS)
    realpath, fsdecode, devnull, sep = os.path.realpath, os.fsdecode, os.devnull, os.sep

    def inside(path) -> bool:
        if isinstance(path, int):  # a file descriptor: the process's own (the protocol's pipes, /dev/null)
            return True
        real = realpath(fsdecode(path))
        return real == devnull or real.startswith(root + sep)

    def in_main() -> bool:
        # another thread's stack does not show the answer that started it: none may compile, run or swap code
        return current_thread() is main

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (isinstance(flags, int) and flags & write_flags)
            if path is not None and writing and not inside(path):
                raise PermissionError(f"grading: writing {fsdecode(path)!r} is not allowed in an answer")
        elif event in path_events:
            for k in path_events[event]:
                if k < len(args) and args[k] is not None and not inside(args[k]):
                    raise PermissionError(f"grading: {event} on {fsdecode(args[k])!r} is not allowed in an answer")
        elif event.startswith(refused_events):
            raise PermissionError(f"grading: {event} is not allowed in an answer")
        elif event in code_events:
            if answer_runs_code() or not in_main():
                raise PermissionError(f"grading: {event} is not allowed in an answer (no code compiled or run from "
                                      f"strings: eval, exec, compile, or a function that evaluates its arguments)")
        elif event in loading_events or (event == "object.__setattr__" and len(args) > 1 and args[1] == "__code__"):
            if event.startswith("marshal.") and importing():
                return  # the import system reading a module's cached bytecode (a package function's lazy import)
            if not getattr(trusted, "on", False) or not in_main() or answer_on_stack():
                what = f"{event} {args[:2]!r}" if event == "pickle.find_class" else event
                raise PermissionError(f"grading: {what} is not allowed in an answer (no unpickling, marshal or "
                                      f"new code objects)")

    sys.addaudithook(hook)


def _resolve(importlib, module: str, qualname: str):
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _refusal_specs() -> list:
    """The refusals of the self-check that is calling (``grading._refusing``), by module and qualified name."""
    import inspect
    from . import grading
    specs = []
    for refused in grading._REFUSING:
        for fn, message in refused.items():
            inner = inspect.unwrap(fn)
            if "<locals>" not in inner.__qualname__:
                specs.append((inner.__module__, inner.__qualname__, message))
    return specs


def _warm_up_training() -> None:
    """One step of an optimiser and a learning-rate schedule on a throw-away parameter, before the lock-down: torch
    imports some of its modules on first use (an optimiser's first parameter group imports ``torch._dynamo``), and an
    import after the lock-down loads marshalled code, which the audit hook refuses. With them imported here, a
    regenerated cell that trains a network (a2-14, a4-07) runs in the child; the refusals stay as they were."""
    import torch
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([weight], lr=1e-3)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1)
    torch.nn.functional.mse_loss(weight, torch.ones(1)).backward()
    opt.step()
    decay.step()
    opt.zero_grad()


def _trains(cells) -> bool:
    """Whether a cell, regenerated or answer, may train a network (names an optimiser or a training function) or
    use ``torch.func`` (whose first call imports ``torch._dynamo`` too): then the child imports what training
    imports before the lock-down (``_warm_up_training``)."""
    return any(word in source for _, source, _ in cells for word in ("optim", "train", "torch.func", "vmap",
                                                                      "import func"))


_PRINTED = 20_000  # the characters of an answer cell's printed text that the feedback shows (its end)


def _figure_numbers() -> set:
    pyplot = sys.modules.get("matplotlib.pyplot")
    return set(pyplot.get_fignums()) if pyplot is not None else set()


def _new_figures(before: set, cell_id: str) -> list[str]:
    """The figures that an answer cell drew (open now, not before it), as base64 PNGs (at most four), then closed."""
    import base64
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return []
    images = []
    for k, number in enumerate(sorted(set(pyplot.get_fignums()) - before)):
        figure = pyplot.figure(number)
        if k < 4:
            path = os.path.join(os.getcwd(), f"{cell_id}_{k}.png")
            figure.savefig(path, dpi=72)
            with open(path, "rb") as f:
                images.append(base64.b64encode(f.read()).decode("ascii"))
        pyplot.close(figure)
    return images


def _forked_child(conn, folder: str) -> None:
    """A submission's process, forked by the server of :func:`_children`: its output discarded, its environment a
    child's, its working and temporary folder its own; then :func:`_child_main` over the pipe ``conn`` (JSON
    messages)."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    os.environ.update(_CHILD_ENV, MPLCONFIGDIR=folder, TMPDIR=folder)
    tempfile.tempdir = None
    os.chdir(folder)

    def receive():
        try:
            return json.loads(conn.recv_bytes())
        except EOFError:
            return None

    _child_main(receive, lambda message: conn.send_bytes(json.dumps(message).encode()))


def _child_main(receive: Callable[[], Optional[dict]], reply: Callable[[dict], None]) -> None:
    """The child's loop: run the cells, then answer calls (arguments from the grader, outputs to files) until the
    grader closes the pipe (``receive`` returns None)."""
    import importlib
    import torch
    from . import grading
    # one thread: the grader runs a child per submission side by side, and two children with a thread per core
    # each wait on one another (the training of a2-14 ran past the time limit so on two cores)
    torch.set_num_threads(1)
    # the self-checks' refusals, bound before any answer runs: an answer that reached the grading module could
    # rebind its name there, not this one
    make_refusing = grading._refusing
    cells = receive()["cells"]
    if _trains(cells):  # about 3 s of imports, spent only where a cell trains
        _warm_up_training()

    namespace = {"__name__": "__main__"}
    errors, printed, drawn = {}, {}, {}
    locked = False
    for cell_id, source, allowed in cells:
        try:
            if allowed is None:  # a regenerated cell of the template
                exec(compile(source, f"<cell {cell_id}>", "exec"), namespace)
            else:
                if not locked:
                    _import_submodules()
                    _lock_down(os.getcwd())
                    locked = True
                # what the answer cell prints and draws when the grader runs it, for the feedback beside what the
                # submission stored (which a student can edit)
                before, text = _figure_numbers(), io.StringIO()
                try:
                    with contextlib.redirect_stdout(text):
                        _run_answer(source, cell_id, allowed, namespace)
                finally:
                    printed[cell_id] = text.getvalue()[-_PRINTED:]
                    drawn[cell_id] = _new_figures(before, cell_id)
        except BaseException as err:  # noqa: BLE001 - the student's cell, reported to the grader
            errors[cell_id] = f"{type(err).__name__}: {err}"
    reply({"errors": errors, "printed": printed, "drawn": drawn})
    out = os.path.join(os.getcwd(), "out.pt")
    for request in iter(receive, None):
        try:
            if "call" in request:
                with _trusted():  # the grader's arguments (its test models among them) and its refusals
                    args = [torch.Generator().set_state(v) if kind == "generator" else v
                            for kind, v in torch.load(request["path"], weights_only=False)]
                    refused = {_resolve(importlib, module, qualname): message
                               for module, qualname, message in request.get("refused", [])}
                    # the self-check's refusals, here too: any route to a solving function meets them
                    refusing = make_refusing(refused)
                    refusing.__enter__()
                fn = namespace[request["call"]]
                scope = getattr(fn, "__globals__", None) if isinstance(fn, types.FunctionType) else None
                saved = {}
                if scope is not None:  # the grader's references in place of earlier functions that failed
                    for other in request.get("bind", []):
                        saved[other] = scope.get(other)
                        scope[other] = _REFERENCES[other]
                try:
                    value = fn(*args)
                    if request.get("grad"):  # the gradients here, under the same refusals: the graph stays here
                        leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
                        grads = (None if not (isinstance(value, torch.Tensor) and value.requires_grad) else
                                 torch.autograd.grad(value.sum(), leaves, allow_unused=True))
                        value = {"value": value.detach() if isinstance(value, torch.Tensor) else value,
                                 "grad": None if grads is None else
                                 [torch.zeros_like(a) if g is None else g.detach() for a, g in zip(leaves, grads)]}
                finally:
                    for other, before in saved.items():
                        scope[other] = before
                    with _trusted():
                        refusing.__exit__(None, None, None)
            else:
                value = {name: namespace.get(name) for name in request["get"]}
                if request.get("state_dict"):
                    value[request["state_dict"]] = namespace[request["state_dict"]].state_dict()
            if isinstance(value, torch.Tensor):
                value = value.detach()
            torch.save(value, out)
            if "call" in request and any(isinstance(a, torch.Generator) for a in args):
                states = os.path.join(os.getcwd(), "generators.pt")
                torch.save([a.get_state() for a in args if isinstance(a, torch.Generator)], states)
                reply({"path": out, "generators": states})
            else:
                reply({"path": out})
        except BaseException as err:  # noqa: BLE001
            reply({"error": type(err).__name__, "message": str(err)})


# -- grading -------------------------------------------------------------------------------------------------------
def _text(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _load(path) -> dict:
    return json.loads(pathlib.Path(path).read_text())


def _assignment_of(nb: dict, templates: pathlib.Path) -> Optional[str]:
    prefixes = {str(c.get("id", "")).split("-")[0] for c in nb.get("cells", [])}
    found = [p.stem for p in sorted(templates.glob("*.ipynb")) if p.stem.split("_")[0] in prefixes]
    return found[0] if len(found) == 1 else None


# the self-checks' hints that name no particular mistake: a failure with one of them earns nothing
_GENERIC = ("the values differ", "the share differs", "your function raised", "expected a function", "return a ",
            "the result has shape", "the result holds", "this check does not accept", "the submission",
            "the samples are not", "the gamma = ", "seed must be", "samples must be", "report must be", "report and ",
            "report at least", "report[", "only ", "rows that are not dropped",
            "block ", "the mean in ", "the standard error in ", "the interval in ", "results[",
            # hints that a skipped task would earn: no half marks for them
            "the rule must depend on t", "your samples are the network's feature vectors", "estimates",
            "no row was dropped", "some particle is copied", "no network was trained")
_LOCK = threading.Lock()  # the self-checks swap package code objects while they call: one at a time


# named mistakes that earn no half marks: they reverse what the task is for. Assignment 1's guided eps with the
# gradient's sign flipped guides away from y (the table's samples at s = 4 land near -70 instead of 1.6), so it scores
# zero, and the table made with it scores zero too (its half marks need every used task at half marks)
_NO_HALF = {"guided eps": ("check the sign",)}


def _points(task: Task, result) -> tuple[float, str]:
    if result.status == "pass":
        return task.points, "pass"
    if result.status == "fail" and result.message.startswith(_NO_HALF.get(task.name, ())):
        return 0.0, "a named mistake that reverses guidance: no half marks"
    if result.status == "fail" and not result.message.startswith(_GENERIC):
        return task.points / 2, "half: a named mistake"
    return 0.0, result.status


def rubrics(assignment: str, folder=RUBRICS) -> dict[str, str]:
    """The rubrics of an assignment's written tasks, by task name, from ``folder/ASSIGNMENT.md`` (a section
    ``## TASK NAME`` per task). They stay with the instructor's solutions: the students' copy of the course
    (``make student-release``) has no ``instructor/``, and then every rubric reads as missing."""
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"assignment must be one of {', '.join(ASSIGNMENTS)}, got {assignment!r}")
    path = pathlib.Path(folder) / f"{assignment}.md"
    if not path.is_file():
        return {}
    sections = re.split(r"^## +(.+?) *$", path.read_text(), flags=re.M)
    return {name: text.strip() for name, text in zip(sections[1::2], sections[2::2])}



def _defines(cell) -> str:
    """The functions that a template's answer cell defines, for the feedback: ``cfg``, ``a and b``."""
    try:
        names = [n.name for n in _parse(_text(cell)).body if isinstance(n, ast.FunctionDef)]
    except SyntaxError:
        names = []
    return " and ".join(f"`{n}`" for n in names) or "the names"


def _defined(cell) -> list[str]:
    """The names of the functions that a template's answer cell defines."""
    try:
        return [n.name for n in _parse(_text(cell)).body if isinstance(n, ast.FunctionDef)]
    except SyntaxError:
        return []


def _why(state: str) -> str:
    return {"todo": "still has its TODO open", "missing": "is not in the submission"}.get(
        state, f"was {state}" if state.startswith("refused") else "did not run")


def _calls(source: str, template_cells: dict, status: dict) -> list[str]:
    """The answer cells (ids in ``status``) that define a function which ``source`` names."""
    try:
        used = {n.id for n in ast.walk(_parse(source)) if isinstance(n, ast.Name)}
    except SyntaxError:
        return []
    out = []
    for cell_id in status:
        try:
            defined = {n.name for n in _parse(_text(template_cells[cell_id])).body if isinstance(n, ast.FunctionDef)}
        except (SyntaxError, KeyError):
            continue
        if defined & used:
            out.append(cell_id)
    return out


def _assigned(cell) -> set[str]:
    """The names that a template's answer cell assigns at its top level (``samples, report = None, None``)."""
    try:
        tree = _parse(_text(cell))
    except SyntaxError:
        return set()
    targets = [t for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
               for t in (node.targets if isinstance(node, ast.Assign) else [node.target])]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _reads(source: str, template_cells: dict, status: dict) -> dict[str, list[str]]:
    """The answer cells (ids in ``status``) whose variables ``source`` reads, with the names it reads of each."""
    try:
        used = {n.id for n in ast.walk(_parse(source)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    except SyntaxError:
        return {}
    out = {}
    for cell_id in status:
        names = sorted(_assigned(template_cells[cell_id]) & used) if cell_id in template_cells else []
        if names:
            out[cell_id] = names
    return out


def _added_cells(nb: dict, template_cells: dict) -> list[tuple[str, str, dict]]:
    """The cells of a submission that its template does not have, each with its label for the feedback (``cell
    3f2a (added after a6-09)``) and the template cell it follows (``""`` if none)."""
    out, after = [], ""
    for k, cell in enumerate(nb.get("cells", [])):
        if not isinstance(cell, dict):
            continue
        cell_id = cell.get("id")
        if cell_id in template_cells:
            after = cell_id
            continue
        where = f"added after {after}" if after else "added before the first cell"
        out.append((f"cell {cell_id or f'number {k + 1}'} ({where})", after, cell))
    return out


def _without_placeholder(text: str) -> str:
    """A written answer's text with the template's placeholder taken out (and stripped): empty when the student
    wrote nothing of their own."""
    return text.replace(ANSWER_MARK, "").strip()


def _markdown_near(nb: dict, template_cells: dict, cell_id: str) -> list[tuple[str, str]]:
    """The non-empty markdown cells that the student added next to the template cell ``cell_id``: between the
    template cell before it and it (``added above``), and between it and the next template cell (``added below``),
    each as (label for the feedback, text), in the notebook's order."""
    cells = [c for c in nb.get("cells", []) if isinstance(c, dict)]
    at = next((k for k, c in enumerate(cells) if c.get("id") == cell_id), None)
    if at is None:
        return []
    out = []
    for step, where in ((-1, "above"), (1, "below")):
        k, found = at + step, []
        while 0 <= k < len(cells) and cells[k].get("id") not in template_cells:
            c = cells[k]
            text = _text(c).strip() if c.get("cell_type") == "markdown" else ""
            if _without_placeholder(text):
                found.append((f"cell {c.get('id') or f'number {k + 1}'} (added {where} {cell_id})", text))
            k += step
        out += found[::-1] if step < 0 else found
    return out


def _names_bound(source: str) -> set[str]:
    """The names that a cell binds at its top level: functions, classes, assignments, imports."""
    try:
        tree = _parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        else:
            for target in ast.walk(node):
                if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                    names.add(target.id)
    return names


_NAME_ERROR = re.compile(r"NameError: name '(\w+)' is not defined")


def _added_name(message: str, added: list) -> str:
    """For a message that reports a NameError on a name that a code cell the student added defines: the sentence
    that says so; else ``""``."""
    for name in _NAME_ERROR.findall(message):
        for label, _, cell in added:
            if cell.get("cell_type") == "code" and name in _names_bound(_text(cell)):
                return (f". `{name}` is defined in {label}, a cell that the student added: only the answer cells are "
                        f"graded, so a helper must be defined inside an answer cell")
    return ""


def grade_notebook(path, *, templates=TEMPLATES, rubric_folder=RUBRICS, seed: Optional[int] = None, timeout: float = 120.0,
                   label: Optional[str] = None) -> dict:
    """Grade one submitted notebook; return its gradebook row (``points`` per task) and its feedback text."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"path must be a submitted notebook, got {str(path)!r}, which is not a file")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    seed = random.SystemRandom().randrange(2 ** 31) if seed is None else seed
    row = {"submission": label or path.stem, "file": path.name, "hidden_seed": seed}
    feedback = [f"# {row['submission']} ({path.name})", f"hidden inputs: seed {seed} (grade again with --seed {seed} to replay them)", ""]
    try:
        nb = _load(path)
        assignment = _assignment_of(nb, pathlib.Path(templates))
    except (OSError, ValueError) as err:
        nb, assignment = None, None
        feedback.append(f"not a readable notebook: {err}")
    if assignment is None:
        row.update(assignment="?", auto_points=0.0, auto_max=0.0, written_max=0.0)
        feedback.append("no assignment's answer cells were found in this file")
        return {"row": row, "feedback": "\n".join(feedback)}
    template = _load(pathlib.Path(templates) / f"{assignment}.ipynb")
    tasks = ASSIGNMENTS[assignment]
    rubric = rubrics(assignment, rubric_folder)
    row["assignment"] = assignment
    submitted = {c.get("id"): c for c in nb["cells"]}
    template_cells = {c.get("id"): c for c in template["cells"]}
    added = _added_cells(nb, template_cells)
    package = _package_names(template)
    status: dict[str, str] = {}  # answer cell id -> "run" | "todo" | "missing" | reason of a refusal
    sources: dict[str, str] = {}
    copies: list[str] = []  # statements that repeat the package's code: for the instructor's eye
    answers: dict[str, str] = {}  # answer cell id -> the answer, for the identical answers of grade_folder
    for task in tasks:
        if task.kind == "written" or task.cell in status:
            continue
        cell = submitted.get(task.cell)
        if cell is None or cell.get("cell_type") != "code":
            status[task.cell] = "missing"
            continue
        text = _text(cell)
        if text.strip() == _text(template_cells[task.cell]).strip():
            status[task.cell] = "todo"
            continue
        allowed = {a for t in tasks if t.cell == task.cell for a in t.allowed}
        reason = screen(text, package, allowed)
        status[task.cell] = "run" if reason is None else f"refused: {reason}"
        sources[task.cell] = text
        copies += [f"{task.cell} {where}" for where in copied(text, _text(template_cells[task.cell]))]
        if len(_normalised(text)) - len(_normalised(_text(template_cells[task.cell]))) >= _IDENTICAL_CODE:
            answers[task.cell] = text

    child = None
    if "run" in status.values():
        last = max(i for i, c in enumerate(template["cells"]) if c.get("id") in status)
        # (id, source, the package calls an answer cell may make, or None for a regenerated cell)
        cells = [(c["id"], sources[c["id"]], sorted({a for t in tasks if t.cell == c["id"] for a in t.allowed}))
                 if status.get(c["id"]) == "run" else (c["id"], _text(c) + _SNAPSHOTS.get(c["id"], ""), None)
                 for c in template["cells"][:last + 1]
                 if c["cell_type"] == "code" and c["id"] not in _SKIP and "grading.check_" not in _text(c)]
        try:
            child = _Child(cells, timeout)
        except (TimeoutError, RuntimeError) as err:
            feedback.append(f"the submission's cells did not finish: {err}")
    auto = written = auto_max = 0.0
    passed: dict[str, bool] = {}  # answer cell id -> whether all its tasks so far passed
    task_passed: dict[str, bool] = {}  # task name -> whether it passed
    task_how: dict[str, str] = {}  # task name -> how its points were given ("pass", "half: a named mistake", ...)
    task_report: dict[str, str] = {}  # task name -> its check's own message
    numbers: dict[str, str] = {}  # value task name -> the numbers computed from its re-run values (when it passed)
    task_said: dict[str, str] = {}  # task name -> how it scored and the first line of its report
    prefix = assignment.split("_")[0].upper()
    for task in tasks:
        key = f"{prefix} {task.name} ({task.points:g})"
        feedback.append(f"## {task.name} ({_in_points(task.points)})")
        if task.kind == "written":
            cell = submitted.get(task.cell)
            text = _text(cell).strip() if cell else ""
            # the placeholder may stay, with the answer typed above or below it in the same cell
            own = _without_placeholder(text)
            answered = bool(own)
            # markdown cells the student added next to the answer cell: above it (after the template cell before
            # it) or below it (before the next template cell); their text is shown under this task
            near = _markdown_near(nb, template_cells, task.cell) if cell is not None else []
            row[key] = "" if answered or near else 0.0
            if answered or near:
                answers[task.cell] = "\n\n".join(([own] if answered else []) + [t for _, t in near])
            written += task.points
            if answered:
                feedback += ["written answer, graded by hand", "", _fenced(text), ""]
                if near:
                    feedback += ["The student also added markdown cell(s) next to the answer cell:", ""]
            elif near:
                feedback += [f"written answer, graded by hand: the answer cell {task.cell} holds no answer, "
                             f"but the student added markdown cell(s) next to it; their text is taken as the "
                             f"answer:", ""]
            else:
                feedback += ["no answer", "", _fenced(text or "(missing)"), ""]
            for label, added_text in near:
                feedback += [f"From {label}:", "", _fenced(added_text), ""]
            source = _WRITTEN_NUMBERS.get(task.name)
            if source in _FUNCTION_NUMBERS:
                feedback += _function_numbers(source, numbers.get(source), task_said.get(source))
            elif source is not None:
                feedback += [f"### {NUMBERS_HEADING}", ""]
                if source in numbers:
                    feedback += [f"The grader's numbers from the student's samples: computed (with `tutorial_pkg.stats` "
                                 "where they carry standard errors) "
                                 f"from the values of task '{source}' as it re-ran them from the student's seed, not "
                                 "from the submission's stored outputs "
                                 "(which are the student's to edit): where a written statement quotes another number "
                                 "or verdict, these hold.", "", _fenced(numbers[source]), ""]
                else:
                    feedback += [f"No re-run numbers exist: the value task '{source}' did not pass, and its samples "
                                 "were not confirmed to repeat from the student's seed, so the grader has no numbers "
                                 "of the student's seed to compute them from. The written "
                                 "statements cannot be checked against re-run numbers here.", ""]
                    feedback += [f"Task '{source}' ({task_said.get(source, 'its cell did not run')}): numbers that "
                                 "this answer quotes were not shown to be ones that the student's own functions and "
                                 "seed make.", ""]
            feedback += ["Rubric:", rubric.get(task.name, (
                f"not found: the rubrics stay with the instructor's solutions ({assignment}.md in "
                f"{rubric_folder}), which this copy of the course does not hold")), ""]
            continue
        auto_max += task.points
        state = status[task.cell]
        # the earlier answer cells whose functions this cell calls, and how they fared
        needs = [c for c in _calls(sources.get(task.cell, ""), template_cells, status) if c != task.cell]
        blocked = [c for c in needs if status[c] != "run"]
        failing = [c for c in needs if status[c] == "run" and not passed.get(c, True)]
        if state != "run" or child is None:
            message = {"todo": "not implemented yet: the TODO is still open", "missing":
                       f"the answer cell {task.cell} is not in the submission"}.get(state, state)
            if state == "run":
                message = "the submission's cells did not finish"
            row[key] = 0.0
            passed[task.cell] = False
            feedback += [f"0 points: {message}", ""]
            continue
        if task.cell in child.errors and task.kind == "values":
            row[key] = 0.0
            passed[task.cell] = False
            error = f"the answer cell raised {child.errors[task.cell]}"
            feedback += [f"0 points: {error}{_added_name(error, added)}", ""]
            continue
        unmet = [t for t in task.uses if not task_passed.get(t, False)]
        # a used function with a named mistake (half of its task's points), where this task's check can regenerate
        # the numbers with the student's own functions in the child: the task is graded on those, for half its points
        own = bool(unmet) and task.kind == "values" and task.check in _OWN_RERUN and \
            all(task_how.get(t) == "half: a named mistake" for t in unmet)
        if task.kind == "values" and unmet and not own:
            # the numbers must come from the student's own functions: with one of them unfinished, refused or wrong,
            # numbers that pass could only have come from elsewhere
            row[key] = 0.0
            passed[task.cell] = False
            feedback += ["0 points: these numbers must come from your " + ", ".join(
                f"`{_FUNCTION[t]}` (task '{t}')" for t in unmet) + ", whose task did not pass: a value task is "
                "graded only on numbers that your own functions make", ""]
            continue
        # an earlier function whose task failed, or whose cell was refused or left unfinished, is replaced, for this
        # check only, by the reference: each function is graded on its own logic, not marked down again for what
        # the earlier task already cost
        bound = [n for c in failing + blocked for n in _defined(template_cells[c]) if n in _REFERENCES]
        unbound = [c for c in blocked if not any(n in _REFERENCES for n in _defined(template_cells[c]))]
        # the variables that this cell reads from an answer cell that was refused or left unfinished
        unread = {c: names for c, names in _reads(sources.get(task.cell, ""), template_cells, status).items()
                  if c != task.cell and status[c] != "run" and c not in unbound}
        log = io.StringIO()
        with _LOCK, contextlib.redirect_stdout(log):
            try:
                if task.kind == "function":
                    result = task.check(lambda *args, name=_FUNCTION[task.name], grad=False:
                                        child.call(name, args, bound, grad=grad), seed)
                else:
                    result = task.check(_seed_guarded(lambda *names, state_dict=None: child.get(names, state_dict),
                                                      assignment), seed,
                                        lambda name: (lambda *args, grad=False: child.call(name, args, grad=grad)),
                                        **({"own": True} if own else {}))
            except Exception as err:  # noqa: BLE001 - the submission's process failed to answer
                from .grading import CheckResult
                result = CheckResult(task.name, "fail", f"the submission: {err}")
        computed = None
        if isinstance(result, _WithNumbers):
            result, computed = result.result, result.numbers
        points, how = _points(task, result)
        message = result.message
        if own:
            named = " and ".join(f"`{_FUNCTION[t]}` (task '{t}')" for t in unmet) + \
                (" have named mistakes" if len(unmet) > 1 else " has a named mistake")
            if result.status == "pass" and all(task_report.get(t, "").startswith(_PAID_ONCE.get(t, "\0"))
                                               for t in unmet) and _OTHER_LENGTH not in message:
                points, how = task.points, _OWN_IN_FULL
                message = (f"these numbers are what your own functions give (the grader made them again with them); "
                           f"{named} that leaves them as right as the notebook's (its own task paid for it), so they "
                           f"earn the full points ({message})")
            elif result.status == "pass":
                points, how = task.points / 2, "half: numbers of your own functions, one with a named mistake"
                message = (f"these numbers are what your own functions give (the grader made them again with them), "
                           f"but {named}, so they are not the right numbers: half the points "
                           f"({message})")
            else:
                points, how = 0.0, result.status
                message = (f"{named}, and these numbers are not what your own functions give "
                           f"either: a value task is graded only on numbers that your own functions make ({message})")
        if result.status != "pass" and task.cell in child.errors:
            message += f" (the answer cell raised {child.errors[task.cell]})"
        if bound and task.kind == "function":
            message += (" (graded with the reference " + ", ".join(f"`{n}`" for n in bound) + " in place of yours, "
                        "whose task did not pass or whose cell did not run: this task is graded on its own logic)")
        if result.status != "pass" and unbound:
            # the template's stub ran in place of a refused or unfinished function: say so, not "fill in the TODO"
            message = "; ".join(f"this cell calls {_defines(template_cells[c])} of answer cell {c}, which "
                                f"{_why(status[c])}" for c in unbound) + \
                ": it depends on that cell and is graded once that cell runs"
            points, how = 0.0, "depends on a cell that did not run"
        elif result.status != "pass" and unread and points == 0:
            # the template's stub values (None) stood in for a refused or unfinished cell's variables: say so
            message = "; ".join(f"this cell reads " + ", ".join(f"`{n}`" for n in names) + f" of answer cell {c}, "
                                f"which {_why(status[c])}" for c, names in unread.items()) + \
                ": it depends on that cell and is graded once that cell runs"
            points, how = 0.0, "depends on a cell that did not run"
        elif result.status != "pass" and failing and not bound and not own:
            message = ("; ".join(f"this cell calls {_defines(template_cells[c])} of answer cell {c}, whose task did "
                                 f"not pass: fix that first" for c in failing) + f" (this task's check said: {message})")
        if result.status != "pass":
            message += _added_name(message, added)
        passed[task.cell] = passed.get(task.cell, True) and result.status == "pass" and not own
        task_passed[task.name] = result.status == "pass" and not own
        task_how[task.name] = how
        task_report[task.name] = result.message
        task_said[task.name] = f"{how}: {message.splitlines()[0] if message else ''}"
        if computed is not None and task.kind == "function":  # the student's own function's table, as it is
            if bound:  # an earlier function of the student's, whose task failed, was replaced by the reference
                computed = ("(made with the grader's reference " + ", ".join(f"`{n}`" for n in bound) + " in place of "
                            "the student's, whose task did not pass: the student's own run of the cell differs)\n\n"
                            + computed)
            numbers[task.name] = computed if how == "pass" else (
                f"(the task '{task.name}' did not pass ({how}): this is the table that the student's own "
                f"`{_FUNCTION[task.name]}` gives, with its slip, not the right one)\n\n" + computed)
        elif computed is not None and how == _OWN_IN_FULL:
            numbers[task.name] = (f"(the value task '{task.name}' passed in full on the student's own functions, after "
                                  "a named slip in one of them that changes no number's correctness: these are the "
                                  "grader's numbers from the student's own networks, not the notebook's)\n\n" + computed)
        elif computed is not None:  # the seed's samples confirmed, even where the intervals or functions are wrong
            numbers[task.name] = computed if how == "pass" else (
                f"(the value task '{task.name}' did not pass in full ({how}), but its samples repeat from the "
                "student's seed: these are the grader's numbers from those samples, not the student's report)\n\n"
                + computed)
        auto += points
        row[key] = points
        feedback += [f"{_in_points(points)} ({how}): {message}", ""]
        if task.kind == "values":
            feedback += _stored_output(submitted.get(task.cell), child.printed.get(task.cell),
                                       template_cells.get(task.cell))
    redrawn = {}
    if child is not None:
        child.close()
        redrawn = {f"{cell}_{k}.rerun.png": data for cell, images in child.drawn.items()
                   for k, data in enumerate(images)}
    row.update(auto_points=auto, auto_max=auto_max, written_max=written, copied="; ".join(copies))
    if copies:
        feedback += ["## For the instructor: a function that repeats one of the package's, statement for statement "
                     "(names aside)", "No points are taken for it; read it by eye.", *copies, ""]
    images = _figures(nb)
    if images:  # the plots that the rubrics grade, as the student's notebook stored them
        feedback += ["## Figures stored in the submission",
                     "As the student's own run drew them (the grader does not redraw them): the plots that the rubrics "
                     "grade are among them.", ""]
        feedback += [f"![cell {name.rsplit('_', 1)[0]}]({{figures}}/{name})" for name in images] + [""]
    if redrawn:  # the same plots, as the answer cells drew them when the grader ran them
        feedback += ["## Figures drawn by the answer cells when the grader ran them",
                     "Compare them with the stored ones above: the written answers are graded on the student's own "
                     "numbers, which are these.", ""]
        feedback += [f"![cell {name.split('_')[0]}, re-run]({{figures}}/{name})" for name in redrawn] + [""]
    return {"row": row, "feedback": "\n".join(feedback), "figures": {**images, **redrawn}, "answers": answers}


FUNCTION_NUMBERS_HEADING = ("Numbers the grader computed with your own function, on the notebook's setting (grade the "
                            "written statements on these)")


def _function_numbers(source: str, computed: Optional[str], said: Optional[str]) -> list[str]:
    """The feedback section beside a written answer that quotes the table of a function task (:data:`_FUNCTION_NUMBERS`):
    the table that the grader made with the student's own function, or why there is none."""
    name, cell = _FUNCTION[source], _FUNCTION_NUMBERS[source]
    lines = [f"### {FUNCTION_NUMBERS_HEADING}", ""]
    if computed is not None:
        return lines + [f"Cell {cell}'s table, as the grader made it by calling the student's `{name}` (task "
                        f"'{source}') on that cell's setting, not taken from the submission's stored output of cell "
                        f"{cell} (which is the student's to edit): where a written statement quotes another number, "
                        "this table holds.", "", _fenced(computed), ""]
    return lines + [f"No table of the student's own exists: the task '{source}' neither passed nor made a named slip, "
                    f"so the grader did not run the student's `{name}` on the setting of cell {cell}. The written "
                    "statements cannot be checked against the student's own numbers here.", "",
                    f"Task '{source}' ({said or 'its cell did not run'}): numbers that this answer quotes were not "
                    "shown to be ones that the student's own functions make.", ""]


def _stored_output(cell, rerun: Optional[str] = None, template_cell=None) -> list[str]:
    """The text that a value task's answer cell printed in the student's own run, for the feedback, and what it
    printed when the grader ran it (``rerun``): the rubrics grade the written answers on these numbers, and a stored
    output is the student's to edit."""
    text = _printed(cell)
    if text and text == _printed(template_cell):  # the template's own output ("fill in ... first"): none stored
        text = ""
    rerun = None if rerun is None else rerun.lstrip("\n").rstrip()
    lines = [] if text else ["No stored output: the submission holds no output of this cell's own (none, or the "
                             "template's).", ""]
    if text:
        lines += ["Printed by this cell in the submission (as stored):", "", _fenced(text), ""]
    if rerun:
        lines += ["Printed by this cell when the grader ran it:", "", _fenced(rerun), ""]
        if text and rerun != text:
            lines += ["**The stored and the re-run outputs differ.** Differences in the last digits can come from "
                      "another machine's floating point; others mean that the stored output is not this code's: "
                      "read the written answer against the re-run numbers.", ""]
    return lines


def _printed(cell) -> str:
    """What a code cell printed, as stored, without blank lines around it and trailing spaces (the first line's
    leading spaces stay: they align the tables printed)."""
    outputs = cell.get("outputs", []) if isinstance(cell, dict) else []
    text = "".join("".join(o["text"]) if isinstance(o.get("text"), list) else str(o.get("text", ""))
                   for o in outputs if isinstance(o, dict) and o.get("output_type") == "stream")
    return text.lstrip("\n").rstrip()


def _fenced(text: str) -> str:
    """``text`` in a code fence longer than any run of backticks in it, so that it cannot close the fence."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _figures(nb: dict) -> dict[str, bytes]:
    """The PNG images stored in a notebook's code cells, by file name ``CELLID_K.png``."""
    import base64
    images = {}
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        k = 0
        for output in cell.get("outputs", []):
            data = output.get("data", {}) if isinstance(output, dict) else {}
            png = data.get("image/png")
            if isinstance(png, list):
                png = "".join(png)
            if isinstance(png, str):
                try:
                    images[f"{re.sub(r'[^A-Za-z0-9-]', '', str(cell.get('id', 'cell')))}_{k}.png"] = \
                        base64.b64decode(png, validate=False)
                    k += 1
                except ValueError:
                    continue
    return images


def _normalised(text: str) -> str:
    """``text`` without the solution markers and with every run of whitespace made one space: answers that differ
    only in spacing compare equal, and so does a copy of the solution notebook that kept its markers."""
    text = text.replace("<!-- BEGIN SOLUTION -->", "").replace("<!-- END SOLUTION -->", "")
    text = "\n".join(line for line in text.split("\n") if not re.match(r"^[ \t]*# (BEGIN|END) SOLUTION", line))
    return " ".join(text.split())


# an answer code cell is compared only when the student wrote at least this many characters beyond the template's
# (whitespace normalised): two honest students often write the same short function, such as a one-line CFG combination
_IDENTICAL_CODE = 200


def _model_answers(assignment: str, solutions=SOLUTIONS) -> dict[str, str]:
    """The instructor's answers of ``assignment``'s answer cells (its solution notebook, without the solution
    markers), by cell id; empty where the solutions are not in this copy of the course."""
    path = pathlib.Path(solutions) / f"{assignment}.ipynb"
    if not path.is_file():
        return {}
    cells = {c.get("id"): c for c in _load(path)["cells"]}
    model = {}
    for task in ASSIGNMENTS.get(assignment, []):
        cell = cells.get(task.cell)
        if cell is None:
            continue
        model[task.cell] = _normalised(_text(cell))
    return model


# written answers are also compared fuzzily: on the sets of 4-word shingles of their content words (lower-cased,
# markup, the placeholder and the common function words of _STOPWORDS taken out, so that swapping "the", "is" or
# "and" does not hide a copy), by Jaccard similarity, and flagged at _SIMILAR or above. Measured on the answers of
# fresh readers who wrote their own (A1, A2, A4, A5, A6 and A7, 9 to 960 words): at most 0.03 against the model
# answer (0.12 for one written against an earlier, longer model answer of A6); the model answer with words or
# common words swapped throughout scores 0.53 to 0.75, with one letter or three words changed 0.9 and above. A
# copy reworded sentence by sentence, content words included, is not found.
_SHINGLE = 4
_SIMILAR = 0.3
_STOPWORDS = frozenset("""a an the and or but if then than so as of to in on at by for with from into onto over
under about above below between within without through per via is are was were be been being am do does did done
has have had having it its this that these those there here which who whom whose what when where why how not no nor
only also too very more most less least much many some any each every all both either neither i my me we our us you
your he she they them their his her can could may might must shall should will would just still even yet again same
other another such own up down out off""".split())


def _shingles(text: str) -> set:
    """The 4-word shingles of a written answer's content words: lower-cased, without the placeholder, the solution
    markers, markdown or LaTeX markup and the words of :data:`_STOPWORDS`, with numbers kept as words."""
    text = text.replace(ANSWER_MARK, "").replace("<!-- BEGIN SOLUTION -->", "").replace("<!-- END SOLUTION -->", "")
    words = [w for w in re.findall(r"[a-z0-9]+(?:[.,][0-9]+)*", text.lower()) if w not in _STOPWORDS]
    return {tuple(words[k:k + _SHINGLE]) for k in range(len(words) - _SHINGLE + 1)}


def _similarity(a: set, b: set) -> float:
    """Jaccard similarity of two shingle sets (0 when either is empty: answers shorter than a shingle are compared
    only exactly)."""
    return len(a & b) / len(a | b) if a and b else 0.0


def _identical(graded: list[dict], solutions=SOLUTIONS) -> None:
    """Fill each row's ``identical`` column: the answer cells whose answer (written, or code of at least
    ``_IDENTICAL_CODE`` characters of the student's own) is the same, after whitespace normalisation, as another
    submission's of the same assignment in the folder, or as the instructor's model answer (``a3-16 same as the
    model answer, bob``); and the written answers that are not the same but similar, at ``_SIMILAR`` or above in
    :func:`_similarity` (``a3-11 0.97 like the model answer, 0.88 like bob``)."""
    written = {t.cell for tasks in ASSIGNMENTS.values() for t in tasks if t.kind == "written"}
    holders: dict[tuple[str, str, str], list[str]] = {}
    shingles: dict[tuple[str, str], dict[str, set]] = {}  # (assignment, written cell) -> submission -> shingles
    for g in graded:
        assignment = g["row"].get("assignment", "?")
        for cell, text in g.get("answers", {}).items():
            holders.setdefault((assignment, cell, _normalised(text)), []).append(g["row"]["submission"])
            if cell in written:
                shingles.setdefault((assignment, cell), {})[g["row"]["submission"]] = _shingles(text)
    models, model_shingles = {}, {}
    for g in graded:
        assignment, found, me = g["row"].get("assignment", "?"), [], g["row"]["submission"]
        if assignment not in models:
            models[assignment] = _model_answers(assignment, solutions) if assignment in ASSIGNMENTS else {}
            model_shingles[assignment] = {c: _shingles(t) for c, t in models[assignment].items() if c in written}
        for cell, text in sorted(g.get("answers", {}).items()):
            text = _normalised(text)
            others = [name for name in holders[assignment, cell, text] if name != me]
            same = (["the model answer"] if models[assignment].get(cell) == text else []) + others
            if same:
                found.append(f"{cell} same as " + ", ".join(same))
            if cell not in written:
                continue
            mine = shingles[assignment, cell][me]
            like = [(_similarity(mine, model_shingles[assignment].get(cell, set())), "the model answer")]
            like += [(_similarity(mine, theirs), name) for name, theirs in shingles[assignment, cell].items()
                     if name != me]
            like = [f"{r:.2f} like {name}" for r, name in like if r >= _SIMILAR and name not in same]
            if like:
                found.append(f"{cell} " + ", ".join(like))
        g["row"]["identical"] = "; ".join(found)


def grade_folder(folder, *, out=None, feedback=None, templates=TEMPLATES, rubric_folder=RUBRICS, seed: Optional[int] = None,
                 jobs: int = 2, timeout: float = 120.0, solutions=SOLUTIONS) -> list[dict]:
    """Grade every ``*.ipynb`` under ``folder``; write the gradebook CSV ``out`` and the feedback files. The
    ``identical`` column names the answers that are the same as another submission's in ``folder`` or as the model
    answer in ``solutions``."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"folder must be a folder of submitted notebooks, got {str(folder)!r}, which is not a folder")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    paths = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        graded = list(pool.map(lambda p: grade_notebook(
            p, templates=templates, rubric_folder=rubric_folder, seed=seed, timeout=timeout,
            label=str(p.relative_to(folder).with_suffix(""))), paths))
    _identical(graded, solutions)
    out = pathlib.Path(out) if out else folder.parent / f"{folder.name}_gradebook.csv"
    feedback = pathlib.Path(feedback) if feedback else out.with_suffix("")
    feedback.mkdir(parents=True, exist_ok=True)
    fields = ["submission", "assignment", "file", "auto_points", "auto_max", "written_max", "copied", "identical",
              "hidden_seed"]
    for g in graded:
        fields += [k for k in g["row"] if k not in fields]
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(g["row"] for g in graded)
    for g in graded:
        name = g["row"]["submission"].replace("/", "__")
        text = g["feedback"]
        if g.get("figures"):
            (feedback / f"{name}_figures").mkdir(exist_ok=True)
            for file, data in g["figures"].items():
                (feedback / f"{name}_figures" / file).write_bytes(data)
        (feedback / (name + ".md")).write_text(text.replace("{figures}", f"{name}_figures") + "\n")
    return [g["row"] for g in graded]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", help="folder of submitted notebooks")
    parser.add_argument("--out", help="gradebook CSV (default: SUBMISSIONS_gradebook.csv beside the folder)")
    parser.add_argument("--feedback", help="folder of the feedback files (default: the gradebook's name)")
    parser.add_argument("--templates", default=str(TEMPLATES), help="the student notebooks (book/assignments)")
    parser.add_argument("--rubrics", default=str(RUBRICS), help="the rubrics of the written tasks (instructor/rubrics)")
    parser.add_argument("--solutions", default=str(SOLUTIONS),
                        help="the instructor's solutions, whose model answers the identical column compares with")
    parser.add_argument("--seed", type=int, help="the hidden inputs' seed (default: fresh; printed in the feedback)")
    parser.add_argument("--jobs", type=int, default=2, help="submissions graded at once")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a cell or a call may take")
    args = parser.parse_args(argv)
    rows = grade_folder(args.submissions, out=args.out, feedback=args.feedback, templates=args.templates, rubric_folder=args.rubrics,
                        seed=args.seed, jobs=args.jobs, timeout=args.timeout, solutions=args.solutions)
    for row in rows:
        print(f"{row['submission']:>30s} {row['assignment']:>28s} {row['auto_points']:5g} / {row['auto_max']:g}"
              f" (+ written, of {row['written_max']:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
