"""Assignment 5 (guidance through x0_hat, and the guidance interval): its self-checks on a correct function and on
each likely mistake (the hint it names), and its grading: a correct submission scores full automatic marks, a
wrong one half marks with its hint, an open TODO zero, each way round the self-checks' refusal (a fresh function
object, a module copy, restored code, exec of the copied source, a package function that computes the same thing)
is refused before it runs and scores zero on its task, and a report hard-coded from a stored run scores zero."""

import json
import pathlib

import torch

from tutorial_pkg import analytic, grader, grading, sampling, schedules, tweedie

import grading_folders  # instructor/tests/grading_folders.py

ROOT = pathlib.Path(__file__).resolve().parents[2]
A5 = "a5_guidance_through_x0"
TEMPLATE = json.loads((ROOT / "book" / "assignments" / f"{A5}.ipynb").read_text())
PACKAGE = grader._package_names(TEMPLATE)

MMPS = """def mmps_eps(eps_model, x_t, t, y, a, sigma_y, schedule):
    ab = schedule.alpha_bar(t, x_t)
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        eps = eps_model(x, t, None)
        x0_hat = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        (Ja,) = torch.autograd.grad((x0_hat @ a).sum(), x)
    C = sigma_y ** 2 + ((1 - ab) / ab.sqrt()) * (Ja @ a)[:, None]
    return eps.detach() - (1 - ab).sqrt() * Ja * (y - x0_hat.detach() @ a)[:, None] / C
"""
EXACT = """def exact_posterior(m, S, a, sigma_y, y):
    s_u, m_u = (a @ S @ a).item(), (a @ m).item()
    return m_u + s_u / (s_u + sigma_y ** 2) * (y - m_u), s_u * sigma_y ** 2 / (s_u + sigma_y ** 2)
"""
# the notebook's own numbers typed in: right for its prior only
EXACT_STORED = "def exact_posterior(m, S, a, sigma_y, y):\n    return 1.1853260869565216, 0.08449728260869564\n"
DPS = MMPS.replace("C = sigma_y ** 2 + ((1 - ab) / ab.sqrt()) * (Ja @ a)[:, None]", "C = sigma_y ** 2")
REPORT = """seed = 0
model = lambda x_t, t, y: mmps_eps(eps_prior, x_t, t, y, a, sigma_y, schedule)
samples = sampling.ddim_sample(model, (n, 2), schedule, num_steps=50, cond=torch.full((n,), y_obs, dtype=f64),
                               dtype=f64, generator=torch.Generator().manual_seed(seed))
s_u, m_u = (a @ S0 @ a).item(), (a @ m0).item()
exact_mean = m_u + s_u / (s_u + sigma_y ** 2) * (y_obs - m_u)
exact_var = s_u * sigma_y ** 2 / (s_u + sigma_y ** 2)
u = samples @ a
report = {"exact_mean": exact_mean, "exact_var": exact_var, "mean": u.mean().item(), "var": u.var().item()}
report["z_mean"] = (report["mean"] - exact_mean) / math.sqrt(report["var"] / n)
report["z_var"] = (report["var"] / exact_var - 1) / math.sqrt(2 / (n - 1))
"""
INTERVAL = """def interval_cfg_eps(eps_cond, eps_uncond, t, gamma, t_low, t_high):
    t = torch.as_tensor(t)
    inside = ((t >= t_low) & (t <= t_high))
    if inside.ndim:
        inside = inside[:, None]
    return torch.where(inside, gamma * eps_cond + (1 - gamma) * eps_uncond, eps_cond)
"""
WINDOWS = """def window_moments(mean_c, var_c, mean_u, var_u, gamma, windows, schedule):
    eps_c = analytic.GaussianMixture([1.0], [[mean_c]], [[[var_c]]]).eps_model(schedule)
    eps_u = analytic.GaussianMixture([1.0], [[mean_u]], [[[var_u]]]).eps_model(schedule)
    steps = sampling.ddim_timesteps(schedule.T, 50)
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    rows = []
    for lo, hi in windows:
        M, V = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
        for t, t_prev in zip(steps, steps[1:] + [-1]):
            tt = torch.full((2,), t)
            e = interval_cfg_eps(eps_c(x, tt), eps_u(x, tt), tt, gamma, lo, hi)[:, 0]
            a, c = e[1] - e[0], e[0]
            ab = schedule.alpha_bars[t].double()
            ab_prev = schedule.alpha_bars[t_prev].double() if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
            k = (1 - ab_prev).sqrt() - (ab_prev / ab).sqrt() * (1 - ab).sqrt()
            A, B = (ab_prev / ab).sqrt() + k * a, k * c
            M, V = A * M + B, A ** 2 * V
        rows.append(torch.stack([M, V]))
    return torch.stack(rows)
"""
CHEATS = {
    "function object": "import types\n_f = types.FunctionType(tweedie.tweedie_vjp.__code__, tweedie.tweedie_vjp.__globals__)\n"
                       + MMPS,
    "module copy": "import importlib.util\nspec = importlib.util.spec_from_file_location('copy', tweedie.__file__)\n"
                   "copy = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(copy)\n"
                   "def mmps_eps(eps_model, x_t, t, y, a, sigma_y, schedule):\n"
                   "    return copy.mmps_model(eps_model, a[None], sigma_y, schedule)(x_t, t, y)\n",
    "code restored": "_code = tweedie.tweedie_vjp.__code__\n" + MMPS,
    "exec of the source": "import inspect\nnamespace = {}\nexec(inspect.getsource(tweedie), namespace)\n"
                          "def mmps_eps(eps_model, x_t, t, y, a, sigma_y, schedule):\n"
                          "    return namespace['mmps_model'](eps_model, a[None], sigma_y, schedule)(x_t, t, y)\n",
    "TMPD, the same step for one observation": "def mmps_eps(eps_model, x_t, t, y, a, sigma_y, schedule):\n"
                          "    return tweedie.tmpd_model(eps_model, a[None], sigma_y, schedule)(x_t, t, y)\n",
}
# MMPS without the vector-Jacobian product: Sigma_0|t read off the exact mixture behind the check's model (on a
# mixture the denoiser's Jacobian is sqrt(ab) / (1 - ab) Sigma_0|t). The model comes as a bare call: no .source
MMPS_BY_SOURCE = """def mmps_eps(eps_model, x_t, t, y, a, sigma_y, schedule):
    ab = schedule.alpha_bar(t, x_t)
    eps = eps_model(x_t, t, None)
    mean, cov = eps_model.source.posterior_moments(x_t, ab.reshape(-1)[0].item())
    Sa = cov @ a
    C = sigma_y ** 2 + Sa @ a
    grad = ab.sqrt() / (1 - ab) * Sa * ((y - mean @ a) / C)[:, None]
    return eps - (1 - ab).sqrt() * grad
"""
# the same through the wrapper's private slot: refused before it runs (an underscore attribute)
MMPS_BY_SLOT = MMPS_BY_SOURCE.replace("eps_model.source.", "eps_model._model.source.")
# the moments by the package's recursion (the task is to write it): refused (not an allowed call)
# the last step's t' = -1 read as an index (alpha_bars[-1], the noisiest step) instead of alpha_bar = 1
WINDOWS_WRAP = WINDOWS.replace(
    "schedule.alpha_bars[t_prev].double() if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)",
    "schedule.alpha_bars[t_prev].double()")
