"""The self-check of assignment 1's guided DDIM sampler (task 4): a correct sampler passes on several seeds; each
likely mistake gets its hint; a call of the package's guided model is refused; an open TODO reads as TODO."""

import functools

import pytest
import torch

from tutorial_pkg import grading, guidance, sampling


def guided_ddim(eps_model, predictor, y, x_T, scale, schedule, num_steps, *, sign=1.0, stop_short=False):
    x = x_T
    steps = sampling.ddim_timesteps(schedule.T, num_steps)
    for t, t_prev in zip(steps, steps[1:] + [-1]):
        if stop_short and t_prev < 0:
            break
        tt = torch.full((x.shape[0],), t)
        ab = schedule.alpha_bars[t]
        ab_prev = schedule.alpha_bars[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        xg = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(predictor.log_prob(xg, tt, y).sum(), xg)
        eps = eps_model(x, tt) - sign * scale * (1 - ab).sqrt() * grad
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return x


@pytest.mark.parametrize("seed", [0, 1])
def test_a_correct_guided_sampler_passes(seed, capsys):
    result = grading.check_guided_ddim(guided_ddim, seed=seed)
    assert result.passed, result.message
    assert "[PASS]" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda m, p, y, x, s, sch, n: guided_ddim(m, p, y, x, 0.0, sch, n), "unguided samples"),
    (functools.partial(guided_ddim, sign=-1.0), "a flipped sign"),
    (functools.partial(guided_ddim, stop_short=True), "jump to alpha_bar = 1"),
    (lambda m, p, y, x, s, sch, n: guided_ddim(m, p, y, x, 1.1 * s, sch, n), "differ from the reference"),
    (lambda m, p, y, x, s, sch, n: sampling.ddim_sample(guidance.classifier_guided_model(m, p, sch, s), x.shape, sch,
                                                         num_steps=n, cond=y, x_T=x), "does not accept a call"),
])
def test_each_mistake_of_the_guided_sampler_gets_its_hint(wrong, hint):
    result = grading.check_guided_ddim(wrong, seed=3)
    assert result.status == "fail" and hint in result.message, result.message


def test_an_open_todo_reads_as_todo():
    def todo(*args):
        raise NotImplementedError
    assert grading.check_guided_ddim(todo).status == "not implemented"


def _table(seed, *, ddof=1, n=2000, tau=0.5, y=1.5):
    """Task 4's table, from this file's sampler on the notebook's setting (cell a1-14)."""
    from tutorial_pkg import analytic, schedules
    schedule = schedules.linear_schedule(1000)
    prior = analytic.GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    eps_model = prior.eps_model(schedule)
    predictor = analytic.LinearGaussianLikelihood(prior, [1.0], tau=tau).predictor(schedule)
    table = {}
    for s in (0.0, 1.0, 2.0, 4.0):
        x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        x = guided_ddim(eps_model, predictor, torch.full((n,), y, dtype=torch.float64), x_T, s, schedule, 50)[:, 0]
        sd, precision = x.std(correction=ddof).item(), 1 + s / tau ** 2
        table[s] = {"mean": x.mean().item(), "std": sd, "se_mean": sd / n ** 0.5, "se_std": sd / (2 * (n - 1)) ** 0.5,
                    "target_mean": s * y / tau ** 2 / precision, "target_std": precision ** -0.5}
    return table


def test_the_table_check_regenerates_the_samples_from_the_seed_and_names_each_mistake():
    table = _table(3)
    assert grading.check_guided_table(table, seed=3).passed
    assert grading.check_guided_table(_table(3, ddof=0), seed=3).passed     # the std over n is as good
    assert "not those of your seed" in grading.check_guided_table(table, seed=4).message
    with pytest.raises(TypeError, match="seed"):  # the grader's reference: an int seed only
        grading._guided_table_reference("0")
    # the numbers that the notebook prints, typed in to three decimals: not a run of the sampler
    typed = {s: {k: round(v, 3) for k, v in row.items()} for s, row in table.items()}
    assert "not those of your seed" in grading.check_guided_table(typed, seed=3).message
    wrong = {"the square root": {s: {**row, "target_std": row["target_std"] ** 2} for s, row in table.items()},
             "precisions add": {s: {**row, "target_mean": 1.5} for s, row in table.items()},
             "not that of the mean": {s: {**row, "se_std": row["std"] / 2000 ** 0.5} for s, row in table.items()},
             "std / sqrt(n)": {s: {**row, "se_mean": row["std"] / 2000} for s, row in table.items()},
             "one entry per scale": {s: row for s, row in table.items() if s != 4.0}}
    for hint, bad in wrong.items():
        result = grading.check_guided_table(bad, seed=3)
        assert result.status == "fail" and hint in result.message, (hint, result)
    assert grading.check_guided_table(None, seed=3).status == "not implemented"
