"""The assignment checks: a correct solution passes; each typical wrong one fails with its hint; a solution that
calls the package's reference is refused; a missing implementation reports TODO without raising; an answer
stored from an earlier run fails, because the inputs are new at every call."""

import functools
import math
import types

import pytest
import torch

from tutorial_pkg import grading, guidance, metrics, nets, sampling, stats, training, zoo
from tutorial_pkg.guidance import cfg as cfg_imported_by_name
from tutorial_pkg.schedules import linear_schedule


def _todo(*args):
    raise NotImplementedError


# -- correct solutions, written as a student would ----------------------------------------------------
def guided_eps(eps, grad, alpha_bar, scale):
    return eps - scale * torch.sqrt(1 - alpha_bar) * grad


def shifted(mean, variance, grad, scale):
    return mean + scale * variance * grad


def grad_log_p(predictor, x_t, t, y):
    x = x_t.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(predictor.log_prob(x, t, y).sum(), x)
    return g


def cfg(eps_c, eps_u, gamma):
    return gamma * eps_c + (1 - gamma) * eps_u


def drop(cond, p, null, generator):
    mask = torch.rand(cond.shape[0], generator=generator) < p
    return torch.where(mask, torch.full_like(cond, null), cond)


def cfg_sampler(model, x_T, cond, gamma, schedule, num_steps, *, stop_short=False):
    x = x_T
    steps = sampling.ddim_timesteps(schedule.T, num_steps)
    for t, t_prev in zip(steps, steps[1:] + [-1]):
        if stop_short and t_prev < 0:
            break
        tt = torch.full((x.shape[0],), t)
        eps = cfg(model(x, tt, cond), model(x, tt, None), gamma)
        ab = schedule.alpha_bars[t]
        ab_prev = schedule.alpha_bars[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return x


def nll(f, log_sigma, E):
    return 0.5 * ((E - f) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)


def z_scores(regressor, x_t, t, E):
    with torch.no_grad():
        f, log_sigma = regressor(x_t, t)
    return (E - f) / log_sigma.exp()


def coverage(z, level):
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor((1 + level) / 2)).item()
    return (z.abs() < q).double().mean().item()


CORRECT = [
    (grading.check_classifier_guided_eps, guided_eps),
    (grading.check_shifted_mean, shifted),
    (grading.check_grad_log_likelihood, grad_log_p),
    (grading.check_cfg, cfg),
    (grading.check_drop_condition, drop),
    (grading.check_cfg_sampler, cfg_sampler),
    (grading.check_gaussian_nll, nll),
    (grading.check_z_scores, z_scores),
    (grading.check_coverage, coverage),
]
ids = lambda f: getattr(f, "__name__", "")


@pytest.mark.parametrize("check, solution", CORRECT, ids=ids)
def test_a_correct_solution_passes(check, solution, capsys):
    result = check(solution)
    assert result.passed, result.message
    assert "[PASS]" in capsys.readouterr().out


@pytest.mark.parametrize("check", [c for c, _ in CORRECT], ids=ids)
def test_a_missing_implementation_is_reported_without_raising(check, capsys):
    result = check(_todo)
    assert result.status == "not implemented"
    assert "[TODO]" in capsys.readouterr().out


# -- the reference refuses to run inside the student's function ---------------------------------------------
def sampler_with_the_package_cfg(model, x_T, cond, gamma, schedule, num_steps):
    """A loop of one's own, but with the package's CFG combination inside."""
    cfg_of_the_package = lambda m, x, t, c: guidance.cfg(m(x, t, c), m(x, t, None), gamma)
    return cfg_sampler(lambda x, t, c: cfg_of_the_package(model, x, t, c) if c is not None else 0 * x, x_T, cond,
                       1.0, schedule, num_steps)


class _Fixed(nets.NoiseAwareRegressor):
    """A regressor whose forward returns given (f, log_sigma): its log_prob is the package's likelihood."""

    def __init__(self, f, log_sigma):
        super().__init__(1)
        self.fixed = (f, log_sigma)

    def forward(self, x_t, t):
        return self.fixed


def nll_from_the_package(f, log_sigma, E):
    return -_Fixed(f, log_sigma).log_prob(torch.zeros(len(f), 1), 0, E)


