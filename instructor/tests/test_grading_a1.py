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
