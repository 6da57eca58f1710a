"""Grading assignment 7 (alanine dipeptide, chapter 11), and its self-checks.

A folder of submissions is graded into a gradebook in one call: a correct submission scores full automatic marks;
a wrong one half marks on a named mistake, with its hint, and zero on an answer hard-coded from a stored run; an
open TODO zero; each way round the self-checks' in-process refusal (a fresh function object from the saved code, a
second copy of the module, the code object restored inside the answer, exec of the copied source, package
functions that compute the same thing) is refused before it runs and scores zero on the task it cheats. Then each
self-check is run on a correct answer and on each wrong one it names."""

import json
import math
import pathlib

import pytest
import torch

from tutorial_pkg import grader, grading, stats

import grading_folders  # instructor/tests/grading_folders.py
from tutorial_pkg.systems import internal_coordinates as ic

pytest.importorskip("openmm")

ROOT = pathlib.Path(__file__).resolve().parents[2]
A7 = "a7_alanine_dipeptide"
TEMPLATE = json.loads((ROOT / "book" / "assignments" / f"{A7}.ipynb").read_text())
PACKAGE = grader._package_names(TEMPLATE)

PLACE = """def place(x_a, x_b, x_c, bond, angle, torsion):
    b_hat = (x_c - x_b) / (x_c - x_b).norm(dim=-1, keepdim=True)
    normal = torch.linalg.cross(x_b - x_a, b_hat)
    n_hat = normal / normal.norm(dim=-1, keepdim=True)
    m_hat = torch.linalg.cross(n_hat, b_hat)
    r, c, s = bond[:, None], torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    return x_c + r * (-c * b_hat + s * torch.cos(torsion)[:, None] * m_hat + s * torch.sin(torsion)[:, None] * n_hat)
"""
BAND = """def band_share(core, band):
    c, b = core.double(), band.double()
    p = (b * c).sum().item() / b.sum().item()
    z = b * (c - p)
    g = stats.statistical_inefficiency(z)
    return p, math.sqrt(g * z.pow(2).mean().item() / len(z)) / b.mean().item()
"""
# honest, and accepted by the band-share check: numpy, and z's variance with n - 1
BAND_UNBIASED = """import numpy as np
def band_share(core, band):
    c = np.asarray(core, dtype=float); b = np.asarray(band, dtype=float)
    p = float((b * c).sum() / b.sum())
    z = b * (c - p)
    g = stats.statistical_inefficiency(torch.from_numpy(z))
    se = float(np.sqrt(g * z.var(ddof=1) / len(z)) / b.mean())
    return p, se
"""
REPORT = """n, num_steps = 64, 10
seed = 0
f = sampling.ddim_sample(eps_model, (n, features.dim), schedule, num_steps=num_steps,
                         cond=torch.full((n,), E_target, device=device), device=device,
                         generator=torch.Generator(device).manual_seed(seed))
samples = features.decode(f.cpu().double())
labels = system.basin(*system.torsions(samples))[0]
report = {}
for k, core in enumerate(BASINS):
    p = (labels == k).double().mean().item()
    report[core] = {"share": p, "se": math.sqrt(p * (1 - p) / n)}
"""
# each way round the in-process refusal, as an answer to "write one NeRF step" (or the band share)
CHEATS = {
    "function object": "import types\n_nerf = types.FunctionType(ic.nerf.__code__, ic.nerf.__globals__)\n"
                       "def place(x_a, x_b, x_c, bond, angle, torsion):\n"
                       "    return _nerf(x_a, x_b, x_c, bond, angle, torsion)\n",
    "module copy": "import importlib.util\n"
                   "spec = importlib.util.spec_from_file_location('copy', ic.__file__)\n"
                   "copy = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(copy)\n"
                   "def place(x_a, x_b, x_c, bond, angle, torsion):\n"
                   "    return copy.nerf(x_a, x_b, x_c, bond, angle, torsion)\n",
    "code restored": "_code = ic.nerf.__code__\n"
                     "def place(x_a, x_b, x_c, bond, angle, torsion):\n    refuser = ic.nerf.__code__\n"
                     "    ic.nerf.__code__ = _code\n    try:\n"
                     "        return ic.nerf(x_a, x_b, x_c, bond, angle, torsion)\n"
                     "    finally:\n        ic.nerf.__code__ = refuser\n",
    "exec of the source": "import inspect\nnamespace = {}\nexec(inspect.getsource(ic._place), namespace)\n"
                          "place = namespace['_place']\n",
    "the package's private step": "def place(x_a, x_b, x_c, bond, angle, torsion):\n"
                                  "    return ic._place(x_a, x_b, x_c, bond, angle, torsion)\n",
    "imported by name": "from tutorial_pkg.systems.internal_coordinates import nerf as place\n",
    "through torch": "def place(x_a, x_b, x_c, bond, angle, torsion):\n"
                     "    return torch.sys.modules['tutorial_pkg.systems.internal_coordinates'].nerf(\n"
                     "        x_a, x_b, x_c, bond, angle, torsion)\n",
    "getattr": "def place(x_a, x_b, x_c, bond, angle, torsion):\n"
               "    return getattr(ic, 'nerf')(x_a, x_b, x_c, bond, angle, torsion)\n",
}
# a package function that computes the standard error of a share by the effective size: not the task's call
BAND_CHEAT = ("def band_share(core, band):\n    e = stats.share(core[band], correlated=True)\n"
              "    return e.mean, e.se\n")