REFERENCE_CALLS = [
    (grading.check_classifier_guided_eps, lambda e, g, ab, s: guidance.classifier_guided_eps(e, g, ab, s),
     "tutorial_pkg.guidance.classifier_guided_eps"),
    (grading.check_shifted_mean, lambda m, v, g, s: guidance.shifted_mean(m, v, g, s), "guidance.shifted_mean"),
    (grading.check_grad_log_likelihood, lambda p, x, t, y: guidance.grad_log_likelihood(p, x, t, y),
     "guidance.grad_log_likelihood"),
    (grading.check_cfg, lambda c, u, g: guidance.cfg(c, u, g), "tutorial_pkg.guidance.cfg: write the combination"),
    (grading.check_cfg, lambda c, u, g: cfg_imported_by_name(c, u, g), "tutorial_pkg.guidance.cfg"),
    (grading.check_drop_condition, lambda c, p, null, g: training.drop_condition(c, p, null, generator=g),
     "training.drop_condition"),
    (grading.check_cfg_sampler,
     lambda m, x, c, gamma, s, n: sampling.ddim_sample(guidance.cfg_model(m, gamma), x.shape, s, num_steps=n, cond=c,
                                                       x_T=x, dtype=torch.float64), "tutorial_pkg.sampling.ddim_sample"),
    (grading.check_cfg_sampler, lambda m, x, c, gamma, s, n: sampler_with_the_package_cfg(m, x, c, gamma, s, n),
     "tutorial_pkg.guidance.cfg"),
    (grading.check_gaussian_nll, lambda f, ls, E: nll_from_the_package(f, ls, E), "NoiseAwareRegressor.log_prob"),
    (grading.check_z_scores, lambda r, x, t, E: metrics.z_scores(r, x, t, E), "tutorial_pkg.metrics.z_scores"),
    (grading.check_coverage, lambda z, level: metrics.coverage(z, level), "tutorial_pkg.metrics.coverage"),
]


