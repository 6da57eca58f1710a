"""The assignment checks: a correct solution passes, typical wrong ones fail with the right hint, a missing
implementation is reported without raising, and no report prints the reference."""

import math

import pytest
import torch

from tutorial_pkg import grading, guidance, sampling


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


def cfg_sampler(model, x_T, cond, gamma, schedule, num_steps):
    x = x_T
    steps = sampling.ddim_timesteps(schedule.T, num_steps)
    for t, t_prev in zip(steps, steps[1:] + [-1]):
        tt = torch.full((x.shape[0],), t)
        eps = cfg(model(x, tt, cond), model(x, tt, None), gamma)
        ab = schedule.alpha_bars[t]
        ab_prev = schedule.alpha_bars[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return x


CORRECT = [
    (grading.check_classifier_guided_eps, guided_eps),
    (grading.check_shifted_mean, shifted),
    (grading.check_grad_log_likelihood, grad_log_p),
    (grading.check_cfg, cfg),
    (grading.check_drop_condition, drop),
    (grading.check_cfg_sampler, cfg_sampler),
]


@pytest.mark.parametrize("check, solution", CORRECT, ids=lambda f: getattr(f, "__name__", ""))
def test_a_correct_solution_passes(check, solution, capsys):
    result = check(solution)
    assert result.passed, result.message
    assert "[PASS]" in capsys.readouterr().out


@pytest.mark.parametrize("check", [c for c, _ in CORRECT], ids=lambda f: f.__name__)
def test_a_missing_implementation_is_reported_without_raising(check, capsys):
    result = check(_todo)
    assert result.status == "not implemented"
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, hint", [
    (grading.check_classifier_guided_eps, lambda e, g, ab, s: e + s * torch.sqrt(1 - ab) * g, "sign"),
    (grading.check_classifier_guided_eps, lambda e, g, ab, s: e - s * (1 - ab) * g, "sqrt(1 - alpha_bar), not"),
    (grading.check_classifier_guided_eps, lambda e, g, ab, s: e - s * g, "factor sqrt(1 - alpha_bar)"),
    (grading.check_shifted_mean, lambda m, v, g, s: m - s * v * g, "sign"),
    (grading.check_shifted_mean, lambda m, v, g, s: m + s * v.sqrt() * g, "variance"),
    (grading.check_grad_log_likelihood,
     lambda p, x, t, y: torch.autograd.grad(p.log_prob(x.detach().requires_grad_(True), t, y).mean(),
                                            x, allow_unused=True)[0], None),
    (grading.check_cfg, lambda c, u, gamma: (1 + gamma) * c - gamma * u, "off by one"),
    (grading.check_cfg, lambda c, u, gamma: gamma * u + (1 - gamma) * c, "swapped"),
    (grading.check_drop_condition,
     lambda c, p, null, g: torch.where(torch.rand(c.shape[0], generator=g) < 1 - p, torch.full_like(c, null), c),
     "probability of *dropping*"),
    (grading.check_cfg_sampler, lambda m, x, c, gamma, s, n: cfg_sampler(m, x, c, 1.0, s, n), "unguided"),
    (grading.check_cfg_sampler, lambda m, x, c, gamma, s, n: cfg_sampler(m, x, c, gamma + 1, s, n), "off by one"),
])
def test_typical_wrong_solutions_fail_with_a_hint(check, wrong, hint):
    result = check(wrong)
    assert result.status == "fail"
    if hint:
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
    grading.check_cfg(lambda c, u, g: c)
    out = capsys.readouterr().out
    # no number with a decimal point other than those the check states about the student's own result
    assert "tensor(" not in out and "[[" not in out


def test_energy_report_recomputes_the_numbers():
    energy = lambda x: x[:, 0]
    g = torch.Generator().manual_seed(0)
    samples = {gamma: torch.randn(200, 2, generator=g, dtype=torch.float64) / gamma + 1 for gamma in (1.0, 2.0, 4.0)}
    good = {gamma: {"energy_error": (x[:, 0] - 1.0).abs().mean().item(), "spread": x.std(dim=0).mean().item()}
            for gamma, x in samples.items()}
    assert grading.check_energy_report(good, samples, energy, 1.0).passed
    bad = {k: dict(v) for k, v in good.items()}
    bad[2.0]["spread"] *= 2
    assert "not what your samples give" in grading.check_energy_report(bad, samples, energy, 1.0).message
    assert grading.check_energy_report(None, None, energy, 1.0).status == "not implemented"
    two = {k: good[k] for k in (1.0, 2.0)}
    assert "at least three scales" in grading.check_energy_report(two, {k: samples[k] for k in two}, energy, 1.0).message
