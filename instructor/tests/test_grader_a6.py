"""Assignment 6 (sampling the guided target, chapter 10): its self-checks on a correct and on each wrong function,
and the grading of a folder of submissions. A correct submission scores full automatic marks; a wrong one half
marks with its hint; an open TODO zero; each way round the self-checks' in-process refusal (a fresh function
object from the saved code, a module copy, the code object restored, exec of the copied source, the package's own
sampler), and a loop hard-coded from a stored run, scores zero on the task it cheats."""

import json
import math
import pathlib

import pytest
import torch

from tutorial_pkg import grader, grading, sampling

import grading_folders  # instructor/tests/grading_folders.py

ROOT = pathlib.Path(__file__).resolve().parents[2]
A6 = "a6_sampling_the_guided_target"
TEMPLATE = json.loads((ROOT / "book" / "assignments" / f"{A6}.ipynb").read_text())
PACKAGE = grader._package_names(TEMPLATE)

INCREMENT = """def log_weight_increment(eps_cond, eps_uncond, gamma, alpha_bar, alpha_bar_prev):
    beta = 1 - alpha_bar / alpha_bar_prev
    return gamma * (gamma - 1) * beta / (2 * (1 - alpha_bar)) * (eps_cond - eps_uncond).pow(2).sum(1)
"""
RESAMPLE = """def systematic_resample(log_weights, u):
    K = log_weights.shape[-1]
    cdf = torch.softmax(log_weights, dim=-1).cumsum(-1)
    return torch.searchsorted(cdf, (u + torch.arange(K, dtype=log_weights.dtype)) / K).clamp(max=K - 1)
"""
SAMPLER = """def smc_sampler(eps_model, cond, gamma, schedule, timesteps, x_T, groups, generator, ess_threshold=0.5):
    G, K = groups, x_T.shape[0] // groups
    x, log_w = x_T, torch.full((G, K), -math.log(K), dtype=torch.float64)
    offset = K * torch.arange(G)[:, None]
    for t, t_prev in zip(timesteps, list(timesteps[1:]) + [-1]):
        eps_c, eps_u = eps_model(x, t, cond), eps_model(x, t, None)
        ab = schedule.alpha_bars[t].item()
        ab_prev = schedule.alpha_bars[t_prev].item() if t_prev >= 0 else 1.0
        log_w = log_w + {weight}log_weight_increment(eps_c, eps_u, gamma, ab, ab_prev).view(G, K)
        log_w = log_w - log_w.logsumexp(1, keepdim=True)
        c_x, c_eps, sigma = sampling.ddim_coefficients(schedule, t, t_prev, 1.0)
        x = c_x * x + c_eps * (gamma * eps_c + (1 - gamma) * eps_u)
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        u = torch.rand(G, 1, generator=generator, dtype=x.dtype)
        resample = (1 / log_w.exp().pow(2).sum(1) < {threshold} * K)[:, None]
        index = torch.where(resample, systematic_resample(log_w, u), torch.arange(K))
        x = x[(index + offset).flatten()]
        log_w = torch.where(resample, {reset}, log_w)
    return x, {sign}log_w.flatten()
"""
RIGHT = {"weight": "", "threshold": "ess_threshold", "reset": "torch.full_like(log_w, -math.log(K))", "sign": ""}


def sampler(**changes) -> str:
    return SAMPLER.format(**{**RIGHT, **changes})


def functions(*sources) -> dict:
    namespace = {"torch": torch, "math": math, "sampling": sampling}
    for source in sources:
        exec(source, namespace)
    return namespace


# -- the self-checks --------------------------------------------------------------------------------------------
def test_the_increment_check_passes_the_solution_and_names_each_mistake():
    right = functions(INCREMENT)["log_weight_increment"]
    assert grading.check_log_weight_increment(right, seed=1).passed
    k = lambda g, ab, ab_prev: g * (g - 1) * (1 - ab / ab_prev) / (2 * (1 - ab))
    d2 = lambda c, u: (c - u).pow(2).sum(1)
    wrong = {
        "check the sign": lambda c, u, g, ab, abp: -k(g, ab, abp) * d2(c, u),
        "factor 1/2": lambda c, u, g, ab, abp: 2 * k(g, ab, abp) * d2(c, u),
        "not by its square root": lambda c, u, g, ab, abp: k(g, ab, abp) * math.sqrt(1 - ab) * d2(c, u),
        "do not average": lambda c, u, g, ab, abp: k(g, ab, abp) * (c - u).pow(2).mean(1),
        "not the norm": lambda c, u, g, ab, abp: k(g, ab, abp) * d2(c, u).sqrt(),
        "not gamma^2": lambda c, u, g, ab, abp: g * g * (1 - ab / abp) / (2 * (1 - ab)) * d2(c, u),
        "grows with gamma itself": lambda c, u, g, ab, abp: (g - 1) * (1 - ab / abp) / (2 * (1 - ab)) * d2(c, u),
        "must vanish at gamma = 1": lambda c, u, g, ab, abp: g * (1 - ab / abp) / (2 * (1 - ab)) * d2(c, u),
        "the step's own noise": lambda c, u, g, ab, abp: g * (g - 1) / 2 * d2(c, u),
        "not alpha_bar_t' - alpha_bar_t": lambda c, u, g, ab, abp: g * (g - 1) * (abp - ab) / (2 * (1 - ab)) * d2(c, u),
    }
    for hint, fn in wrong.items():
        for seed in range(20):  # a step that ends at the clean data cannot tell the last two apart: find one that does
            result = grading.check_log_weight_increment(fn, seed=seed)
            if hint in result.message:
                break
        assert result.status == "fail" and hint in result.message, (hint, result)
    def todo(*args):
        raise NotImplementedError
    assert grading.check_log_weight_increment(todo).status == "not implemented"


