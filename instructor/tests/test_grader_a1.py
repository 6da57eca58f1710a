"""Assignment 1 (classifier guidance by hand): the grading of a folder of submissions, the sampler of task 4
included. The grader sends the exact Gaussian prior's eps-model and the exact noise-aware classifier of a new
setting to the submission's process, calls the student's sampler there, and compares its output with the
package's guided DDIM in its own process. A correct submission scores full automatic marks; a flipped sign half
marks with its hint; an open TODO zero; a sampler that calls the package's, or one hard-coded from a stored run,
zero; a table of task 4 typed in rather than run zero, with the table as stored and as recomputed in the feedback. (A flipped sign inside the sampler is named by the self-check's tests, tests of grading_a1.)"""

import json
import pathlib

import torch

from tutorial_pkg import grader, grading

import grading_folders  # instructor/tests/grading_folders.py

ROOT = pathlib.Path(__file__).resolve().parents[2]
A1 = "a1_classifier_guidance"
TEMPLATE = json.loads((ROOT / "book" / "assignments" / f"{A1}.ipynb").read_text())
PACKAGE = grader._package_names(TEMPLATE)
ANSWERS = ("a1-04", "a1-07", "a1-10", "a1-15", "a1-16")


def _solutions() -> dict:
    """The instructor's answer cells, without their solution markers."""
    nb = json.loads((ROOT / "instructor" / "solutions" / f"{A1}.ipynb").read_text())
    cells = {c.get("id"): "".join(c["source"]) for c in nb["cells"]}
    return {k: "\n".join(line for line in cells[k].split("\n") if "SOLUTION" not in line) for k in ANSWERS}


def _submission(folder: pathlib.Path, name: str, answers: dict) -> None:
    grading_folders.submission(TEMPLATE, folder, name, answers)


def _stored_sampler() -> str:
    """A sampler hard-coded from a stored run: the output of a correct sampler on the self-check's inputs of seed 0."""
    namespace = {"torch": torch, "sampling": __import__("tutorial_pkg.sampling", fromlist=["x"])}
    for cell, source in _solutions().items():
        if cell != "a1-16":  # the table needs the notebook's setting
            exec(source, namespace)
    stored = {}
    grading.check_guided_ddim(lambda *args: stored.setdefault("out", namespace["guided_ddim"](*args)), seed=0)
    return (f"STORED = {stored['out'].tolist()!r}\n"
            "def guided_ddim(eps_model, predictor, y, x_T, scale, schedule, num_steps):\n"
            "    return torch.tensor(STORED, dtype=torch.float64)\n")


# the table typed in from the exact DDIM column that the notebook prints, never run; stored with its printed output
TYPED_TABLE = """table = {0.0: dict(mean=0.003, std=0.961, se_mean=0.0215, se_std=0.0152, target_mean=0.0, target_std=1.0),
         1.0: dict(mean=1.198, std=0.421, se_mean=0.0094, se_std=0.0067, target_mean=1.2, target_std=0.447),
         2.0: dict(mean=1.574, std=0.178, se_mean=0.0040, se_std=0.0028, target_mean=1.333, target_std=0.333),
         4.0: dict(mean=1.640, std=0.028, se_mean=0.0006, se_std=0.0004, target_mean=1.412, target_std=0.243)}
"""
TYPED_OUTPUT = " 2.0  1.574 ± 0.0040       1.333  0.178 ± 0.0028      0.333\n"


def _pasted_table() -> str:
    """The reviewer's paste: the right table for seed 0, as the package's own sampler makes it, typed in as literals."""
    return f"table = {grading._guided_table_reference(0)!r}\n"


CHEAT = ("def guided_ddim(eps_model, predictor, y, x_T, scale, schedule, num_steps):\n"
         "    model = guidance.classifier_guided_model(eps_model, predictor, schedule, scale)\n"
         "    return sampling.ddim_sample(model, tuple(x_T.shape), schedule, num_steps=num_steps, cond=y, x_T=x_T)\n")


def test_the_sampler_task_allows_only_ddim_timesteps():
    allowed = ("sampling.ddim_timesteps",)
    assert grader.screen(_solutions()["a1-15"], PACKAGE, allowed) is None
    assert grader.screen(CHEAT, PACKAGE, allowed) is not None


