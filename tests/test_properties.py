"""Property-based tests (hypothesis) of the schedule and guidance maths.

Random shapes (batch 1..8, one to three trailing dimensions of 1..4 entries), bounded finite values, random
T, t and scales: every output is finite (no silent NaN), and every round trip holds to a tolerance set by
its conditioning (dividing by sqrt(alpha_bar) or sqrt(1 - alpha_bar) amplifies rounding by that factor).
"""

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tutorial_pkg import guidance, sampling
from tutorial_pkg.schedules import cosine_schedule, linear_schedule

# modest; database=None: no saved examples replayed or written between runs
PROPERTY = settings(max_examples=50, deadline=None, database=None)
EPS = 1e-12  # relative rounding allowance of a float64 round trip, before conditioning


@st.composite
def shapes(draw):
    return (draw(st.integers(1, 8)), *draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))


def tensors(shape, low=-10.0, high=10.0):
    values = st.floats(low, high, allow_nan=False, allow_infinity=False)
    return arrays(np.float64, shape, elements=values).map(torch.from_numpy)


@st.composite
def schedules_and_t(draw, batch, *, t_min=0):
    """A linear or cosine schedule with random T, and t: one int, or one step per sample."""
    T = draw(st.integers(max(1, t_min + 1), 1000))
    schedule = draw(st.sampled_from([linear_schedule, cosine_schedule]))(T)
    if draw(st.booleans()):
        return schedule, draw(st.integers(t_min, T - 1))
    return schedule, torch.tensor(draw(st.lists(st.integers(t_min, T - 1), min_size=batch, max_size=batch)))


def finite(*outputs):
    return all(bool(torch.isfinite(out).all()) for out in outputs)


def close(a, b, atol):
    return bool(((a - b).abs() <= atol).all())


# -- schedules: forward process, posterior, eps <-> score ------------------------------------------------
@PROPERTY
@given(data=st.data())
def test_q_sample_then_predict_x0_and_predict_eps_round_trip(data):
    shape = data.draw(shapes())
    schedule, t = data.draw(schedules_and_t(shape[0]))
    x0, eps = data.draw(tensors(shape)), data.draw(tensors(shape))
    x_t = schedule.q_sample(x0, t, eps)
    x0_back, eps_back = schedule.predict_x0(x_t, t, eps), schedule.predict_eps(x_t, t, x0)
    assert finite(x_t, x0_back, eps_back)
    ab = schedule.gather(schedule.alpha_bars, t, x0)
    size = 1 + x0.abs().max() + eps.abs().max()
    assert close(x0_back, x0, EPS * size / ab.sqrt())
    assert close(eps_back, eps, EPS * size / (1 - ab).sqrt())


@PROPERTY
@given(data=st.data())
def test_posterior_mean_is_the_noise_free_ddpm_step_and_its_variance_is_nonnegative(data):
    shape = data.draw(shapes())
    schedule, t = data.draw(schedules_and_t(shape[0]))
    x0, x_t = data.draw(tensors(shape)), data.draw(tensors(shape))
    mean, variance = schedule.posterior_mean_variance(x0, x_t, t)
    assert finite(mean, variance) and variance.shape == x_t.shape and bool((variance >= 0).all())
    size = 1 + x0.abs().max() + x_t.abs().max()
    if isinstance(t, int):
        # the sampler's affine step at the eps that maps x0 to x_t lands on the posterior mean
        eps = schedule.predict_eps(x_t, t, x0)
        step = sampling.ddpm_step(eps, x_t, t, schedule, noise=torch.zeros_like(x_t))
        ab = schedule.alpha_bars[t]
        assert finite(step) and close(step, mean, 1e3 * EPS * size / (ab * (1 - ab)).sqrt())
    else:
        # one step per sample gives, row by row, what the same step for the whole batch gives
        for i, ti in enumerate(t.tolist()):
            mean_i, var_i = schedule.posterior_mean_variance(x0[i:i + 1], x_t[i:i + 1], ti)
            assert close(mean[i], mean_i[0], EPS * size) and close(variance[i], var_i[0], EPS)


@PROPERTY
@given(data=st.data())
def test_eps_to_score_and_back(data):
    shape = data.draw(shapes())
    schedule, t = data.draw(schedules_and_t(shape[0]))
    eps = data.draw(tensors(shape))
    score = schedule.eps_to_score(eps, t)
    back = schedule.score_to_eps(score, t)
    ab = schedule.gather(schedule.alpha_bars, t, eps)
    assert finite(score, back)
    assert close(score, -eps / (1 - ab).sqrt(), EPS * (1 + eps.abs().max()) / (1 - ab).sqrt())
    assert close(back, eps, EPS * (1 + eps.abs().max()))


@PROPERTY
@given(data=st.data())
def test_ddim_with_eta_one_between_neighbours_is_the_ddpm_step(data):
    schedule, t = data.draw(schedules_and_t(1, t_min=1))
    t = int(t[0]) if isinstance(t, torch.Tensor) else t
    ddim, ddpm = sampling.ddim_coefficients(schedule, t, t - 1, 1.0), sampling.ddpm_coefficients(schedule, t)
    assert all(np.isfinite(ddim)) and all(np.isfinite(ddpm))
    assert np.allclose(ddim, ddpm, rtol=1e-9, atol=1e-12)


# -- guidance ----------------------------------------------------------------------------------------------
def scales(batch, high=20.0):
    """A guidance scale: a number, or one value per sample."""
    number = st.floats(0.0, high, allow_nan=False)
    return st.one_of(number, arrays(np.float64, (batch,), elements=number).map(torch.from_numpy))


