"""Grading assignment 4 (the calibrated regressor, chapter 6): the guided-samples task's tie to the student's
gaussian_nll. A gaussian_nll that is off by its additive constant alone loses half of its own task, but trains the
same regressor (the same gradients), so the guided samples, which come from that regressor, are not marked down
for it; any other wrong gaussian_nll, or one not written, zeroes them before they are regenerated."""

import math

import pytest

from tutorial_pkg import grader, grading


def nll(f, log_sigma, E):
    return 0.5 * ((E - f) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)


def todo(f, log_sigma, E):
    raise NotImplementedError


def remote(fn):
    """``fn`` as the grader's child calls it: with ``grad=True``, the value and the gradients taken where it runs."""
    return lambda *args, grad=False: grading._nll_with_gradient(fn)(*args) if grad else fn(*args)


def no_gradient(f, log_sigma, E):
    """The right values, and no gradient: a regressor trained through it keeps its initial weights."""
    return nll(f, log_sigma, E).detach() + 0 * (f + log_sigma)


@pytest.mark.parametrize("fn", [
    nll,
    lambda f, ls, E: nll(f, ls, E) - 0.5 * math.log(2 * math.pi),   # the constant left out
    lambda f, ls, E: nll(f, ls, E).float() + 3.0,                   # float32, any constant
])
def test_a_gaussian_nll_off_by_a_constant_trains_the_same_regressor(fn):
    assert grader._nll_up_to_a_constant(remote(fn), seed=3) == ""


@pytest.mark.parametrize("fn, why", [
    (lambda f, ls, E: 0.5 * ((E - f) / ls.exp()) ** 2, "up to a constant"),              # no log sigma
    (lambda f, ls, E: 0.5 * (E - f) ** 2 / ls.exp() + ls, "up to a constant"),          # divided by sigma, not sigma^2
    (lambda f, ls, E: -nll(f, ls, E), "up to a constant"),                              # the sign
    (lambda f, ls, E: 2 * nll(f, ls, E), "up to a constant"),                           # a factor changes the steps
    (lambda f, ls, E: nll(f, ls, E).mean(), "one value per sample"),
    (todo, "not written yet"),
    (lambda f, ls, E: [1.0], "one value per sample"),
    (no_gradient, "not the right gradient"),
    (lambda f, ls, E: nll(f, ls, E).detach() - 0.5 * math.log(2 * math.pi), "not the right gradient"),
])
def test_any_other_gaussian_nll_zeroes_the_guided_samples(fn, why):
    assert why in grader._nll_up_to_a_constant(remote(fn), seed=3)
    task = next(t for t in grader.ASSIGNMENTS["a4_calibrated_regressor"] if t.name == "guided samples")
    # refused before the samples are fetched or regenerated: get is never called
    result = task.check(None, 3, lambda name: remote(fn))
    assert result.status == "fail" and "`gaussian_nll`" in result.message
    assert grader._points(task, result) == (0.0, "fail")


@pytest.mark.parametrize("fn, points", [(nll, 1.0), (no_gradient, 0.0), (lambda f, ls, E: nll(f, ls, E) - 0.5 * math.log(2 * math.pi), 0.5)])
def test_the_gaussian_nll_task_compares_values_and_gradients(fn, points):
    task = next(t for t in grader.ASSIGNMENTS["a4_calibrated_regressor"] if t.name == "Gaussian NLL")
    result = task.check(remote(fn), 3)
    assert grader._points(task, result)[0] == points, result
    if fn is no_gradient:
        assert "not the right gradient" in result.message


def test_the_guided_samples_need_the_regressor_that_the_notebook_trains(tmp_path):
    """The regressor that cell a4-07 trained in the submission's run is checked against the grader's own training of
    it, from the same seeds: a right submission passes, and weights that differ (an answer that changed how the
    notebook trains) score nothing, whatever the report; the screen refuses an answer that sets an attribute, such
    as torch.optim.AdamW.step, outright."""
    import json
    import pathlib

    import grading_folders  # instructor/tests/grading_folders.py
    from tutorial_pkg import grader

    assert "setting or deleting an attribute" in grader.screen(
        "import torch\ntorch.optim.AdamW.step = lambda *args: None\n", set())
    root = pathlib.Path(__file__).resolve().parents[2]
    template = json.loads((root / "book" / "assignments" / "a4_calibrated_regressor.ipynb").read_text())
    solution = {c["id"]: "".join(c["source"]) for c in json.loads(
        (root / "instructor" / "solutions" / "a4_calibrated_regressor.ipynb").read_text())["cells"]}
    answers = {cid: solution[cid] for cid in ("a4-04", "a4-09", "a4-14", "a4-21")}
    folder = tmp_path / "submissions"
    folder.mkdir()
    grading_folders.submission(template, folder, "right", answers)
    # its stored output of cell a4-12 (the calibration and sharpness table, which the grader does not run in the
    # child) edited to a fabricated sharpness line
    fabricated = "t =  10: sigma yours - shipped = -1.60 ± 0.05 (paired, 95 % interval [-1.70, -1.50]): yours lower"
    nb = json.loads((folder / "right.ipynb").read_text())
    next(c for c in nb["cells"] if c.get("id") == "a4-12")["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": [fabricated + "\n"]}]
    (folder / "right.ipynb").write_text(json.dumps(nb))
    rows, feedback, points = grading_folders.grade(folder, tmp_path / "book.csv", seed=3)
    assert points("right", "guided samples (2)") == 2.0
    # the table as the grader computed it, from the regressor tied to the notebook's training and the shipped ones,
    # is printed beside the written answer: the solution's own stored sharpness lines, not the fabricated one
    numbers = feedback["right"].split(grader.NUMBERS_HEADING)[1].split("Rubric:")[0]
    table = "".join("".join(o.get("text", "")) for c in json.loads(
        (root / "instructor" / "solutions" / "a4_calibrated_regressor.ipynb").read_text())["cells"]
        if c.get("id") == "a4-12" for o in c["outputs"])
    true_line = next(line for line in table.splitlines() if line.startswith("t =  10: sigma"))
    assert true_line in numbers and fabricated not in numbers and "shipped sigma(t)   10" in numbers, numbers
    # the same check on weights nudged after training: refused before any sample is looked at
    reference = grader._CACHE["a4 regressor"]
    nudged = {k: v + 1e-3 for k, v in reference.items()}
    result = grader._guided_report(lambda *names, state_dict=None: {"samples": None, "report": None, "seed": 0,
                                                                    "__regressor_as_trained__": nudged}, 3)
    assert result.status == "fail" and "not the one that the notebook's training makes" in result.message