@pytest.mark.parametrize("dropped, hint", [("gamma * ", "grows with gamma itself"),
                                           ("(gamma - 1) * ", "must vanish at gamma = 1")])
def test_an_increment_that_drops_a_factor_of_the_scale_earns_half_with_a_named_hint(dropped, hint):
    """The slip between w = gamma - 1 and gamma: an increment without its factor gamma, or without gamma - 1, is a
    named mistake (half marks), and its hint says what is wrong without writing out the formula."""
    source = INCREMENT.replace("gamma * (gamma - 1) * ", "(gamma - 1) * " if dropped == "gamma * " else "gamma * ")
    assert source != INCREMENT
    task = next(t for t in grader.ASSIGNMENTS[A6] if t.name == "weight increment")
    result = grading.check_log_weight_increment(functions(source)["log_weight_increment"], seed=3)
    assert result.status == "fail" and hint in result.message and "gamma (gamma - 1)" not in result.message
    assert grader._points(task, result) == (task.points / 2, "half: a named mistake")


def test_the_resampling_check_passes_the_solution_and_names_each_mistake():
    right = functions(RESAMPLE)["systematic_resample"]
    assert grading.check_systematic_resample(right, seed=2).passed
    arange = lambda lw: torch.arange(lw.shape[-1], dtype=lw.dtype)
    wrong = {
        "normalise the weights": lambda lw, u: torch.searchsorted(lw.exp().cumsum(-1), (u + arange(lw)) / lw.shape[-1])
            .clamp(max=lw.shape[-1] - 1),
        "not positions in the flattened batch": lambda lw, u: right(lw, u) + lw.shape[-1] * torch.arange(lw.shape[0])[:, None],
        "indices outside": lambda lw, u: right(lw, u) + 1,
        "divide by K": lambda lw, u: torch.searchsorted(torch.softmax(lw, -1).cumsum(-1), u + arange(lw))
            .clamp(max=lw.shape[-1] - 1),
        "floor(K w_i)": lambda lw, u: torch.multinomial(torch.softmax(lw, -1), lw.shape[-1], replacement=True,
                                                        generator=torch.Generator().manual_seed(0)),
        "the copies have the right counts": lambda lw, u: right(lw, u).flip(-1),
        "integer indices": lambda lw, u: right(lw, u).double(),
    }
    for hint, fn in wrong.items():
        result = grading.check_systematic_resample(fn, seed=3)
        assert result.status == "fail" and hint in result.message, (hint, result)


def test_the_sampler_check_passes_the_solution_and_names_each_mistake():
    base = (INCREMENT, RESAMPLE)
    assert grading.check_smc_sampler(functions(*base, sampler())["smc_sampler"], seed=4).passed
    wrong = {"your weights stay equal": sampler(weight="0 * "),
             "you never resample": sampler(threshold="0.0"),
             "at every step": sampler(threshold="1.0"),
             "reset its log-weights": sampler(reset="log_w"),
             "the particles are right but not the weights": sampler(sign="-")}
    for hint, source in wrong.items():
        result = grading.check_smc_sampler(functions(*base, source)["smc_sampler"], seed=4)
        assert result.status == "fail" and hint in result.message, (hint, result)
    result = grading.check_smc_sampler(lambda *args: torch.zeros(3), seed=4)
    assert result.status == "fail" and "pair of tensors" in result.message


