"""The derived functions of assignments 3 and 4: A3's paired per-block difference with its t-interval, and A4's
standard deviation with its standard error by the delta method. A correct answer passes; each plausible slip fails
with its named hint (half marks in the grader); an answer that calls the package's comparison is refused; a TODO
reports without raising."""

import math

import pytest
import torch

from tutorial_pkg import grader, grading, stats


def _todo(*args):
    raise NotImplementedError


def paired_difference(a, b, *, se_of=None, q=None, correction=1):
    d = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    n = len(d)
    spread = d if se_of is None else torch.tensor(se_of(a, b), dtype=torch.float64)
    mean, se = d.mean().item(), spread.std(correction=correction).item() / math.sqrt(n)
    half = (stats.t_quantile(n - 1) if q is None else q(n)) * se
    return {"mean": mean, "se": se, "low": mean - half, "high": mean + half}


def std_and_se(v):
    v = v.double()
    s, m4 = v.std().item(), (v - v.mean()).pow(4).mean().item()
    return s, math.sqrt(max(m4 - s ** 4, 0.0) / v.numel()) / (2 * s)


@pytest.mark.parametrize("check, solution", [
    (grading.check_paired_difference, paired_difference),
    (grading.check_paired_difference, lambda a, b: {k: torch.tensor(v) for k, v in paired_difference(a, b).items()}),
    (grading.check_std_and_se, std_and_se),
    (grading.check_std_and_se, lambda v: tuple(torch.tensor(x) for x in std_and_se(v))),
])
@pytest.mark.parametrize("seed", [None, 1, 2])
def test_a_correct_answer_passes(check, solution, seed):
    result = check(solution, seed=seed)
    assert result.passed, result.message


@pytest.mark.parametrize("check", [grading.check_paired_difference, grading.check_std_and_se])
def test_a_todo_is_reported_without_raising(check, capsys):
    assert check(_todo).status == "not implemented"
    assert "[TODO]" in capsys.readouterr().out


def test_the_package_comparison_is_refused():
    for calls in (lambda a, b: {k: getattr(stats.paired(a, b).difference, k) for k in ("mean", "se", "low", "high")},
                  lambda a, b: {k: getattr(stats.replicates([x - y for x, y in zip(a, b)]), k)
                                for k in ("mean", "se", "low", "high")}):
        result = grading.check_paired_difference(calls)
        assert result.status == "fail" and result.message.startswith("this check does not accept a call of"), result
    assert stats.paired([1.0, 2.0, 4.0], [0.0, 1.0, 1.0]).difference.mean == pytest.approx(5 / 3)  # restored


PAIRED_SLIPS = [  # (the answer, its hint, whether the grader gives half marks)
    (lambda a, b: paired_difference(a, b, se_of=lambda a, b: a), "not of a alone", True),
    (lambda a, b: paired_difference(a, b, se_of=lambda a, b: b), "not of b alone", True),
    (lambda a, b: paired_difference(a, b, q=lambda n: 1.96), "not the normal 1.96", True),
    (lambda a, b: paired_difference(a, b, correction=0), "by n - 1, not n", True),
    (lambda a, b: paired_difference(a, b, q=stats.t_quantile), "n - 1 degrees of freedom, not n", True),
    (lambda a, b: paired_difference(b, a), "not b - a", True),
    (lambda a, b: paired_difference(a, b, q=lambda n: stats.t_quantile(5 - 1)), "not of the notebook's blocks", True),
    (lambda a, b: paired_difference(a, b, q=lambda n: stats.t_quantile(5)), "not of the notebook's blocks", True),
    (lambda a, b: {**paired_difference(a, b), "mean": 0.0}, "the values differ", False),
    (lambda a, b: paired_difference(a, b)["mean"], "return a dict", False),
]
STD_SLIPS = [
    (lambda v: (v.std().item(), v.std().item() / math.sqrt(2 * len(v))), "normal-theory value", True),
    (lambda v: (v.std().item(), v.std().item() / math.sqrt(2 * (len(v) - 1))), "normal-theory value", True),
    (lambda v: (v.std().item(), std_and_se(v)[1] * 2 * v.std().item()), "standard error of the variance", True),
    (lambda v: (v.std().item(), v.std().item() / math.sqrt(len(v))), "standard error of a mean", True),
    (lambda v: (v.std(correction=0).item(), std_and_se(v)[1]), "with n - 1", True),
    (lambda v: (v.var().item(), std_and_se(v)[1]), "the values differ", False),
    (lambda v: (v.std().item(), 2 * std_and_se(v)[1]), "the values differ", False),
    (lambda v: std_and_se(v)[1], "return a pair", False),
]