@pytest.mark.parametrize("check, calls_reference, names", REFERENCE_CALLS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_solution_that_calls_the_reference_is_refused(check, calls_reference, names, capsys):
    result = check(calls_reference)
    assert result.status == "fail"
    assert result.message.startswith("this check does not accept a call of") and names in result.message, result.message
    assert "does not accept" in capsys.readouterr().out


def test_the_reference_works_again_after_the_check():
    grading.check_cfg(lambda c, u, g: guidance.cfg(c, u, g))
    assert torch.equal(guidance.cfg(torch.ones(2), torch.zeros(2), 3.0), torch.full((2,), 3.0))
    assert torch.equal(cfg_imported_by_name(torch.ones(2), torch.zeros(2), 2.0), torch.full((2,), 2.0))
    grading.check_z_scores(lambda r, x, t, E: metrics.z_scores(r, x, t, E))
    assert metrics.coverage(torch.zeros(3), 0.5) == 1.0


def test_a_refused_function_may_have_a_closure_or_call_super():
    class Base:
        def f(self):
            return 1

    class Child(Base):
        def f(self):  # the __class__ cell of super() is a free variable
            return super().f() + 1

    offset = 3
    closure = lambda x: x + offset
    with grading._refusing({Child.f: "no Child.f", closure: "no closure"}):
        with pytest.raises(PermissionError, match="no Child.f"):
            Child().f()
        with pytest.raises(PermissionError, match="no closure"):
            closure(1)
    assert Child().f() == 2 and closure(1) == 4


def test_a_refusal_is_lifted_when_the_student_function_raises():
    def crashes(c, u, g):
        raise RuntimeError("boom")

    assert "raised RuntimeError: boom" in grading.check_cfg(crashes).message
    assert guidance.cfg(torch.ones(1), torch.zeros(1), 2.0).item() == 2.0


# -- new inputs at every call: a stored answer fails --------------------------------------------------------
@pytest.mark.parametrize("check, solution", CORRECT, ids=ids)
def test_an_answer_stored_from_an_earlier_run_fails(check, solution):
    stored = []

    def record(*args):
        stored.append(solution(*args))
        return stored[-1]

    assert check(record, seed=1).passed
    replay = iter(stored)
    result = check(lambda *args: next(replay, stored[0]), seed=2)
    assert result.status == "fail", result.message


@pytest.mark.parametrize("check, solution", CORRECT, ids=ids)
def test_unseeded_checks_draw_new_inputs(check, solution):
    seen = []

    def record(*args):
        seen.append([a.clone() for a in args if isinstance(a, torch.Tensor)])
        return solution(*args)

    check(record)
    check(record)
    first, last = seen[0], seen[-1]
    assert any(not torch.equal(a, b) for a, b in zip(first, last))


# -- typical wrong solutions fail with their hint -----------------------------------------------------------
def _dropout_of_rows(rows):
    def wrong(c, p, null, g):
        out = c.clone()
        out[rows(c, p)] = null
        return out
    return wrong


def _clamped_dropout(c, p, null, g):
    return torch.where(torch.rand(c.shape[0], generator=g) < min(max(p, 0.1), 0.3), torch.full_like(c, null), c)



def _biased_dropout(c, p, null, g):
    drop = (torch.rand(c.shape[0], generator=g) < 2 * p) & (c % 2 == 0)
    return torch.where(drop, torch.full_like(c, null), c)


WRONG = [
    (grading.check_classifier_guided_eps, lambda e, g, ab, s: e + s * torch.sqrt(1 - ab) * g, "check the sign"),
    (grading.check_classifier_guided_eps, lambda e, g, ab, s: e - s * (1 - ab) * g, "sqrt(1 - alpha_bar), not"),
    (grading.check_classifier_guided_eps, lambda e, g, ab, s: e - s * g, "needs the factor sqrt(1 - alpha_bar)"),
    (grading.check_classifier_guided_eps, lambda e, g, ab, s: s * (e - torch.sqrt(1 - ab) * g), "gradient term only"),
    (grading.check_classifier_guided_eps, lambda e, g, ab, s: e - s * ab.sqrt() * g, "not sqrt(alpha_bar)"),
    (grading.check_shifted_mean, lambda m, v, g, s: m - s * v * g, "check the sign"),
    (grading.check_shifted_mean, lambda m, v, g, s: m + s * v.sqrt() * g, "not the standard deviation"),
    (grading.check_shifted_mean, lambda m, v, g, s: m + s * g, "needs the variance"),
    (grading.check_grad_log_likelihood, lambda p, x, t, y: -grad_log_p(p, x, t, y), "not of -log p"),
    (grading.check_cfg, lambda c, u, gamma: (1 + gamma) * c - gamma * u, "off by one"),
    (grading.check_cfg, lambda c, u, gamma: gamma * u + (1 - gamma) * c, "swapped"),
    (grading.check_cfg, lambda c, u, gamma: gamma * c + (gamma - 1) * u, "negative for gamma > 1"),
    (grading.check_cfg, lambda c, u, gamma: c + u, "differ from the reference"),
    (grading.check_drop_condition,
     lambda c, p, null, g: torch.where(torch.rand(c.shape[0], generator=g) < 1 - p, torch.full_like(c, null), c),
     "probability of *dropping*"),
    # not random: the first p_uncond share of the rows, every time
    (grading.check_drop_condition, _dropout_of_rows(lambda c, p: slice(0, int(p * len(c)))), "same rows"),
    # random, but from the global generator instead of the one given
    (grading.check_drop_condition,
     lambda c, p, null, g: torch.where(torch.rand(c.shape[0]) < p, torch.full_like(c, null), c), "use the generator"),
    # the lecture's 0 in place of the null
    (grading.check_drop_condition,
     lambda c, p, null, g: torch.where(torch.rand(c.shape[0], generator=g) < p, torch.zeros_like(c), c),
     "null condition null = -1, not 0"),
    (grading.check_drop_condition,
     lambda c, p, null, g: torch.where(torch.rand(c.shape[0], generator=g) < p, torch.full_like(c, null), c + 1),
     "keep their own condition"),
    # right in the range [0.1, 0.3] only: the rate clamped to it, so the experiment's 0.02 and 0.5 train at 0.1, 0.3
    (grading.check_drop_condition, lambda c, p, null, g: _clamped_dropout(c, p, null, g),
     "the share differs at p_uncond = 0.02"),
    # by label: only even labels, at twice the rate, so the overall share is right but the null branch is class 0's
    (grading.check_drop_condition, lambda c, p, null, g: _biased_dropout(c, p, null, g), "independently of the label"),
    (grading.check_cfg_sampler, lambda m, x, c, gamma, s, n: cfg_sampler(m, x, c, 1.0, s, n), "unguided"),
    (grading.check_cfg_sampler, lambda m, x, c, gamma, s, n: cfg_sampler(m, x, c, gamma + 1, s, n), "off by one"),
    (grading.check_cfg_sampler, functools.partial(cfg_sampler, stop_short=True), "jump to alpha_bar = 1"),
    (grading.check_gaussian_nll, lambda f, ls, E: 0.5 * ((E - f) / ls.exp()) ** 2 + 0.5 * math.log(2 * math.pi),
     "infinite spread"),
    (grading.check_gaussian_nll, lambda f, ls, E: -nll(f, ls, E), "check the sign"),
    (grading.check_gaussian_nll, lambda f, ls, E: 0.5 * ((E - f) / ls.exp()) ** 2 + ls, "constant 0.5 log(2 pi)"),
    (grading.check_gaussian_nll, lambda f, ls, E: nll(f, ls, E).detach() + 0 * (f + ls), "not the right gradient"),
    (grading.check_gaussian_nll, lambda f, ls, E: torch.tensor(nll(f, ls, E).tolist(), dtype=torch.float64),
     "not the right gradient"),
    (grading.check_z_scores, lambda r, x, t, E: (E - r(x, t)[0]) / (2 * r(x, t)[1]).exp(), "not by the variance"),
    (grading.check_z_scores, lambda r, x, t, E: (E - r(x, t)[0]) / r(x, t)[1], "not by log_sigma"),
    (grading.check_z_scores, lambda r, x, t, E: (r(x, t)[0] - E) / r(x, t)[1].exp(), "check the sign"),
    (grading.check_coverage, lambda z, level: (z.abs() < level).double().mean().item(), "not |z| < level"),
    (grading.check_coverage, lambda z, level: 1 - coverage(z, level), "not outside"),
    (grading.check_coverage, lambda z, level: float((z.abs() < torch.distributions.Normal(0.0, 1.0).icdf(
        torch.tensor((1 + level) / 2))).sum()), "not a count"),
    (grading.check_coverage, lambda z, level: (z.abs() < torch.distributions.Normal(0.0, 1.0).icdf(
        torch.tensor(level))).double().mean().item(), "each tail holds"),
    (grading.check_coverage, lambda z, level: "0.9", "return one number"),
]


@pytest.mark.parametrize("check, wrong, hint", WRONG, ids=lambda v: getattr(v, "__name__", "") if callable(v) else "")
def test_typical_wrong_solutions_fail_with_their_hint(check, wrong, hint):
    result = check(wrong)
    assert result.status == "fail"
    assert hint in result.message, result.message


def test_mean_instead_of_sum_over_the_batch_is_diagnosed():
    def mean_not_sum(predictor, x_t, t, y):
        x = x_t.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(predictor.log_prob(x, t, y).mean(), x)
        return g

    result = grading.check_grad_log_likelihood(mean_not_sum)
    assert result.status == "fail" and "mean over the batch" in result.message


def test_a_crashing_or_wrongly_shaped_solution_fails_without_raising():
    assert "raised ZeroDivisionError" in grading.check_cfg(lambda c, u, g: 1 / 0).message
    assert "shape" in grading.check_cfg(lambda c, u, g: c[:, :1]).message
    assert "torch.Tensor" in grading.check_cfg(lambda c, u, g: 3).message
    assert grading.check_cfg("not a function").status == "fail"


def test_reports_never_print_reference_values(capsys):
    for check, _, _ in WRONG:
        check(lambda *args: args[0])
    out = capsys.readouterr().out
    assert "tensor(" not in out and "[[" not in out


# -- assignments 3 and 4: the samples themselves ------------------------------------------------------------
N, TARGET, SEED = 64, -40.0, 3


@functools.lru_cache(maxsize=None)
def _setting():
    data = zoo.muller_brown_data()
    eps_model = zoo.load("muller_brown_cfg", device="cpu", progress=False).model
    schedule = linear_schedule(zoo.SCHEDULE_T)
    reference = data.conditional_reference(TARGET, 500, delta=0.5, generator=torch.Generator().manual_seed(7))
    return data, eps_model, schedule, reference


def _sample(model, seed=SEED, target=TARGET):
    data, _, schedule, _ = _setting()
    z = sampling.ddim_sample(model, (N, 2), schedule, num_steps=50, cond=torch.full((N,), target),
                             generator=torch.Generator().manual_seed(seed))
    return z.double(), data.unstandardize(z.double())


@functools.lru_cache(maxsize=None)
def _energy_answer():
    data, eps_model, schedule, reference = _setting()
    samples, zs = {}, {}
    for gamma in (1.0, 2.0, 3.0):
        zs[gamma], samples[gamma] = _sample(guidance.cfg_model(eps_model, gamma))
    return samples, zs


def _report_of(samples, *, energy_error="median", w1_generator=1):
    data, _, _, reference = _setting()
    out = {}
    for gamma, x in samples.items():
        err = metrics.energy_error(data.system.energy(x), TARGET)
        out[gamma] = {"energy_error": getattr(err, energy_error),
                      "sliced_w1": metrics.sliced_wasserstein(x, reference,
                                                              generator=torch.Generator().manual_seed(w1_generator))}
    return out


def _check_energy(report, samples, *, seed=SEED, reference=None):
    data, eps_model, schedule, ref = _setting()
    return grading.check_energy_report(report, samples, data=data, eps_model=eps_model, schedule=schedule,
                                       target=TARGET, reference=ref if reference is None else reference, seed=seed, n=N)


def test_energy_report_of_the_samples_themselves_passes():
    samples, _ = _energy_answer()
    result = _check_energy(_report_of(samples), samples)
    assert result.passed, result.message


def test_energy_report_todo():
    assert _check_energy(None, None).status == "not implemented"


@pytest.mark.parametrize("mistake, hint", [
    ("z", "standardised coordinates z"),
    ("mean", "the median, not the mean"),
    ("w1 generator", "generator=torch.Generator().manual_seed(1)"),
    ("other seed", "not what ddim_sample"),
    ("no gamma 1", "including gamma = 1"),
    ("two scales", "at least three scales"),
    ("wrong reference", "does not lie at the target energy"),
    ("seed not an int", "seed must be the int"),
    ("wrong shape", "must be a (64, 2) tensor"),
    ("keys differ", "the same scales"),
])
def test_energy_report_catches_the_typical_mistakes(mistake, hint):
    samples, zs = _energy_answer()
    samples = dict(samples)
    kwargs = {}
    if mistake == "z":
        samples = dict(zs)
    if mistake == "other seed":
        samples[1.0] = _sample(_setting()[1], seed=SEED + 1)[1]
    if mistake == "no gamma 1":
        samples = {g: x for g, x in samples.items() if g != 1.0} | {5.0: samples[3.0]}
    if mistake == "two scales":
        samples = {g: samples[g] for g in (1.0, 2.0)}
    if mistake == "wrong shape":
        samples[2.0] = samples[2.0][:10]
    report = _report_of(samples, energy_error="mean" if mistake == "mean" else "median",
                        w1_generator=5 if mistake == "w1 generator" else 1) if mistake != "wrong shape" else \
        _report_of(_energy_answer()[0])
    if mistake == "keys differ":
        report = {g: r for g, r in report.items() if g != 3.0}
    if mistake == "wrong reference":
        kwargs["reference"] = _setting()[0].conditional_reference(-80.0, 100, delta=0.5,
                                                                  generator=torch.Generator().manual_seed(0))
    if mistake == "seed not an int":
        kwargs["seed"] = "3"
    result = _check_energy(report, samples, **kwargs)
    assert result.status == "fail"
    assert hint in result.message, result.message


def test_energy_report_with_stored_samples_of_another_run_fails():
    # samples and report stored from a run with another seed than the one the student states
    samples, _ = _energy_answer()
    result = _check_energy(_report_of(samples), samples, seed=SEED + 10)
    assert result.status == "fail" and "with your seed" in result.message


@functools.lru_cache(maxsize=None)
def _guided_answer():
    data, eps_model, schedule, _ = _setting()
    regressor = zoo.load("muller_brown_regressor", device="cpu", progress=False).model
    model = guidance.classifier_guided_model(eps_model, regressor, schedule, 1.0, model_cond=True)
    z, x = _sample(model, target=-60.0)
    return regressor, z, x


def _check_guided(report, samples, *, seed=SEED, regressor=None):
    data, eps_model, schedule, _ = _setting()
    return grading.check_guided_report(report, samples, data=data, eps_model=eps_model,
                                       regressor=_guided_answer()[0] if regressor is None else regressor,
                                       schedule=schedule, target=-60.0, scale=1.0, seed=seed)


def test_guided_report_passes_and_catches_its_mistakes():
    data = _setting()[0]
    regressor, z, x = _guided_answer()
    median = metrics.energy_error(data.system.energy(x), -60.0)
    assert _check_guided({"energy_error": median.median}, x).passed
    assert _check_guided(None, None).status == "not implemented"
    assert "the median |E(x) - E*|" in _check_guided({"energy_error": median.mean}, x).message
    assert "standardised coordinates z" in _check_guided({"energy_error": median.median}, z).message
    unguided = _sample(_setting()[1], target=-60.0)[1]
    assert "not what classifier guidance" in _check_guided({"energy_error": median.median}, unguided).message
    assert "not what classifier guidance" in _check_guided({"energy_error": median.median}, x, seed=SEED + 1).message


def test_a_failure_prints_the_seed_that_replays_it(capsys):
    wrong = lambda eps_c, eps_u, gamma: (1 + gamma) * eps_c - gamma * eps_u
    assert grading.check_cfg(wrong).status == "fail"
    out = capsys.readouterr().out
    seed = int(out.split("seed=")[1].split(":")[0])
    assert grading.check_cfg(wrong, seed=seed).status == "fail"
    assert f"seed={seed}" in capsys.readouterr().out
    assert grading.check_cfg(cfg).passed and "seed=" not in capsys.readouterr().out


def test_a_float32_result_is_named():
    """Where a check's tolerance is below float32's precision (exact moments, to 1e-8), a float32 result is named."""
    # the check refuses its own reference while the answer runs: a fresh function object of the same code stands in
    # for an answer that is right to the last digit
    recursion = types.FunctionType(grading._window_recursion.__code__, grading._window_recursion.__globals__,
                                   "recursion", grading._window_recursion.__defaults__)
    recursion.__kwdefaults__ = grading._window_recursion.__kwdefaults__

    def window_moments(mean_c, var_c, mean_u, var_u, gamma, windows, schedule):
        rule = lambda lo, hi: (lambda t: gamma if lo <= t <= hi else 1.0)
        return recursion(mean_c, var_c, mean_u, var_u, rule, windows, schedule)

    assert grading.check_window_moments(window_moments, seed=0).passed
    result = grading.check_window_moments(lambda *args: window_moments(*args).float(), seed=0)
    assert result.status == "fail" and "float32" in result.message


def test_energy_report_regenerates_every_scale_from_the_seed():
    # the guided scales replaced by exact reference draws (the opposite of the trade-off) no longer pass
    data, _, _, reference = _setting()
    samples = dict(_energy_answer()[0])
    for k, gamma in enumerate((2.0, 3.0)):
        samples[gamma] = data.conditional_reference(TARGET, N, delta=0.5, generator=torch.Generator().manual_seed(50 + k))
    result = _check_energy(_report_of(samples), samples)
    assert result.status == "fail" and "gamma = 2" in result.message, result.message


# -- assignments 3 and 4 with blocks: one seeded batch per model, reshaped into blocks, with t-intervals ----
BLOCKS, NB = 3, 32  # blocks of NB samples, small enough for the suite


def _blocked(model, target, seed=SEED):
    """One ddim_sample call of BLOCKS * NB samples from ``seed``, as configurations reshaped to (BLOCKS, NB, 2)."""
    data, _, schedule, _ = _setting()
    z = sampling.ddim_sample(model, (BLOCKS * NB, 2), schedule, num_steps=50, cond=torch.full((BLOCKS * NB,), target),
                             generator=torch.Generator().manual_seed(seed))
    return data.unstandardize(z.double()).reshape(BLOCKS, NB, 2)


def _summary(values, mistake=None):
    """The student's mean, standard error and 95 % t-interval of per-block values, or one named mistake in them."""
    v = torch.tensor(values, dtype=torch.float64)
    B = len(values)
    mean, sd = v.mean().item(), v.std(correction=0 if mistake == "divides by B" else 1).item()
    se = sd if mistake == "sd without sqrt(B)" else sd / math.sqrt(B)
    q = {"1.96": 1.96, "t with B dof": stats.t_quantile(B), "rounded t": round(stats.t_quantile(B - 1), 2)}.get(
        mistake, stats.t_quantile(B - 1))
    return {"blocks": list(values), "mean": mean, "se": se, "low": mean - q * se, "high": mean + q * se}


@functools.lru_cache(maxsize=None)
def _energy_blocks_answer(seed=SEED):
    _, eps_model, _, _ = _setting()
    return {gamma: _blocked(guidance.cfg_model(eps_model, gamma), TARGET, seed) for gamma in (1.0, 2.0, 3.0)}


def _energy_blocks_report(samples, mistake=None):
    data, _, _, reference = _setting()
    out = {}
    for gamma, x in samples.items():
        errors = [getattr(metrics.energy_error(data.system.energy(xb), TARGET),
                          "mean" if mistake == "mean" else "median") for xb in x]
        w1 = [metrics.sliced_wasserstein(xb, reference, generator=torch.Generator().manual_seed(1)) for xb in x]
        out[gamma] = {"energy_error": _summary(errors, mistake), "sliced_w1": _summary(w1, mistake)}
    return out


def _check_energy_blocks(report, samples, *, seed=SEED):
    data, eps_model, schedule, reference = _setting()
    return grading.check_energy_report(report, samples, data=data, eps_model=eps_model, schedule=schedule,
                                       target=TARGET, reference=reference, seed=seed, n=NB, blocks=BLOCKS)


def test_energy_report_in_blocks_passes():
    samples = _energy_blocks_answer()
    result = _check_energy_blocks(_energy_blocks_report(samples), samples)
    assert result.passed, result.message


@pytest.mark.parametrize("mistake, hint", [
    ("sd without sqrt(B)", "standard deviation over sqrt(B)"),
    ("divides by B", "divides by B - 1, not by B"),
    ("1.96", "not the normal's 1.96"),
    ("t with B dof", "B - 1 degrees of freedom, not B"),
    ("rounded t", "not a rounded value"),
    ("mean", "the median, not the mean"),
    ("blocks mixed up", "x.reshape(blocks, n, 2)"),
    ("z", "standardised coordinates z"),
    ("one call per block", "draw all blocks in one call"),
])
def test_energy_report_in_blocks_names_the_mistake(mistake, hint):
    data, eps_model, _, _ = _setting()
    samples = dict(_energy_blocks_answer())
    if mistake == "blocks mixed up":  # block k taken as every BLOCKS-th sample from k on
        samples = {g: x.reshape(BLOCKS * NB, 2).reshape(NB, BLOCKS, 2).transpose(0, 1) for g, x in samples.items()}
    if mistake == "z":
        samples = {g: data.standardize(x.reshape(-1, 2)).reshape(x.shape) for g, x in samples.items()}
    if mistake == "one call per block":  # every block drawn by a call of its own, seeded seed + 1 + k
        _, _, schedule, _ = _setting()
        samples[2.0] = torch.stack([data.unstandardize(sampling.ddim_sample(
            guidance.cfg_model(eps_model, 2.0), (NB, 2), schedule, num_steps=50, cond=torch.full((NB,), TARGET),
            generator=torch.Generator().manual_seed(SEED + 1 + k)).double()) for k in range(BLOCKS)])
    report = _energy_blocks_report(samples, mistake)
    result = _check_energy_blocks(report, samples)
    assert result.status == "fail"
    assert hint in result.message, result.message


@pytest.mark.parametrize("block", range(BLOCKS))
def test_energy_report_with_any_one_block_swapped_fails(block):
    """Every block is regenerated: one block of one scale taken from another run (and its report made to match)
    fails, whichever block it is."""
    samples = dict(_energy_blocks_answer())
    swapped = samples[3.0].clone()
    swapped[block] = _energy_blocks_answer(SEED + 1)[3.0][block]
    samples[3.0] = swapped
    result = _check_energy_blocks(_energy_blocks_report(samples), samples)
    assert result.status == "fail" and f"block {block} of the gamma = 3 samples" in result.message, result.message


def test_energy_report_in_blocks_from_another_seed_fails():
    # samples and report stored from a run with another seed than the one the student states
    samples = _energy_blocks_answer(SEED + 1)
    result = _check_energy_blocks(_energy_blocks_report(samples), samples)
    assert result.status == "fail" and "from your seed" in result.message, result.message


@functools.lru_cache(maxsize=None)
def _guided_blocks_answer(seed=SEED):
    _, eps_model, schedule, _ = _setting()
    yours = zoo.load("muller_brown_regressor_t", device="cpu", progress=False).model  # plays the student's
    shipped = _guided_answer()[0]
    samples = {key: _blocked(guidance.classifier_guided_model(eps_model, regressor, schedule, 1.0, model_cond=True),
                             -60.0, seed) for key, regressor in (("yours", yours), ("shipped", shipped))}
    return yours, shipped, samples


def _guided_blocks_report(samples, mistake=None):
    data = _setting()[0]
    report = {key: [metrics.energy_error(data.system.energy(xb), -60.0).median for xb in x]
              for key, x in samples.items()}
    yours, shipped = (torch.tensor(report[key], dtype=torch.float64) for key in ("yours", "shipped"))
    diff = shipped - yours if mistake == "shipped - yours" else yours - shipped
    report["difference"] = _summary(diff.tolist(), mistake)
    if mistake == "unpaired":
        se = math.sqrt((yours.var() + shipped.var()).item() / BLOCKS)
        half = stats.t_quantile(BLOCKS - 1) * se
        report["difference"].update(se=se, low=diff.mean().item() - half, high=diff.mean().item() + half)
    return report


def _check_guided_blocks(report, samples, *, seed=SEED):
    data, eps_model, schedule, _ = _setting()
    yours, shipped, _ = _guided_blocks_answer()
    return grading.check_guided_report(report, samples, data=data, eps_model=eps_model, regressor=yours,
                                       schedule=schedule, target=-60.0, scale=1.0, seed=seed, shipped=shipped,
                                       blocks=BLOCKS)


@pytest.mark.parametrize("mistake, hint", [
    (None, None),
    ("shipped - yours", "yours - shipped, block by block, not shipped - yours"),
    ("unpaired", "pair the blocks"),
    ("1.96", "not the normal's 1.96"),
    ("sd without sqrt(B)", "standard deviation over sqrt(B)"),
])
def test_guided_report_in_blocks_passes_and_names_the_mistake(mistake, hint):
    samples = _guided_blocks_answer()[2]
    result = _check_guided_blocks(_guided_blocks_report(samples, mistake), samples)
    if mistake is None:
        assert result.passed, result.message
        assert _check_guided_blocks(None, None).status == "not implemented"
    else:
        assert result.status == "fail" and hint in result.message, result.message


def test_guided_report_in_blocks_from_another_seed_fails():
    samples = _guided_blocks_answer(SEED + 1)[2]
    result = _check_guided_blocks(_guided_blocks_report(samples), samples)
    assert result.status == "fail" and "from your seed" in result.message, result.message
    samples = _guided_blocks_answer()[2]
    swapped = {"yours": samples["shipped"], "shipped": samples["yours"]}  # each regressor's blocks regenerated
    result = _check_guided_blocks(_guided_blocks_report(swapped), swapped)
    assert result.status == "fail" and "'yours'" in result.message, result.message


def test_answers_computed_in_float32_pass_where_the_precision_allows():
    """A share counted in float32 is exact to half a count, and a likelihood whose constant is made in float32
    (torch.log(torch.tensor(2 * math.pi))) is right to 1e-7: both pass."""
    def coverage(z, level):
        q = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor((1 + level) / 2))
        return (z.abs() < q).float().mean().item()

    def nll(f, log_sigma, E):
        return 0.5 * ((E - f) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * torch.log(torch.tensor(2 * math.pi))

    for seed in range(5):
        assert grading.check_coverage(coverage, seed=seed).passed
        assert grading.check_gaussian_nll(nll, seed=seed).passed
    assert "not |z| < level" in grading.check_coverage(lambda z, level: (z.abs() < level).float().mean().item(),
                                                       seed=0).message


def test_a_dropout_right_only_in_mid_range_earns_nothing_and_fails_the_training_tie():
    """The rate clamped to [0.1, 0.3]: the self-check tries the experiment's 0.02 and 0.5 too, and its hint names no
    mistake (zero points); the experiment's training tie counts the rows that the student's function dropped while
    the grader trains a network again, and refuses a share that is not the rate, before it compares any weight."""
    from tutorial_pkg import analytic, grader
    for seed in range(3):
        result = grading.check_drop_condition(_clamped_dropout, seed=seed)
        assert result.status == "fail" and result.message.startswith(grader._GENERIC), result.message
    mixture = analytic.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[0.36]], [[0.36]]])

    def make_net():
        return nets.MLPEpsModel(1, hidden=8, depth=1, cond="label", num_classes=2, null="learned")

    def tie(fn, p):  # as after a named slip in the dropout (exact=False): the share, not the rows, is checked
        return grading._tie_dropout_training(fn, {}, seed=0, picks={p: [0]}, mixture=mixture,
                                             schedule=linear_schedule(1000), rates=(p,), n_nets=1,
                                             make_net=make_net, steps=40, exact=False)
    for p in (0.02, 0.5):
        result = tie(_clamped_dropout, p)
        assert result.status == "fail" and f"at p_uncond = {p:g}, dropped the condition in a share" in \
            result.message, result.message
        right = tie(lambda c, q, null, g: torch.where(torch.rand(c.shape[0], generator=g) < q,
                                                      torch.full_like(c, null), c), p)
        assert right.status == "fail" and "is not what train_net" in right.message, right.message  # no weights stored