assert WINDOWS_WRAP != WINDOWS
WINDOWS_CHEAT = """def window_moments(mean_c, var_c, mean_u, var_u, gamma, windows, schedule):
    eps_c = analytic.GaussianMixture([1.0], [[mean_c]], [[[var_c]]]).eps_model(schedule)
    eps_u = analytic.GaussianMixture([1.0], [[mean_u]], [[[var_u]]]).eps_model(schedule)
    rows = []
    for lo, hi in windows:
        model = lambda x, t, c, lo=lo, hi=hi: interval_cfg_eps(eps_c(x, t), eps_u(x, t), t, gamma, lo, hi)
        M, V = tweedie.affine_sampler_moments(model, schedule, 1, sampler="ddim", num_steps=50)
        rows.append(torch.stack([M[0], V[0, 0]]))
    return torch.stack(rows)
"""


def _namespace(*sources):
    namespace = {"torch": torch, "math": __import__("math"), "analytic": analytic, "tweedie": tweedie,
                 "sampling": sampling}
    for source in sources:
        exec(source, namespace)
    return namespace


def _stored_report() -> str:
    """A report and samples pasted from a run of the correct answer at the seed it names: the right numbers."""
    ns = _namespace(MMPS)
    prior = analytic.GaussianMixture([1.0], [[0.5, -0.3]], [[[1.0, 0.6], [0.6, 0.8]]])
    ns.update(eps_prior=prior.eps_model(schedules.linear_schedule(1000)), m0=prior.means[0], S0=prior.covs[0],
              a=torch.tensor([1.5, -0.7], dtype=torch.float64), sigma_y=0.3, y_obs=1.2, n=2000,
              schedule=schedules.linear_schedule(1000), f64=torch.float64, sampling=grading.sampling)
    exec(REPORT, ns)
    return (f"seed = 0\nreport = {ns['report']!r}\n"
            f"samples = torch.tensor({ns['samples'].tolist()!r}, dtype=f64)\n")