@pytest.mark.parametrize("check, wrong, hint, half", [(grading.check_paired_difference, *s) for s in PAIRED_SLIPS]
                         + [(grading.check_std_and_se, *s) for s in STD_SLIPS])
def test_a_plausible_slip_fails_with_its_hint_and_its_points(check, wrong, hint, half):
    result = check(wrong, seed=5)
    assert result.status == "fail" and hint in result.message, result.message
    task = next(t for tasks in grader.ASSIGNMENTS.values() for t in tasks
                if t.kind == "function" and t.check.__closure__ and
                t.check.__closure__[0].cell_contents == check.__name__)
    assert grader._points(task, result)[0] == (task.points / 2 if half else 0.0)


@pytest.mark.parametrize("seed", range(8))
def test_a_t_quantile_from_the_notebooks_blocks_scores_the_same_at_every_seed(seed):
    """The notebook's 5 blocks, blocks - 1 degrees of freedom for every list: right at 5 blocks only. The check calls
    the function at fixed block counts, so the slip is half marks with its hint at every seed, never 2, 1 or 0 by
    which block count a seed draws."""
    wrong = lambda a, b: paired_difference(a, b, q=lambda n: stats.t_quantile(5 - 1))
    result = grading.check_paired_difference(wrong, seed=seed)
    assert result.status == "fail" and "len(a) - 1, not of the notebook's blocks" in result.message, result.message
    task = next(t for t in grader.ASSIGNMENTS["a3_energy_target"] if t.name == "paired difference")
    assert grader._points(task, result)[0] == task.points / 2


def test_the_tasks_are_graded_and_call_the_students_functions():
    tasks = {t.name: t for t in grader.ASSIGNMENTS["a3_energy_target"] + grader.ASSIGNMENTS["a4_calibrated_regressor"]}
    assert (tasks["paired difference"].cell, tasks["paired difference"].allowed) == ("a3-16", ("stats.t_quantile",))
    assert tasks["std and its SE"].cell == "a4-21" and tasks["std and its SE"].allowed == ()
    assert grader._FUNCTION["paired difference"] == "paired_difference"
    assert grader._FUNCTION["std and its SE"] == "std_and_se"


def test_the_delta_method_standard_error_is_the_spread_of_s_over_draws():
    """The reference against Monte Carlo: for normal data, the delta-method SE is about s / sqrt(2n) and matches the
    spread of s over independent draws; for heavy tails it is larger than s / sqrt(2n), as the spread is."""
    g = torch.Generator().manual_seed(0)
    n = 400
    for heavy in (False, True):
        v = torch.randn(1000, n, generator=g, dtype=torch.float64)
        if heavy:
            v = v * (0.4 * torch.randn(1000, n, generator=g, dtype=torch.float64)).exp()
        s, se = zip(*(std_and_se(row) for row in v))
        spread, mean_se, normal = torch.tensor(s).std().item(), sum(se) / len(se), sum(s) / len(s) / math.sqrt(2 * n)
        assert abs(mean_se / spread - 1) < 0.1, (heavy, mean_se, spread)  # 1000 draws: the spread to about 2 %
        assert (mean_se > 1.3 * normal) if heavy else abs(mean_se / normal - 1) < 0.05, (heavy, mean_se, normal)