VERDICT = """def gap_verdict(p_gen, se_gen, dof_gen, p_ref, se_ref, dof_ref):
    se = math.sqrt(se_gen ** 2 + se_ref ** 2)
    return p_gen - p_ref, se, abs(p_gen - p_ref) > stats.t_quantile(min(dof_gen, dof_ref)) * se
"""
WELCH = """def gap_verdict(p_gen, se_gen, dof_gen, p_ref, se_ref, dof_ref):
    se = math.sqrt(se_gen ** 2 + se_ref ** 2)
    dof = se ** 4 / (se_gen ** 4 / dof_gen + se_ref ** 4 / dof_ref)
    return p_gen - p_ref, se, abs(p_gen - p_ref) > stats.t_quantile(max(dof, 1.0)) * se
"""
Z_RULE = VERDICT.replace("stats.t_quantile(min(dof_gen, dof_ref))", "1.96")
CONSTANT = VERDICT.replace("abs(p_gen - p_ref) > stats.t_quantile(min(dof_gen, dof_ref)) * se", "False")
LINEAR = VERDICT.replace("math.sqrt(se_gen ** 2 + se_ref ** 2)", "se_gen + se_ref")
BATCH_DOF = VERDICT.replace("min(dof_gen, dof_ref)", "dof_gen")  # right wherever the batch is the smaller
LARGER_DOF = VERDICT.replace("min(dof_gen, dof_ref)", "max(dof_gen, dof_ref)")


def _gaps_cell() -> str:
    """The instructor's figure-and-gaps cell (a7-17), the answer of the value task, without its solution markers."""
    nb = json.loads((ROOT / "instructor" / "solutions" / f"{A7}.ipynb").read_text())
    text = "".join(next(c for c in nb["cells"] if c.get("id") == "a7-17")["source"])
    return "\n".join(line for line in text.split("\n") if "SOLUTION" not in line)


def _stored_answer() -> str:
    """A band share hard-coded from a stored run: the correct answer on the self-check's inputs of seed 0."""
    namespace = {"torch": torch, "math": math, "stats": stats}
    exec(BAND, namespace)
    stored = []
    grading.check_band_share(lambda *args: stored.append(namespace["band_share"](*args)) or stored[-1], seed=0)
    return f"def band_share(core, band):\n    return {stored[0]!r}\n"