def _submission(folder: pathlib.Path, name: str, answers: dict) -> None:
    grading_folders.submission(TEMPLATE, folder, name, answers)


def test_each_way_round_the_refusal_is_refused_before_it_runs():
    for cheat, source in CHEATS.items():
        assert grader.screen(source, PACKAGE) is not None, cheat
    assert grader.screen(MMPS, PACKAGE) is None and grader.screen(INTERVAL, PACKAGE) is None
    allowed = ("analytic.GaussianMixture", "sampling.ddim_timesteps")
    assert grader.screen(WINDOWS, PACKAGE, allowed) is None
    assert grader.screen(WINDOWS_CHEAT, PACKAGE, allowed) is not None
    assert grader.screen(MMPS_BY_SLOT, PACKAGE) is not None


def test_the_self_checks_pass_a_correct_answer_and_name_each_mistake():
    ns = _namespace(MMPS, INTERVAL, WINDOWS)
    assert grading.check_mmps_eps(ns["mmps_eps"], seed=1).passed
    assert grading.check_interval_cfg(ns["interval_cfg_eps"], seed=1).passed
    assert grading.check_window_moments(ns["window_moments"], seed=1).passed
    mmps_wrong = {
        "that is DPS": DPS,
        "check the sign": MMPS.replace("eps.detach() - (1 - ab)", "eps.detach() + (1 - ab)"),
        "not a itself": MMPS.replace("- (1 - ab).sqrt() * Ja *", "- (1 - ab).sqrt() * a *"),
        "not J itself": MMPS.replace("((1 - ab) / ab.sqrt()) * (Ja @ a)", "(Ja @ a)"),
        "a factor that depends on alpha_bar_t alone": MMPS.replace("((1 - ab) / ab.sqrt()) * (Ja @ a)", "(1 - ab) * (Ja @ a)"),
        "sigma_y^2, not sigma_y": MMPS.replace("C = sigma_y ** 2", "C = sigma_y"),
        "the factor sqrt(1 - alpha_bar)": MMPS.replace("eps.detach() - (1 - ab).sqrt() * Ja", "eps.detach() - Ja"),
    }
    for k, slip in enumerate(("(1 - ab) / ab", "1 / ab.sqrt()", "(1 - ab).sqrt() / ab.sqrt()", "ab.sqrt()")):
        mmps_wrong[f"the prefactor of Sigma_0|t is off ({k})"] = MMPS.replace("(1 - ab) / ab.sqrt()", slip)
    for hint, source in mmps_wrong.items():
        result = grading.check_mmps_eps(_namespace(source)["mmps_eps"], seed=2)
        assert result.status == "fail" and hint.split(" (")[0] in result.message, (hint, result)
    # a factor that depends on x_t (here on the row) is not a prefactor slip: the generic hint
    result = grading.check_mmps_eps(_namespace(MMPS.replace("(1 - ab) / ab.sqrt()", "(1 - ab) / ab.sqrt() * (1 + x_t[:, :1] ** 2)"))["mmps_eps"], seed=2)
    assert result.status == "fail" and result.message.startswith("the values differ"), result
    interval_wrong = {
        "outside the interval and not inside": INTERVAL.replace("(t >= t_low) & (t <= t_high)", "(t < t_low) | (t > t_high)"),
        "not 0 (the unconditional one)": INTERVAL.replace(", eps_cond)\n", ", eps_uncond)\n"),
        "includes both ends": INTERVAL.replace("(t >= t_low) & (t <= t_high)", "(t > t_low) & (t < t_high)"),
        "off by one": INTERVAL.replace("gamma * eps_cond + (1 - gamma)", "(1 + gamma) * eps_cond - gamma"),
        "must depend on t": INTERVAL.replace("torch.where(inside, ", "torch.where(torch.tensor(True), "),
        "leaves out t_high": INTERVAL.replace("(t >= t_low) & (t <= t_high)", "(t >= t_low) & (t < t_high)"),
        "leaves out t_low": INTERVAL.replace("(t >= t_low) & (t <= t_high)", "(t > t_low) & (t <= t_high)"),
        "the roles are swapped": INTERVAL.replace("gamma * eps_cond + (1 - gamma) * eps_uncond",
                                                  "gamma * eps_uncond + (1 - gamma) * eps_cond"),
    }
    for hint, source in interval_wrong.items():
        result = grading.check_interval_cfg(_namespace(source)["interval_cfg_eps"], seed=2)
        assert result.status == "fail" and hint in result.message, (hint, result)
    windows_wrong = {
        "guidance *outside* each window": INTERVAL.replace("(t >= t_low) & (t <= t_high)", "(t < t_low) | (t > t_high)"),
        "CFG at every step": INTERVAL.replace("torch.where(inside, ", "torch.where(torch.tensor(True), "),
        "off by one": INTERVAL.replace("gamma * eps_cond + (1 - gamma)", "(1 + gamma) * eps_cond - gamma"),
    }
    for hint, interval in windows_wrong.items():
        result = grading.check_window_moments(_namespace(interval, WINDOWS)["window_moments"], seed=2)
        assert result.status == "fail" and hint in result.message, (hint, result)
    for hint, source in {"is A^2 V": WINDOWS.replace("A ** 2 * V", "A * V"),
                         "one step short": WINDOWS.replace("steps[1:] + [-1]", "steps[1:]"),
                         "not alpha_bars[-1]": WINDOWS_WRAP,
                         "the mean 0 and the variance 1": WINDOWS.replace(
                             "M, V = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0",
                             "M, V = torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.0"),
                         "not the standard deviation": WINDOWS.replace("torch.stack([M, V])", "torch.stack([M, V.sqrt()])"),
                         "write the moment recursion yourself": WINDOWS_CHEAT}.items():
        result = grading.check_window_moments(_namespace(INTERVAL, source)["window_moments"], seed=2)
        assert result.status == "fail" and hint in result.message, (hint, result)
    for k in range(3):  # the exact mixture is out of the student's function's reach
        result = grading.check_mmps_eps(_namespace(MMPS_BY_SOURCE)["mmps_eps"], seed=k)
        assert result.status == "fail" and "has no attribute 'source'" in result.message, result
    assert grading.check_exact_posterior(_namespace(EXACT)["exact_posterior"], seed=1).passed
    exact_wrong = {
        "the prior's mean of a^T x_0": EXACT.replace("return m_u + s_u / (s_u + sigma_y ** 2) * (y - m_u),", "return m_u,"),
        "equals y": EXACT.replace("return m_u + s_u / (s_u + sigma_y ** 2) * (y - m_u),", "return y,"),
        "not its inverse": EXACT.replace("m_u + s_u / (s_u + sigma_y ** 2) * (y", "m_u + (s_u + sigma_y ** 2) / s_u * (y"),
        "the prior's variance of a^T x_0: condition": EXACT.replace(", s_u * sigma_y ** 2 / (s_u + sigma_y ** 2)", ", s_u"),
        "the variance of y": EXACT.replace(", s_u * sigma_y ** 2 / (s_u + sigma_y ** 2)", ", s_u + sigma_y ** 2"),
        "counts too": EXACT.replace(", s_u * sigma_y ** 2 / (s_u + sigma_y ** 2)", ", sigma_y ** 2"),
        "sigma_y^2, not sigma_y": EXACT.replace(", s_u * sigma_y ** 2 / (s_u + sigma_y ** 2)", ", s_u * sigma_y / (s_u + sigma_y)"),
        "the values differ": EXACT.replace("return m_u + s_u / (s_u + sigma_y ** 2) * (y - m_u),", "return m_u, s_u  #"),
        "return a pair": "def exact_posterior(m, S, a, sigma_y, y):\n    return 1.0\n",
    }
    for hint, source in exact_wrong.items():
        result = grading.check_exact_posterior(_namespace(source)["exact_posterior"], seed=2)
        assert result.status == "fail" and hint in result.message, (hint, result)
    assert not grading.check_exact_posterior(_namespace(EXACT_STORED)["exact_posterior"], seed=2).passed
    # a function that refuses the work: "not implemented"
    todo = lambda *args: (_ for _ in ()).throw(NotImplementedError)
    assert grading.check_mmps_eps(todo).status == "not implemented"