def test_a_folder_of_submissions_of_assignment_1_is_graded(tmp_path):
    """One grading run: the correct and the wrong submission start a process each; the others start none."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    right = _solutions()
    _submission(folder, "correct", right)
    # wrong (one submission, so that the test starts one process fewer): the guided eps with a flipped sign (zero: a
    # named mistake that reverses guidance earns no half marks, but the hint names it), and a sampler hard-coded from a
    # stored run (zero, since the hidden inputs are new)
    flipped = right["a1-04"].replace("eps - scale", "eps + scale")
    assert flipped != right["a1-04"]
    # ... and the table pasted from the package's own sampler at seed 0: right numbers, not made by the student's sampler
    _submission(folder, "wrong", {**right, "a1-04": flipped, "a1-15": _stored_sampler(), "a1-16": _pasted_table()})
    # a named slip only (the factor 1 - alpha_bar without its square root): the table made by the student's own
    # functions earns half its points, the right table pasted beside the same slip none
    slip = right["a1-04"].replace("torch.sqrt(1 - alpha_bar_t)", "(1 - alpha_bar_t)")
    assert slip != right["a1-04"]
    _submission(folder, "slip", {**right, "a1-04": slip})
    _submission(folder, "slip_pasted", {**right, "a1-04": slip, "a1-16": _pasted_table()})
    # the flipped sign alone: no half marks for the guided eps, nor for the table that the student's functions make
    _submission(folder, "sign", {**right, "a1-04": flipped})
    _submission(folder, "todo", {})
    _submission(folder, "cheat", {"a1-15": CHEAT})
    _submission(folder, "typed", {**right, "a1-16": TYPED_TABLE})
    typed = json.loads((folder / "typed.ipynb").read_text())
    next(c for c in typed["cells"] if c.get("id") == "a1-16")["outputs"] = [
        {"name": "stdout", "output_type": "stream", "text": [TYPED_OUTPUT]}]
    (folder / "typed.ipynb").write_text(json.dumps(typed))
    out = tmp_path / "gradebook.csv"
    rows, feedback, points = grading_folders.grade(folder, out)

    assert points("correct", "auto_points") == points("correct", "auto_max") == 12
    assert float(rows["correct"]["written_max"]) == 4
    assert points("wrong", "guided eps (1)") == 0 and "check the sign" in feedback["wrong"]
    assert "reverses guidance: no half marks" in feedback["wrong"]
    assert points("wrong", "guided DDIM sampler (5)") == 0 and points("wrong", "auto_points") == 4
    assert points("wrong", "guided samples table (2)") == 0
    assert "must come from your `classifier_guided_eps`" in feedback["wrong"] and "`guided_ddim`" in feedback["wrong"]
    assert "your guided_ddim, run again at s = " in feedback["correct"]
    assert points("slip", "guided eps (1)") == 0.5 and points("slip", "guided samples table (2)") == 1
    assert points("sign", "guided eps (1)") == 0 and points("sign", "guided samples table (2)") == 0
    assert points("sign", "guided DDIM sampler (5)") == 5 and points("sign", "auto_points") == 9
    assert "check the sign" in feedback["sign"] and "must come from your `classifier_guided_eps`" in feedback["sign"]
    assert "what your own functions give" in feedback["slip"] and "has a named mistake" in feedback["slip"]
    assert points("slip_pasted", "guided samples table (2)") == 0
    assert "not what your own functions give either" in feedback["slip_pasted"]
    assert points("todo", "auto_points") == 0 and "TODO is still open" in feedback["todo"]
    assert points("cheat", "guided DDIM sampler (5)") == 0 and "refused" in feedback["cheat"]
    assert points("typed", "guided samples table (2)") == 0 and points("typed", "auto_points") == 10
    assert "not those of your seed" in feedback["typed"]
    assert "as stored" in feedback["typed"] and TYPED_OUTPUT.strip() in feedback["typed"]
    # beside the stored text, what the cell printed when the grader ran it (the correct submission stored none)
    assert "Printed by this cell when the grader ran it" in feedback["correct"]
    # with nothing stored (or only the template's output), the feedback says so, not that the two differ
    assert "No stored output" in feedback["correct"]
    assert "The stored and the re-run outputs differ" not in feedback["correct"]
    assert "recomputed by the grader from seed 0" in feedback["typed"] and " 2.0  1.576 ± 0.0039" in feedback["typed"]


def test_the_table_is_tied_to_the_students_sampler():
    """The grader runs the student's guided_ddim again at one scale; a table that its sampler does not give fails,
    even when it is the right table (here: a sampler that returns its starting points, beside the right table)."""
    table = grading._guided_table_reference(0)
    namespace = {"torch": torch, "sampling": grading.sampling}
    for cell, source in _solutions().items():
        if cell != "a1-16":
            exec(source, namespace)
    assert grading._tie_guided_table(namespace["guided_ddim"], table, seed=0, pick=2).passed
    result = grading._tie_guided_table(lambda eps, p, y, x_T, *rest: x_T, table, seed=0, pick=2)
    assert not result.passed and "not what your guided_ddim gives" in result.message