def _submission(folder: pathlib.Path, name: str, answers: dict) -> None:
    grading_folders.submission(TEMPLATE, folder, name, answers)


def test_each_way_round_the_refusal_is_refused_before_it_runs():
    for cheat, source in CHEATS.items():
        assert grader.screen(source, PACKAGE) is not None, cheat
    allowed = ("stats.statistical_inefficiency",)
    assert grader.screen(PLACE, PACKAGE) is None and grader.screen(BAND, PACKAGE, allowed) is None
    assert "stats" in grader.screen(BAND_CHEAT, PACKAGE, allowed)
    assert grader.screen(REPORT, PACKAGE, ("sampling.ddim_sample",)) is None
    assert grader.screen(REPORT.replace("features.decode", "ic.InternalFeatures.decode"), PACKAGE,
                         ("sampling.ddim_sample",)) is not None


def test_a_folder_of_submissions_is_graded_into_a_gradebook(tmp_path):
    """One call, eleven child processes (the correct, the unbiased, the slip, the wrong, the seed cheat, the two
    fabricated submissions and the four verdicts; the others are refused or open and start none)."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    _submission(folder, "correct", {"a7-04": PLACE, "a7-09": BAND, "a7-14": REPORT, "a7-23": VERDICT, "a7-17": _gaps_cell()})
    # wrong: a flipped torsion (a named mistake: half), a band share hard-coded from a stored run (zero, the hidden
    # inputs are new), and the report's standard errors without the square root (a named mistake: half)
    _submission(folder, "wrong", {"a7-04": PLACE.replace("torch.sin(torsion)", "-torch.sin(torsion)"),
                                  "a7-09": _stored_answer(),
                                  "a7-14": REPORT.replace("math.sqrt(p * (1 - p) / n)", "p * (1 - p) / n"),
                                  "a7-17": "gaps = {core: (0.0, 0.05, False) for core in BASINS}\n"})
    # the gaps from the student's own reference, which divides by n - 1: graded from that reference
    _submission(folder, "unbiased", {"a7-04": PLACE, "a7-09": BAND_UNBIASED, "a7-14": REPORT, "a7-23": VERDICT, "a7-17": _gaps_cell()})
    # a named slip in band_share (frames counted as independent): half of that task, and the gaps, graded on the
    # student's own reference, are not marked down again
    _submission(folder, "slip", {"a7-04": PLACE, "a7-09": BAND.replace("g = stats.statistical_inefficiency(z)", "g = 1.0"),
                                 "a7-14": REPORT, "a7-23": VERDICT, "a7-17": _gaps_cell()})
    # a reference entry fabricated at the top of the answer cell, and the gaps and figure made from it: the grader
    # takes the reference as cell a7-12 made it, and ties every core, so it scores zero at any hidden seed
    for core in ("C5", "C7eq"):
        _submission(folder, f"fabricated_{core}", {"a7-04": PLACE, "a7-09": BAND, "a7-14": REPORT, "a7-23": VERDICT,
                                                   "a7-17": f"reference[{core!r}] = (0.60, 0.010)\n" + _gaps_cell()})
    # another batch chosen by rebinding the seed and the grader's copy of it: the report cell is refused, and the
    # gaps, which read its variables, say that they depend on that cell (not "fill in gaps")
    _submission(folder, "seedcheat", {"a7-04": PLACE, "a7-09": BAND, "a7-23": VERDICT, "a7-17": _gaps_cell(),
                                      "a7-14": REPORT.replace("seed = 0\n", "seed = 3\n__seed_as_set__ = 3\n")})
    # the gaps' verdict: a constant False (no gap of the notebook's seed is resolved under any rule, so only the
    # hidden cases of gap_verdict can catch it), the normal quantile, and the standard errors added as numbers
    # (named slips: half of the verdict, and the gaps graded on the student's own function); the batch's degrees of
    # freedom always, and the larger of the two, which the hidden cases with a short reference catch
    for label, source in (("constant", CONSTANT), ("zrule", Z_RULE), ("linear", LINEAR), ("welch", WELCH),
                          ("batchdof", BATCH_DOF), ("larger", LARGER_DOF)):
        _submission(folder, f"verdict_{label}", {"a7-04": PLACE, "a7-09": BAND, "a7-14": REPORT, "a7-23": source,
                                                 "a7-17": _gaps_cell()})
    _submission(folder, "todo", {})
    for k, source in enumerate(CHEATS.values()):
        _submission(folder, f"cheat_{k}", {"a7-04": source})
    _submission(folder, "cheat_share", {"a7-09": BAND_CHEAT})
    out = tmp_path / "gradebook.csv"
    rows, feedback, points = grading_folders.grade(folder, out)  # hidden inputs: not the seed 0 of the stored run

    assert points("correct", "auto_points") == points("correct", "auto_max") == 13, feedback["correct"]
    assert points("unbiased", "auto_points") == 13, feedback["unbiased"]
    assert points("wrong", "core-state gaps (1)") == 0 and "must come from your `band_share`" in feedback["wrong"]
    assert "your band_share, run again on each of the four cores" in feedback["correct"]
    for core in ("C5", "C7eq"):
        assert points(f"fabricated_{core}", "core-state gaps (1)") == 0, feedback[f"fabricated_{core}"]
        assert f"gaps[{core!r}] is not" in feedback[f"fabricated_{core}"]
    assert "conservative (dof" in feedback["correct"] and "Welch (dof" in feedback["correct"]  # the recomputed verdicts
    assert points("verdict_welch", "auto_points") == 13, feedback["verdict_welch"]
    assert points("verdict_constant", "gap verdict (2)") == points("verdict_constant", "core-state gaps (1)") == 0
    assert "must come from your `gap_verdict`" in feedback["verdict_constant"]
    assert points("verdict_zrule", "gap verdict (2)") == 1 and "normal quantile" in feedback["verdict_zrule"]
    assert points("verdict_zrule", "core-state gaps (1)") == 1, feedback["verdict_zrule"]  # not paid twice
    assert points("verdict_linear", "gap verdict (2)") == 1 and "added as numbers" in feedback["verdict_linear"]
    assert points("verdict_linear", "core-state gaps (1)") == 1, feedback["verdict_linear"]
    assert points("verdict_batchdof", "gap verdict (2)") == 1, feedback["verdict_batchdof"]
    assert "always takes the batch's degrees of freedom" in feedback["verdict_batchdof"]
    assert points("verdict_larger", "gap verdict (2)") == 1, feedback["verdict_larger"]
    assert "larger of the two degrees of freedom" in feedback["verdict_larger"]
    assert points("slip", "band share (5)") == 2.5 and points("slip", "core-state gaps (1)") == 1, feedback["slip"]
    assert "your band_share, run again on" in feedback["slip"]
    # the written answer beside the reference, the batch's shares and the gaps that the grader's re-run gave (with a
    # named slip in band_share, its own reference); where the gaps failed, a line that they are not the student's own
    think = feedback["correct"].split("## Think! what limits the comparison")[1].split("Rubric:")[0]
    section = think.split(grader.NUMBERS_HEADING)[1]
    assert "C5  0.454  0.024    448             0.021" in section and "C5: 25 of 64 molecules" in section
    assert "C5:  -6.3 ± 6.5; conservative (dof 63): not resolved" in section
    section = feedback["slip"].split("## Think! what limits the comparison")[1].split("Rubric:")[0]
    assert "C5  0.454  0.021    560" in section.split(grader.NUMBERS_HEADING)[1]
    think = feedback["wrong"].split("## Think! what limits the comparison")[1].split("Rubric:")[0]
    assert "No re-run numbers exist" in think and "were not shown to be ones that the student's own" in think
    assert float(rows["correct"]["written_max"]) == 6
    assert points("wrong", "NeRF placement (4)") == 2 and "sign of the torsion" in feedback["wrong"]
    assert points("wrong", "band share (5)") == 0 and "the values differ" in feedback["wrong"]
    assert points("wrong", "core-state report (1)") == 0.5 and "square root" in feedback["wrong"]
    assert points("todo", "auto_points") == 0 and "TODO is still open" in feedback["todo"]
    assert points("seedcheat", "core-state report (1)") == points("seedcheat", "core-state gaps (1)") == 0
    assert "__seed_as_set__ is not accepted" in feedback["seedcheat"], feedback["seedcheat"]
    gaps_feedback = feedback["seedcheat"].split("## core-state gaps")[1].split("## ")[0]
    assert "answer cell a7-14, which was refused" in gaps_feedback and "depends on that cell" in gaps_feedback, \
        gaps_feedback
    assert "not implemented yet" not in gaps_feedback
    for k, cheat in enumerate(CHEATS):
        assert points(f"cheat_{k}", "NeRF placement (4)") == 0, cheat
        assert "refused" in feedback[f"cheat_{k}"], cheat
    assert points("cheat_share", "band share (5)") == 0 and "refused" in feedback["cheat_share"]


# -- the self-checks, on a correct answer and on each wrong one they name ---------------------------------------
def _namespace(source: str) -> dict:
    namespace = {"torch": torch, "math": math, "stats": stats}
    exec(source, namespace)
    return namespace


place = _namespace(PLACE)["place"]
band_share = _namespace(BAND)["band_share"]

WRONG_PLACES = {
    "sign of the torsion": lambda a, b, c, r, t, s: place(a, b, c, r, t, -s),
    "the angles come in radians": lambda a, b, c, r, t, s: place(a, b, c, r, torch.deg2rad(t), torch.deg2rad(s)),
    "the torsion comes in radians": lambda a, b, c, r, t, s: place(a, b, c, r, t, torch.deg2rad(s)),
    "not +r cos(theta)": lambda a, b, c, r, t, s: place(a, b, c, r, math.pi - t, s),
    "off by 180 degrees": lambda a, b, c, r, t, s: place(a, b, c, r, t, s + math.pi),
    "points back from c to b": lambda a, b, c, r, t, s: place(a, b, c, r, math.pi - t, s + math.pi),
    "start from x_c": lambda a, b, c, r, t, s: place(a, b, c, r, t, s) - c + b,
    "bond length": lambda a, b, c, r, t, s: place(a, b, c, torch.ones_like(r), t, s),
    "the values differ": lambda a, b, c, r, t, s: place(a, b, c, r, t, s) + 0.01,
}


def test_the_nerf_check_passes_a_correct_step_and_names_each_mistake():
    assert grading.check_nerf_place(place).status == "pass"
    for hint, wrong in WRONG_PLACES.items():
        result = grading.check_nerf_place(wrong, seed=4)
        assert result.status == "fail" and hint in result.message, (hint, result)
    refused = grading.check_nerf_place(lambda *args: ic.nerf(*args))
    assert refused.status == "fail" and "does not accept" in refused.message
    todo = grading.check_nerf_place(lambda *args: (_ for _ in ()).throw(NotImplementedError))
    assert todo.status == "not implemented"


def _parts(core, band):
    c, b = core.double(), band.double()
    p = (b * c).sum().item() / b.sum().item()
    z = b * (c - p)
    return c, b, p, z, stats.statistical_inefficiency(z)


def _se(core, band, how):
    c, b, p, z, g = _parts(core, band)
    n_band, var = b.sum().item(), p * (1 - p)
    return p, {"independent": lambda: math.sqrt(var / n_band), "times g": lambda: math.sqrt(var / (n_band * g)),
               "variance": lambda: band_share(core, band)[1] ** 2,
               "g not sqrt": lambda: band_share(core, band)[1] * math.sqrt(g),
               "subseries": lambda: math.sqrt(stats.statistical_inefficiency(c[band]) * var / n_band),
               "g of the core": lambda: math.sqrt(stats.statistical_inefficiency(c) * z.pow(2).mean().item()
                                                  * len(z)) / n_band,
               "g of b c": lambda: math.sqrt(stats.statistical_inefficiency(b * c) * z.pow(2).mean().item()
                                             * len(z)) / n_band,
               "no ratio": lambda: math.sqrt(g * z.pow(2).mean().item() / len(z))}[how]()


WRONG_SHARES = {
    "as independent draws": lambda core, band: _se(core, band, "independent"),
    "n / g, not n g": lambda core, band: _se(core, band, "times g"),
    "the square root of the variance": lambda core, band: _se(core, band, "variance"),
    "by sqrt(g), not by g": lambda core, band: _se(core, band, "g not sqrt"),
    "not consecutive frames": lambda core, band: (_se(core, band, "subseries") if not bool(band.all())
                                                  else band_share(core, band)),
    "not of the core indicator": lambda core, band: _se(core, band, "g of the core"),
    "not of b c": lambda core, band: _se(core, band, "g of b c"),
    "a ratio of two means": lambda core, band: _se(core, band, "no ratio"),
    "not among all frames": lambda core, band: ((core & band).double().mean().item(), band_share(core, band)[1]),
    "return a pair": lambda core, band: band_share(core, band)[1],
}


def test_the_band_share_check_passes_the_chapters_estimator_and_names_each_mistake():
    assert grading.check_band_share(band_share).status == "pass"
    # the unbiased variance of z (n - 1) is as good
    c_var = lambda core, band: (_parts(core, band)[2], math.sqrt(_parts(core, band)[4] * _parts(core, band)[3].var().item()
                                                                 / len(core)) / band.double().mean().item())
    assert grading.check_band_share(c_var).status == "pass"
    for hint, wrong in WRONG_SHARES.items():
        result = grading.check_band_share(wrong, seed=6)
        assert result.status == "fail" and hint in result.message, (hint, result)
    refused = grading.check_band_share(lambda core, band: (stats.share(core[band], correlated=True).mean, 0.0))
    assert refused.status == "fail" and "does not accept" in refused.message


FLOAT32_SHARE = """def band_share(core, band):
    c, b = core.float(), band.float()
    p = (b * c).sum() / b.sum()
    z = b * (c - p)
    g = stats.statistical_inefficiency(z)
    se = (g * (z ** 2).mean() / len(z)).sqrt() / b.mean()
    return p.item(), se.item()