def test_the_report_check_regenerates_the_samples_and_names_each_mistake():
    ns = _namespace(MMPS)
    prior = analytic.GaussianMixture([1.0], [[0.5, -0.3]], [[[1.0, 0.6], [0.6, 0.8]]])
    schedule = schedules.linear_schedule(1000)
    setting = dict(prior=prior, a=torch.tensor([1.5, -0.7], dtype=torch.float64), sigma_y=0.3, y=1.2,
                   schedule=schedule)
    ns.update(eps_prior=prior.eps_model(schedule), m0=prior.means[0], S0=prior.covs[0], a=setting["a"], sigma_y=0.3,
              y_obs=1.2, n=200, schedule=schedule, f64=torch.float64, sampling=grading.sampling)
    exec(REPORT, ns)
    report, samples = ns["report"], ns["samples"]
    assert grading.check_mmps_report(report, samples, seed=0, **setting).passed
    s_u = (setting["a"] @ prior.covs[0] @ setting["a"]).item()
    exact_sd = {**report, "z_mean": (report["mean"] - report["exact_mean"]) / (report["exact_var"] / 200) ** 0.5}
    assert grading.check_mmps_report(exact_sd, samples, seed=0, **setting).passed   # the exact sd: accepted too
    wrong = {"is not what": {**report, "exact_var": s_u},
             "standard error sd / sqrt(n), not by the sd": {
                 **report, "z_mean": (report["mean"] - report["exact_mean"]) / report["var"] ** 0.5},
             "not by the exact sd": {**report, "z_mean": (report["mean"] - report["exact_mean"]) / report["exact_var"] ** 0.5},
             "nor are 1 more": {**report, "z_mean": (report["mean"] - report["exact_mean"]) / report["var"] ** 0.5,
                                "z_var": 0.0}}
    z = report["var"] / report["exact_var"] - 1
    wrong.update({"too small by a factor near sqrt(2)": {**report, "z_var": z / (1 / 199) ** 0.5},   # sd^2 / sqrt(n)
                  "divide it by exact_var": {**report, "z_var": z / (report["exact_var"] * (2 / 199) ** 0.5)},
                  "not in raw units": {**report, "z_var": z}})
    for hint, bad in wrong.items():
        result = grading.check_mmps_report(bad, samples, seed=0, **setting)
        assert result.status == "fail" and hint in result.message, (hint, result)
        assert result.message.startswith(grader._GENERIC) == (hint in ("is not what", "nor are 1 more")), hint
    # n in place of n - 1 in z_var's standard error: accepted
    assert grading.check_mmps_report({**report, "z_var": z / (2 / 200) ** 0.5}, samples, seed=0, **setting).passed
    # the biased variance (divide by n), carried into both statistics: one named slip, and the hint names n - 1
    u = samples @ setting["a"]
    var_n = u.var(unbiased=False).item()
    biased = {**report, "var": var_n, "z_mean": (report["mean"] - report["exact_mean"]) / (var_n / 200) ** 0.5,
              "z_var": (var_n / report["exact_var"] - 1) / (2 / 199) ** 0.5}
    result = grading.check_mmps_report(biased, samples, seed=0, **setting)
    assert result.status == "fail" and "n - 1" in result.message and not result.message.startswith(grader._GENERIC)
    result = grading.check_mmps_report({**biased, "exact_var": s_u}, samples, seed=0, **setting)  # and another slip
    assert result.status == "fail" and "n - 1" in result.message and result.message.startswith(grader._GENERIC)
    assert "the samples are not" in grading.check_mmps_report(report, samples, seed=4, **setting).message
    assert grading.check_mmps_report(None, None, seed=0, **setting).status == "not implemented"
    # the grader gives the notebook's n: another sample size, like another seed, would choose among verdicts
    assert grading.check_mmps_report(report, samples, seed=0, n=len(samples), **setting).passed
    result = grading.check_mmps_report(report, samples, seed=0, n=2 * len(samples), **setting)
    assert result.status == "fail" and f"the notebook's n = {2 * len(samples)} samples" in result.message, result