# -- grading a folder -------------------------------------------------------------------------------------------
CHEATS = {  # each as the answer of one task, the cell it answers
    "function object": ("a6-04", "import types\n_k = types.FunctionType(smc.log_weight_factor.__code__, "
                                 "smc.log_weight_factor.__globals__)\n" + INCREMENT),
    "module copy": ("a6-07", "import importlib.util\n"
                             "spec = importlib.util.spec_from_file_location('copy', smc.__file__)\n"
                             "copy = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(copy)\n"
                             "def systematic_resample(log_weights, u):\n"
                             "    return copy.systematic_resample(log_weights)\n"),
    "code restored": ("a6-07", "_code = smc.systematic_resample.__code__\n"
                               "def systematic_resample(log_weights, u):\n"
                               "    smc.systematic_resample.__code__ = _code\n"
                               "    return smc.systematic_resample(log_weights)\n"),
    "exec of the source": ("a6-07", "import inspect\nnamespace = {}\n"
                                    "exec(inspect.getsource(smc._systematic), namespace)\n"
                                    "systematic_resample = namespace['_systematic']\n"),
    "the package's sampler": ("a6-10", "def smc_sampler(eps_model, cond, gamma, schedule, timesteps, x_T, groups, "
                                       "generator, ess_threshold=0.5):\n"
                                       "    r = smc.smc_sample(guidance.cfg_model(eps_model, gamma), tuple(x_T.shape), "
                                       "schedule, cond=cond, groups=groups, timesteps=timesteps, x_T=x_T, "
                                       "generator=generator, ess_threshold=ess_threshold, dtype=torch.float64)\n"
                                       "    return r.particles, r.log_weights\n"),
}
TASK_OF = {"a6-04": "weight increment (3)", "a6-07": "systematic resampling (3)", "a6-10": "SMC sampler (4)"}


def _experiment() -> str:
    """The instructor's experiment cell (a6-15), the answer of the value task, without its solution markers."""
    nb = json.loads((ROOT / "instructor" / "solutions" / f"{A6}.ipynb").read_text())
    text = "".join(next(c for c in nb["cells"] if c.get("id") == "a6-15")["source"])
    return "\n".join(line for line in text.split("\n") if "SOLUTION" not in line)


def _pasted_estimates() -> str:
    """The reviewer's paste: the right estimates for seed 0, from the grader's reference loop, typed in as literals."""
    from tutorial_pkg import schedules
    schedule = schedules.linear_schedule(1000)
    timesteps = [t for t, _ in sampling.sampler_steps(schedule, sampler="ddim", num_steps=250, spacing="trailing")]
    model, lines = grading._pair_eps(schedule, 1.0, 0.25, 0.0, 1.0), []
    for K, G in {4: 400, 16: 200, 64: 100, 256: 320}.items():
        generator = torch.Generator().manual_seed(K)
        x_T = torch.randn(G * K, 1, generator=generator, dtype=torch.float64)
        x, log_w = grading._smc_reference(model, torch.ones(G * K, dtype=torch.long), 3.0, schedule, timesteps, x_T, G,
                                          generator, 0.5)
        w, x = log_w.exp().view(G, K), x[:, 0].view(G, K)
        means = (w * x).sum(1)
        lines.append(f"estimates[{K}] = {{'mean': {means.tolist()!r}, 'variance': "
                     f"{(w * (x - means[:, None]) ** 2).sum(1).tolist()!r}, 'ess': {(1 / w.pow(2).sum(1) / K).tolist()!r}}}")
    return "seed = 0\nestimates = {}\n" + "\n".join(lines) + "\n"


def test_the_experiment_check_repeats_the_run_from_the_seed():
    from tutorial_pkg import schedules
    ns = functions(INCREMENT, RESAMPLE, sampler())
    schedule = schedules.linear_schedule(1000)
    timesteps = [t for t, _ in sampling.sampler_steps(schedule, sampler="ddim", num_steps=20, spacing="trailing")]
    counts = {4: 6, 16: 3}
    model = grading._pair_eps(schedule, 1.0, 0.25, 0.0, 1.0)

    def run(seed, offset=None):
        estimates = {}
        for K, G in counts.items():
            generator = torch.Generator().manual_seed(seed + K if offset is None else offset)
            x_T = torch.randn(G * K, 1, generator=generator, dtype=torch.float64)
            x, log_w = ns["smc_sampler"](model, torch.ones(G * K, dtype=torch.long), 3.0, schedule, timesteps, x_T, G,
                                         generator)
            w, x = log_w.exp().view(G, K), x[:, 0].view(G, K)
            means = (w * x).sum(1)
            estimates[K] = {"mean": means.numpy(), "variance": (w * (x - means[:, None]) ** 2).sum(1).tolist(),
                            "ess": 1 / w.pow(2).sum(1) / K}
        return estimates

    check = lambda estimates, seed: grading.check_smc_estimates(estimates, seed=seed, particle_counts=counts,
                                                                timesteps=timesteps, schedule=schedule)
    assert check(run(5), 5).passed
    assert "is not what the notebook's run gives" in check(run(5), 6).message          # another seed's numbers
    assert "is not what the notebook's run gives" in check(run(5, offset=5), 5).message   # seed, not seed + K
    assert "one entry per K" in check({4: run(5)[4]}, 5).message
    assert check(None, 5).status == "not implemented"