"""


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_share_computed_in_float32_passes_and_a_count_off_by_one_does_not(seed):
    """The task names no dtype: a float32 share is off by about 1e-8, far less than one frame of the band."""
    share32 = _namespace(FLOAT32_SHARE)["band_share"]
    assert grading.check_band_share(share32, seed=seed).status == "pass"
    off_by_one = lambda core, band: (((core & band).sum().item() + 1) / band.sum().item(), band_share(core, band)[1])
    assert grading.check_band_share(off_by_one, seed=seed).status == "fail"


@pytest.fixture(scope="module")
def setting():
    _, features, eps_model, schedule, target = grader._alanine()  # the grader's own setting, loaded once
    system = grader._alanine()[0]
    return dict(system=system, features=features, eps_model=eps_model, schedule=schedule, target=target, n=16,
                num_steps=4)


def test_the_core_report_check_regenerates_the_molecules_and_names_each_mistake(setting):
    from tutorial_pkg import sampling
    from tutorial_pkg.systems.alanine_dipeptide import BASINS

    n, system, features = setting["n"], setting["system"], setting["features"]
    f = sampling.ddim_sample(setting["eps_model"], (n, features.dim), setting["schedule"],
                             num_steps=setting["num_steps"], cond=torch.full((n,), setting["target"]),
                             generator=torch.Generator().manual_seed(5))
    samples = features.decode(f.double())
    labels = system.basin(*system.torsions(samples))[0]
    shares = [(labels == k).double().mean().item() for k in range(len(BASINS))]

    def report(share=lambda p, k: p, se=lambda p: math.sqrt(p * (1 - p) / n)):
        return {core: {"share": share(p, k), "se": se(p)} for k, (core, p) in enumerate(zip(BASINS, shares))}

    check = lambda rep, x=samples, seed=5: grading.check_core_report(rep, x, seed=seed, **setting)  # noqa: E731
    assert check(report()).status == "pass"
    assert check(report(se=lambda p: math.sqrt(p * (1 - p) / (n - 1)))).status == "pass"
    assigned = max(int((labels >= 0).sum()), 1)
    wrongs = {
        "decode them into molecules": check(report(), f.double()),
        "the samples are not": check(report(), seed=6),
        "seed must be": check(report(), seed="5"),
        "square root": check(report(se=lambda p: p * (1 - p) / n)),
        "divide by n": check(report(se=lambda p: math.sqrt(p * (1 - p)))),
        "report must be": check({"C5": {"share": 0.0, "se": 0.0}}),
    }
    assert 0 < assigned < n  # seed 5: molecules in cores and in transition regions
    wrongs["transition regions"] = check(report(share=lambda p, k: int((labels == k).sum()) / assigned))
    wrongs["not percentages"] = check(report(share=lambda p, k: 100 * p))
    for hint, result in wrongs.items():
        assert result.status == "fail" and hint in result.message, (hint, result)
    assert check(None).status == "not implemented"


@pytest.mark.parametrize("seed", range(20))
def test_the_gap_verdict_check_accepts_both_rules_and_names_each_slip(seed):
    made = {label: _namespace(source)["gap_verdict"]
            for label, source in (("conservative", VERDICT), ("welch", WELCH), ("z", Z_RULE), ("constant", CONSTANT),
                                  ("linear", LINEAR))}
    assert grading.check_gap_verdict(made["conservative"], seed=seed).passed
    assert grading.check_gap_verdict(made["welch"], seed=seed).passed
    assert "normal quantile" in grading.check_gap_verdict(made["z"], seed=seed).message
    assert "added as numbers" in grading.check_gap_verdict(made["linear"], seed=seed).message
    assert grading.check_gap_verdict(made["constant"], seed=seed).message.startswith("the values differ")
    summed = lambda *a: (a[0] - a[3], math.hypot(a[1], a[4]),  # noqa: E731 - the pooled t-test's dof
                         abs(a[0] - a[3]) > stats.t_quantile(a[2] + a[5]) * math.hypot(a[1], a[4]))
    assert "sum of the two degrees of freedom" in grading.check_gap_verdict(summed, seed=seed).message
    for source, words in ((BATCH_DOF, "always takes the batch's degrees of freedom"),
                          (LARGER_DOF, "larger of the two degrees of freedom")):
        result = grading.check_gap_verdict(_namespace(source)["gap_verdict"], seed=seed)
        assert result.status == "fail" and words in result.message, result
    cases = grading._gap_cases(grading._generator(seed))
    assert {made["conservative"](*c)[2] for c in cases} == {True, False}     # both verdicts among the hidden cases
    assert any(c[2] > c[5] for c in cases) and any(c[2] < c[5] for c in cases)  # either estimate the smaller


WELCH_SLIP = WELCH.replace("se_gen ** 4 / dof_gen + se_ref ** 4 / dof_ref", "se_gen ** 2 / dof_gen + se_ref ** 2 / dof_ref")
NEAR_MISSES = {  # dof rules a little off an accepted one: each claims more, or less, than the data give
    "min + 1": "min(dof_gen, dof_ref) + 1", "min + 2": "min(dof_gen, dof_ref) + 2",
    "min - 1": "min(dof_gen, dof_ref) - 1", "min / 2": "max(min(dof_gen, dof_ref) / 2, 1)",
    "welch - 1": "welch - 1", "welch + 1": "welch + 1", "halfway": "(min(dof_gen, dof_ref) + welch) / 2",
    "welch rounded up": "int(welch) + 1"}


@pytest.mark.parametrize("seed", range(40))
def test_the_gap_verdict_check_fails_every_near_miss_rule_on_every_seed(seed):
    for label, rule in NEAR_MISSES.items():
        source = WELCH.replace("return p_gen - p_ref", "welch = max(dof, 1.0)\n    return p_gen - p_ref").replace(
            "stats.t_quantile(max(dof, 1.0))", f"stats.t_quantile({rule})")
        result = grading.check_gap_verdict(_namespace(source)["gap_verdict"], seed=seed)
        assert result.status == "fail" and result.message.startswith("the values differ"), (label, result)
    result = grading.check_gap_verdict(_namespace(WELCH_SLIP)["gap_verdict"], seed=seed)
    assert result.status == "fail" and "Welch's denominator has se^4 / dof" in result.message, result
    assert grading.check_gap_verdict(_namespace(WELCH)["gap_verdict"], seed=seed).message.startswith(
        "its verdicts agree with Welch-Satterthwaite's")
    floored = WELCH.replace("return p_gen - p_ref", "welch = max(dof, 1.0)\n    return p_gen - p_ref").replace(
        "stats.t_quantile(max(dof, 1.0))", "stats.t_quantile(int(welch))")  # Welch's rounded down, as textbooks do
    assert grading.check_gap_verdict(_namespace(floored)["gap_verdict"], seed=seed).status == "pass"


def test_the_gaps_check_recomputes_them_from_the_report_and_the_reference():
    from tutorial_pkg import stats
    from tutorial_pkg.systems.alanine_dipeptide import BASINS
    n = 64
    shares = dict(zip(BASINS, (0.70, 0.20, 0.0, 0.05)))
    report = {c: {"share": p, "se": math.sqrt(p * (1 - p) / n)} for c, p in shares.items()}
    reference = dict(zip(BASINS, ((0.45, 0.024), (0.23, 0.019), (0.004, 0.002), (0.002, 0.0))))

    def gaps(sign=1, both=True, linear=False, welch=False):
        out = {}
        for c in BASINS:
            (p_ref, se_ref), p, se = reference[c], report[c]["share"], report[c]["se"]
            dof = max(p_ref * (1 - p_ref) / se_ref ** 2 - 1, 1.0) if se_ref > 0 else 1.0
            se_gap = (se + se_ref if linear else math.hypot(se, se_ref)) if both else se
            parts = se ** 4 / (n - 1) + se_ref ** 4 / dof
            dof_gap = (se ** 2 + se_ref ** 2) ** 2 / parts if welch and parts > 0 else min(dof, n - 1)
            out[c] = (sign * (p - p_ref), se_gap, abs(p - p_ref) > stats.t_quantile(dof_gap) * se_gap)
        return out

    check = lambda g: grading.check_core_gaps(g, report=report, reference=reference, n=n)  # noqa: E731
    assert check(gaps()).passed
    assert any(resolved for _, _, resolved in gaps().values())       # a resolved gap is among them (C5)
    assert "batch minus reference" in check(gaps(sign=-1)).message
    assert "error of its own" in check(gaps(both=False)).message
    assert "added as numbers" in check(gaps(linear=True)).message          # not in quadrature: a named slip
    assert check(gaps(welch=True)).passed                                  # Welch-Satterthwaite's dof: accepted
    wrong = gaps()
    wrong["C5"] = (wrong["C5"][0], wrong["C5"][1], not wrong["C5"][2])
    assert "the values differ" in check(wrong).message
    assert check(None).status == "not implemented"
