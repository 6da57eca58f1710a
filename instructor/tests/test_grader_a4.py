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