def _stored_sampler() -> str:
    """A loop hard-coded from a stored run: the output of a correct sampler on the self-check's inputs of seed 0."""
    right, stored = functions(INCREMENT, RESAMPLE, sampler())["smc_sampler"], {}
    grading.check_smc_sampler(lambda *args: stored.setdefault("out", right(*args)), seed=0)
    x, log_w = stored["out"]
    return (f"STORED = ({x.tolist()!r}, {log_w.tolist()!r})\n"
            "def smc_sampler(eps_model, cond, gamma, schedule, timesteps, x_T, groups, generator, ess_threshold=0.5):\n"
            "    return torch.tensor(STORED[0], dtype=torch.float64), torch.tensor(STORED[1], dtype=torch.float64)\n")


def _submission(folder: pathlib.Path, name: str, answers: dict) -> None:
    grading_folders.submission(TEMPLATE, folder, name, answers)


@pytest.mark.parametrize("cheat", list(CHEATS))
def test_each_way_round_the_refusal_is_refused_before_it_runs(cheat):
    cell, source = CHEATS[cheat]
    allowed = ("sampling.ddim_coefficients",) if cell == "a6-10" else ()
    assert grader.screen(source, PACKAGE, allowed) is not None
    assert grader.screen(sampler(), PACKAGE, ("sampling.ddim_coefficients",)) is None
    assert grader.screen(INCREMENT + RESAMPLE, PACKAGE) is None


def test_a_folder_of_submissions_of_assignment_6_is_graded(tmp_path):
    """One grading run (two child processes: the correct and the wrong submission; the others start none)."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    _submission(folder, "correct", {"a6-04": INCREMENT, "a6-07": RESAMPLE, "a6-10": sampler(), "a6-15": _experiment(),
                                    "a6-17": "**Answer.** The bias falls from 0.08 to 0.02."})
    # wrong: the increment without its 1/2 (half marks, with its hint), a loop hard-coded from a stored run (zero),
    # and the experiment's estimates pasted as literals from a right run (zero: the sampler's task did not pass)
    _submission(folder, "wrong", {"a6-04": INCREMENT.replace("/ (2 * (1 - alpha_bar))", "/ (1 - alpha_bar)"),
                                  "a6-07": RESAMPLE, "a6-10": _stored_sampler(), "a6-15": _pasted_estimates()})
    _submission(folder, "todo", {})
    for k, (cell, source) in enumerate(CHEATS.values()):
        _submission(folder, f"cheat_{k}", {cell: source})
    out = tmp_path / "gradebook.csv"
    rows, feedback, points = grading_folders.grade(folder, out)

    assert points("correct", "auto_points") == points("correct", "auto_max") == 12
    assert points("wrong", "bias experiment (2)") == 0 and "must come from your `log_weight_increment`" in feedback["wrong"]
    assert "your smc_sampler, run again at K = " in feedback["correct"]
    # the written answer is shown beside the table that the grader's re-run made (question 4's correction included),
    # or, where the experiment failed, with a line that says its numbers were not shown to be the student's own
    think = feedback["correct"].split("## Think! bias against K")[1]
    assert "Numbers the grader computed" in think and "Var(system mean)" in think and "-0.0413" in think
    think = feedback["wrong"].split("## Think! bias against K")[1]
    assert "No re-run numbers exist" in think and "were not shown to be ones that the student's own" in think
    # the plot that the rubric grades, as the answer cell drew it when the grader ran it, beside the stored one
    assert "Figures drawn by the answer cells when the grader ran them" in feedback["correct"]
    assert (out.with_suffix("") / "correct_figures" / "a6-15_0.rerun.png").read_bytes().startswith(b"\x89PNG")
    assert float(rows["correct"]["written_max"]) == 6 and grading_folders.column(rows["correct"], "Think! bias against K (6)") == ""
    assert points("wrong", "weight increment (3)") == 1.5 and "factor 1/2" in feedback["wrong"]
    assert points("wrong", "systematic resampling (3)") == 3 and points("wrong", "SMC sampler (4)") == 0
    assert points("todo", "auto_points") == 0 and "TODO is still open" in feedback["todo"]
    assert float(grading_folders.column(rows["todo"], "Think! bias against K (6)")) == 0
    for k, (cheat, (cell, _)) in enumerate(CHEATS.items()):
        assert points(f"cheat_{k}", TASK_OF[cell]) == 0, cheat
        assert "refused" in feedback[f"cheat_{k}"], cheat