def per_sample(value, like):
    """A (B,) tensor shaped to broadcast against ``like``, as the package reads it; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.ndim == 1:
        return value.reshape(-1, *([1] * (like.ndim - 1)))
    return value


@PROPERTY
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_cfg_is_the_affine_combination_and_stays_finite(data, dtype):
    shape = data.draw(shapes())
    eps_c, eps_u = data.draw(tensors(shape)), data.draw(tensors(shape))
    gamma = data.draw(scales(shape[0]))
    gamma = gamma.to(dtype) if isinstance(gamma, torch.Tensor) else gamma
    out = guidance.cfg(eps_c.to(dtype), eps_u.to(dtype), gamma)
    assert finite(out) and out.dtype == dtype
    g = per_sample(gamma, eps_c).double() if isinstance(gamma, torch.Tensor) else gamma
    tol = (1e-5 if dtype == torch.float32 else EPS) * (1 + 2 * (1 + 20.0) * 10)
    assert close(out.double(), eps_u + g * (eps_c - eps_u), tol)
    assert close(guidance.cfg(eps_c, eps_u, 1.0), eps_c, EPS * 20) and torch.equal(guidance.cfg(eps_c, eps_u, 0.0), eps_u)


@PROPERTY
@given(data=st.data())
def test_classifier_guided_eps_adds_scale_times_gradient_to_the_score(data):
    """eps_hat = eps - s sqrt(1 - ab) g is the eps of the score grad log p_t(x) + s g: chapter 3."""
    shape = data.draw(shapes())
    schedule, t = data.draw(schedules_and_t(shape[0]))
    eps, grad = data.draw(tensors(shape)), data.draw(tensors(shape))
    s = data.draw(scales(shape[0]))
    ab = schedule.alpha_bars[t] if isinstance(t, torch.Tensor) else schedule.alpha_bars[t].item()
    out = guidance.classifier_guided_eps(eps, grad, ab, s)
    assert finite(out)
    score_hat, score = schedule.eps_to_score(out, t), schedule.eps_to_score(eps, t)
    root = (1 - schedule.gather(schedule.alpha_bars, t, eps)).sqrt()
    assert close(score_hat, score + per_sample(s, eps) * grad, EPS * (1 + 21 * 10) / root)


@PROPERTY
@given(data=st.data())
def test_shifted_mean_is_additive_in_the_scale(data):
    shape = data.draw(shapes())
    mean, grad = data.draw(tensors(shape)), data.draw(tensors(shape))
    variance = data.draw(st.one_of(st.floats(0.0, 10.0), tensors(shape, 0.0, 10.0), tensors(shape[:1], 0.0, 10.0)))
    s1, s2 = data.draw(st.floats(0.0, 10.0)), data.draw(st.floats(0.0, 10.0))
    once = guidance.shifted_mean(mean, variance, grad, s1 + s2)
    twice = guidance.shifted_mean(guidance.shifted_mean(mean, variance, grad, s1), variance, grad, s2)
    assert finite(once, twice)
    v = per_sample(variance, mean)
    assert close(once, mean + (s1 + s2) * v * grad, EPS * 3000) and close(once, twice, EPS * 3000)


@PROPERTY
@given(data=st.data(), phi=st.floats(0.0, 1.0))
def test_rescale_cfg_stays_finite_and_phi_one_matches_the_conditional_std(data, phi):
    shape = data.draw(shapes())
    assume(int(np.prod(shape[1:])) >= 2)       # a standard deviation needs two values per sample
    guided, cond = data.draw(tensors(shape)), data.draw(tensors(shape))
    out = guidance.rescale_cfg(guided, cond, phi)
    assert finite(out) and out.shape == guided.shape
    assert torch.equal(guidance.rescale_cfg(guided, cond, 0.0), guided)
    dims = tuple(range(1, guided.ndim))
    full = guidance.rescale_cfg(guided, cond, 1.0)
    spread = guided.std(dim=dims) > 1e-6
    assert close(full.std(dim=dims)[spread], cond.std(dim=dims)[spread], 1e-9 * (1 + cond.abs().max()))
    assert close(out, phi * full + (1 - phi) * guided, 1e-9 * (1 + full.abs().max() + guided.abs().max()))


@PROPERTY
@given(data=st.data(), base=st.one_of(st.just(0.0), st.floats(-10.0, 10.0)), phi=st.floats(0.0, 1.0),
       spread=st.sampled_from([0.0, 5e-324, 1e-300, 1e-30, 1e-8]))
def test_rescale_cfg_of_a_nearly_constant_prediction_stays_finite(data, base, phi, spread):
    """A guided prediction with little or no spread across its values: the rescale divides by that spread."""
    shape = data.draw(shapes())
    assume(int(np.prod(shape[1:])) >= 2)
    guided = base + spread * data.draw(tensors(shape, -1.0, 1.0))
    out = guidance.rescale_cfg(guided, data.draw(tensors(shape)), phi)
    assert finite(out)


@PROPERTY
@given(value=st.floats(-1.0, 50.0),
       source=st.sampled_from(sorted(guidance.SCALE_CONVENTIONS)),
       target=st.sampled_from(sorted(guidance.SCALE_CONVENTIONS)))
def test_convert_scale_round_trips(value, source, target):
    assume(guidance.SCALE_CONVENTIONS[source][0](value) >= 0)      # a convention's value of some gamma >= 0
    there = guidance.convert_scale(value, from_=source, to=target)
    back = guidance.convert_scale(there, from_=target, to=source)
    assert np.isfinite(there) and abs(back - value) <= EPS * (1 + abs(value))