def _dropout(draw):
    return lambda c, p, null, g: torch.where(draw(c.shape[0], p, g), torch.full_like(c, null), c)


def test_the_dropout_must_be_the_notebooks_draw_and_independent_of_the_label():
    """The notebook's draw, torch.rand(N, generator=g) < p, passes (torch.bernoulli draws the same numbers); one right
    in distribution that drops other rows (u > 1 - p) or draws more from the generator (a padded draw, which would
    choose among seed sets) is a named slip, half; one that depends on the label earns nothing, and the training tie
    refuses it by its share in each class."""
    from tutorial_pkg import analytic, grader
    task = next(t for t in grader.ASSIGNMENTS["a2_classifier_free_guidance"] if t.name == "condition dropout")
    model = _dropout(lambda n, p, g: torch.rand(n, generator=g) < p)
    bern = _dropout(lambda n, p, g: torch.bernoulli(torch.full((n,), float(p)), generator=g).bool())
    above = _dropout(lambda n, p, g: torch.rand(n, generator=g) > 1 - p)
    padded = _dropout(lambda n, p, g: torch.rand(n + 3, generator=g)[:n] < p)
    for seed in range(3):
        for fn in (model, bern):
            assert grading.check_drop_condition(fn, seed=seed).passed
        for fn, words in ((above, "consumes the generator as the notebook's draw does, but drops other rows"),
                          (padded, "leaves the generator elsewhere")):
            result = grading.check_drop_condition(fn, seed=seed)
            assert words in result.message and "torch.rand(N, generator=generator)" in result.message, result.message
            assert grader._points(task, result) == (0.5, "half: a named mistake")
        result = grading.check_drop_condition(_biased_dropout, seed=seed)
        assert "independently of the label" in result.message and grader._points(task, result)[0] == 0
    mixture = analytic.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[0.36]], [[0.36]]])

    def tie(fn, p, exact):
        return grading._tie_dropout_training(fn, {}, seed=0, picks={p: [0]}, mixture=mixture,
                                             schedule=linear_schedule(1000), rates=(p,), n_nets=1, exact=exact,
                                             make_net=lambda: nets.MLPEpsModel(1, hidden=8, depth=1, cond="label",
                                                                               num_classes=2, null="learned"),
                                             steps=40)
    for p in (0.02, 0.5):
        result = tie(_biased_dropout, p, exact=False)
        assert result.status == "fail" and "rows of class 0" in result.message and \
            "independently of the label" in result.message, result.message
        assert "other rows than the notebook's draw" in tie(above, p, exact=True).message
        for fn in (above, padded):  # a named slip: the tie follows the student's own draw (no weights stored here)
            assert "is not what train_net" in tie(fn, p, exact=False).message