def test_the_grader_scores_the_paired_difference_in_its_own_cell(tmp_path):
    """Assignment 3 graded end to end: a right paired_difference earns the task's 2 points, the normal 1.96 half of
    them with its hint, a call of stats.paired is refused by the screen (zero), and a TODO earns nothing."""
    import json
    import pathlib

    import grading_folders  # instructor/tests/grading_folders.py

    root = pathlib.Path(__file__).resolve().parents[2]
    template = json.loads((root / "book" / "assignments" / "a3_energy_target.ipynb").read_text())
    right = ("def paired_difference(a, b):\n"
             "    d = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)\n"
             "    mean, se = d.mean().item(), d.std().item() / math.sqrt(len(d))\n"
             "    half = {q} * se\n"
             "    return {{'mean': mean, 'se': se, 'low': mean - half, 'high': mean + half}}\n")
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name, source in {"right": right.format(q="stats.t_quantile(len(d) - 1)"), "normal": right.format(q="1.96"),
                         "package": "def paired_difference(a, b):\n    return stats.paired(a, b).difference\n",
                         "todo": None}.items():
        grading_folders.submission(template, folder, name, {} if source is None else {"a3-16": source})
    rows, feedback, points = grading_folders.grade(folder, tmp_path / "book.csv", seed=11)
    assert points("right", "paired difference (2)") == 2.0
    assert points("normal", "paired difference (2)") == 1.0 and "not the normal 1.96" in feedback["normal"]
    assert points("package", "paired difference (2)") == 0.0
    assert "the package's stats is not accepted in this answer" in feedback["package"]
    assert "this task may use stats.t_quantile" in feedback["package"]
    assert points("todo", "paired difference (2)") == 0.0


def test_an_answer_that_changes_the_notebooks_seed_scores_zero_on_its_report(tmp_path):
    """Assignment 3's setup cell fixes the seed of every scale's run; an answer cell that sets another seed (to shop
    for the verdicts it wants to claim) gets no points for its report, whose numbers are right for that other seed,
    and the feedback says why. The same report from the notebook's seed earns its points."""
    import json
    import pathlib

    import grading_folders  # instructor/tests/grading_folders.py

    root = pathlib.Path(__file__).resolve().parents[2]
    template = json.loads((root / "book" / "assignments" / "a3_energy_target.ipynb").read_text())
    solution = json.loads((root / "instructor" / "solutions" / "a3_energy_target.ipynb").read_text())
    report = next("".join(c["source"]) for c in solution["cells"] if c.get("id") == "a3-06")
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name, source in {"notebooks_seed": report, "own_seed": "seed = 7\n" + report}.items():
        grading_folders.submission(template, folder, name, {"a3-06": source})
    rows, feedback, points = grading_folders.grade(folder, tmp_path / "book.csv", seed=5)
    assert points("notebooks_seed", "energy report (2)") == 2.0
    assert points("own_seed", "energy report (2)") == 0.0
    assert "an answer cell set seed = 7, but cell a3-02 sets seed = 0" in feedback["own_seed"]


def test_std_and_se_accepts_forms_that_agree_with_the_delta_method_to_first_order():
    """The delta method is first order: the standard deviation with n inside m4 - s^4, or n - 1 under the square root,
    changes the standard error by a term of order 1/n, and passes; the normal-theory value does not."""
    import math

    from tutorial_pkg import grading

    def moments(v):
        return v.std().item(), v.std(correction=0).item(), len(v), (v - v.mean()).pow(4).mean().item()

    def with_n_inside(v):
        s, s0, n, m4 = moments(v)
        return s, math.sqrt(max(m4 - s0 ** 4, 0.0) / n) / (2 * s)

    def with_n_minus_1(v):
        s, _, n, m4 = moments(v)
        return s, math.sqrt(max(m4 - s ** 4, 0.0) / (n - 1)) / (2 * s)

    def normal_theory(v):
        s, _, n, _ = moments(v)
        return s, s / math.sqrt(2 * n)

    for seed in range(4):
        assert grading.check_std_and_se(with_n_inside, seed=seed).status == "pass"
        assert grading.check_std_and_se(with_n_minus_1, seed=seed).status == "pass"
        assert grading.check_std_and_se(normal_theory, seed=seed).status == "fail"