def test_a_folder_of_submissions_is_graded_into_a_gradebook(tmp_path):
    """One folder graded once: correct full automatic marks; wrong (DPS in place of MMPS) half of that task with its
    hint, and a stored report zero; TODO zero; each cheat zero on its task, refused before it runs, and MMPS read
    off the exact mixture behind the check's model zero."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    correct = {"a5-04": MMPS, "a5-26": EXACT, "a5-08": REPORT, "a5-16": INTERVAL, "a5-19": WINDOWS}
    _submission(folder, "correct", correct)
    _submission(folder, "wrong", {**correct, "a5-04": DPS, "a5-26": EXACT_STORED, "a5-08": _stored_report()})
    # (its interval rule wrong in no named way: window moments graded with the reference rule in its place)
    _submission(folder, "wrapslip", {**correct, "a5-19": WINDOWS_WRAP,
                                     "a5-16": INTERVAL.replace("(1 - gamma)", "(0.5 - gamma)")})
    _submission(folder, "todo", {})
    for k, source in enumerate(CHEATS.values()):
        _submission(folder, f"cheat_{k}", {"a5-04": source})
    _submission(folder, "cheat_windows", {"a5-19": WINDOWS_CHEAT})
    # (and window moments wrong in no named way: its written answer gets no table, and says so)
    _submission(folder, "cheat_source", {**correct, "a5-04": MMPS_BY_SOURCE,
                                         "a5-19": WINDOWS.replace("A * M + B,", "A * M + 2 * B,")})
    out = tmp_path / "gradebook.csv"
    rows, feedback, points = grading_folders.grade(folder, out)

    assert points("correct", "auto_points") == points("correct", "auto_max") == 17
    assert float(rows["correct"]["written_max"]) == 7
    # the written answers' columns are named after what they grade, as their rubrics' sections are (left unanswered
    # in these submissions: zero)
    for task in ("Think! MMPS against the exact posterior (3)", "Think! guidance by window (4)"):
        assert points("correct", task) == 0
    assert points("wrong", "MMPS eps (6)") == 3 and "that is DPS" in feedback["wrong"]
    assert points("wrong", "exact posterior (2)") == 0 and points("wrong", "MMPS samples and report (2)") == 0
    # the pasted samples are right for their seed, but MMPS eps failed: they cannot be the student's own
    assert "must come from your `mmps_eps`" in feedback["wrong"]
    assert "run again on 16 of the samples" in feedback["correct"]
    assert points("wrong", "interval rule (2)") == 2 and points("wrong", "window moments (5)") == 5
    # the last step's t' = -1 read as alpha_bars[-1]: a named slip, half, with a hint that names the last step
    assert points("wrapslip", "window moments (5)") == 2.5 and "not alpha_bars[-1]" in feedback["wrapslip"]
    assert points("todo", "auto_points") == 0 and "TODO is still open" in feedback["todo"]
    # Think! 1 beside the statistics of the re-run samples and the exact samplers' moments (cells a5-08 and a5-11);
    # the pasted report of a failed mmps_eps gets none, and a line that says its numbers are not shown to be its own
    think = feedback["correct"].split("## Think! MMPS against the exact posterior")[1].split("Rubric:")[0]
    section = think.split(grader.NUMBERS_HEADING)[1]
    assert "z_mean = 0.3, z_var = -7.9, var / exact_var = 0.75" in section and "from the same seed: < 1e-8" in section
    assert "output var / exact var 0.753" in section and "output var / exact var 1.010" in section
    think = feedback["wrong"].split("## Think! MMPS against the exact posterior")[1].split("Rubric:")[0]
    assert "No re-run numbers exist" in think and "z_var = " not in think
    assert "were not shown to be ones that the student's own" in think
    # Think! 2 beside the table of cell a5-22 (which the grader does not run) as the student's own window_moments
    # makes it, called again on that cell's setting; with a named slip, that function's table, said to be wrong;
    # with a failure of no name, no table, and a line that says the numbers quoted are not shown to be the student's
    think = feedback["correct"].split("## Think! guidance by window")[1]
    table = think.split(grader.FUNCTION_NUMBERS_HEADING)[1].split("Rubric:")[0]
    assert "steps 200-299   1.198    0.1059         0.001" in table and "always (0-999)   1.480" in table
    assert "mean shifts 1.09; the shift of CFG at every step 0.48" in table
    table = feedback["wrapslip"].split("## Think! guidance by window")[1].split(grader.FUNCTION_NUMBERS_HEADING)[1]
    assert "did not pass (half: a named mistake)" in table and "steps 200-299" in table
    assert points("wrapslip", "interval rule (2)") == 0 and "grader's reference `interval_cfg_eps` in place" in table
    assert "steps 200-299   1.198    0.1059" not in table  # its own numbers, not the model's
    assert points("cheat_source", "window moments (5)") == 0
    for name in ("cheat_source", "todo"):
        think = feedback[name].split("## Think! guidance by window")[1].split("Rubric:")[0]
        assert "No table of the student's own exists" in think and "steps 200-299" not in think
        assert "were not shown to be ones that the student's own functions make" in think
    for k, cheat in enumerate(CHEATS):
        assert points(f"cheat_{k}", "MMPS eps (6)") == 0, cheat
        assert "refused" in feedback[f"cheat_{k}"], cheat
    assert points("cheat_windows", "window moments (5)") == 0 and "refused" in feedback["cheat_windows"]
    # the exact posterior moments read off the check's model: no route to them, zero
    assert points("cheat_source", "MMPS eps (6)") == 0 and "has no attribute 'source'" in feedback["cheat_source"]


def test_a_hint_that_skipping_the_work_would_earn_gives_no_half_marks():
    """CFG at every step (no interval at all) is named for the student, but earns nothing in grading."""
    task = next(t for t in grader.ASSIGNMENTS[A5] if t.name == "interval rule")
    result = grading.check_interval_cfg(_namespace(INTERVAL.replace("torch.where(inside, ", "torch.where(torch.tensor(True), "))
                                        ["interval_cfg_eps"], seed=2)
    assert "must depend on t" in result.message and grader._points(task, result) == (0.0, "fail")
    assert grader._points(task, result._replace(message="off by one: gamma ...")) == (1.0, "half: a named mistake")
