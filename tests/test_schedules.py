import math

import pytest
import torch

from tutorial_pkg.schedules import NoiseSchedule, cosine_schedule, linear_schedule, make_schedule


def test_stored_sequences_are_float64_and_consistent(schedule):
    assert schedule.betas.dtype == torch.float64
    assert torch.allclose(schedule.alphas, 1 - schedule.betas)
    # alpha_bars[t] = prod(alphas[:t+1]): t = 0 is one step of noise
    for t in (0, 1, 50, schedule.T - 1):
        assert math.isclose(schedule.alpha_bars[t].item(), torch.prod(schedule.alphas[: t + 1]).item(), rel_tol=1e-12)
    assert schedule.alpha_bars_prev[0] == 1.0
    assert torch.all(schedule.alpha_bars[1:] < schedule.alpha_bars[:-1])


def test_linear_endpoints_and_cosine_formula():
    s = linear_schedule(1000)
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    c = cosine_schedule(50, s=0.008)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    for t in (0, 10, 30):
        # alpha_bar_t = f((t+1)/T) / f(0) while no beta is clipped
        assert c.alpha_bars[t].item() == pytest.approx(f((t + 1) / 50) / f(0), rel=1e-12)
    assert c.betas.max().item() <= 0.999


def test_q_sample_reproduces_the_stated_mean_and_variance(schedule, gen):
    x0 = torch.tensor([[1.5, -0.5]], dtype=torch.float64).expand(200_000, 2)
    for t in (0, 40, 99):
        eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        x_t = schedule.q_sample(x0, t, eps)
        ab = schedule.alpha_bars[t].item()
        se_mean = math.sqrt((1 - ab) / x0.shape[0])
        assert torch.allclose(x_t.mean(0), math.sqrt(ab) * x0[0], atol=5 * se_mean)
        # the variance of a Gaussian sample variance is 2 v^2 / n
        assert torch.allclose(x_t.var(0), torch.full((2,), 1 - ab, dtype=torch.float64),
                              atol=5 * (1 - ab) * math.sqrt(2 / x0.shape[0]))


def test_predict_x0_and_predict_eps_invert_q_sample(schedule, gen):
    x0 = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    eps = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    t = torch.randint(0, schedule.T, (64,), generator=gen)
    x_t = schedule.q_sample(x0, t, eps)
    assert torch.allclose(schedule.predict_x0(x_t, t, eps), x0, atol=1e-9)
    assert torch.allclose(schedule.predict_eps(x_t, t, x0), eps, atol=1e-9)


def test_posterior_equals_bayes_rule_product_of_gaussians(schedule, gen):
    """q(x_{t-1} | x_t, x_0) is proportional to q(x_{t-1} | x_0) q(x_t | x_{t-1}): multiply the Gaussians."""
    x0 = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    x_t = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    for t in (1, 7, 60, schedule.T - 1):
        ab_prev, a, b = schedule.alpha_bars[t - 1], schedule.alphas[t], schedule.betas[t]
        precision = 1 / (1 - ab_prev) + a / b
        mean = (ab_prev.sqrt() * x0 / (1 - ab_prev) + a.sqrt() * x_t / b) / precision
        got_mean, got_var = schedule.posterior_mean_variance(x0, x_t, t)
        assert torch.allclose(got_mean, mean, atol=1e-10)
        assert torch.allclose(got_var, torch.full_like(x_t, 1 / precision.item()), atol=1e-12)
    # at t = 0 the previous state is the data itself
    mean0, var0 = schedule.posterior_mean_variance(x0, x_t, 0)
    assert torch.allclose(mean0, x0, atol=1e-12) and torch.all(var0 == 0)


def test_eps_score_round_trip(schedule, gen):
    eps = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    t = torch.arange(8) * 12
    score = schedule.eps_to_score(eps, t)
    ab = schedule.alpha_bars[t][:, None]
    assert torch.allclose(score, -eps / (1 - ab).sqrt())
    assert torch.allclose(schedule.score_to_eps(score, t), eps)


def test_gather_follows_the_input_dtype_and_shape(schedule):
    x = torch.zeros(4, 3, 5, dtype=torch.float32)
    out = schedule.gather(schedule.alpha_bars, torch.tensor([0, 1, 2, 3]), x)
    assert out.shape == (4, 1, 1) and out.dtype == torch.float32


def test_schedule_is_frozen_and_keeps_its_float64_tables_on_the_cpu():
    s = linear_schedule(10)
    with pytest.raises(AttributeError):
        s.betas = torch.ones(3)
    assert s.betas.device.type == "cpu" and s.betas.dtype == torch.float64
    x = torch.zeros(4, 2, dtype=torch.float16)
    ab = s.gather(s.alpha_bars, torch.tensor([0, 1, 2, 3]), x)
    assert ab.dtype == torch.float16 and ab.shape == (4, 1)
    assert s.gather(s.alpha_bars, 3, x) is not None and s.gather(s.alpha_bars, 3, x).ndim == 0


def test_a_gather_casts_a_table_once_per_device_and_dtype():
    """The per-step lookup reuses the cast copy of a table: no copy to the device at every step."""
    s = linear_schedule(10)
    x = torch.zeros(4, 2)
    s.gather(s.alpha_bars, 3, x)
    before = dict(s._on_device)
    for t in range(10):
        s.gather(s.alpha_bars, t, x)
    assert s._on_device == before
    for _ in range(100):                  # a table made anew at every call does not pile up
        s.gather(1 - s.alpha_bars, 3, x)
    assert len(s._on_device) <= 32


def test_the_four_parameterisations_convert_exactly(schedule):
    g = torch.Generator().manual_seed(0)
    x_t, eps = torch.randn(2, 16, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, schedule.T, (16,), generator=g)
    ab = schedule.alpha_bars[t][:, None]
    x0 = schedule.predict_x0(x_t, t, eps)
    v = schedule.eps_to_v(x_t, t, eps)
    assert torch.allclose(v, ab.sqrt() * eps - (1 - ab).sqrt() * x0, atol=1e-10)   # Salimans & Ho's definition
    assert torch.allclose(schedule.v_to_eps(x_t, t, v), eps, atol=1e-10)
    assert torch.allclose(schedule.predict_eps(x_t, t, x0), eps, atol=1e-10)
    assert torch.allclose(schedule.score_to_eps(schedule.eps_to_score(eps, t), t), eps, atol=1e-12)


def test_posterior_coefficients_are_the_posterior_mean_and_variance(schedule):
    x0, x_t = torch.randn(2, 5, 2, dtype=torch.float64)
    for t in (0, 1, schedule.T // 2, schedule.T - 1):
        c_x0, c_xt, var = schedule.posterior_coefficients(t)
        mean, variance = schedule.posterior_mean_variance(x0, x_t, t)
        assert torch.allclose(mean, c_x0 * x0 + c_xt * x_t) and torch.allclose(variance, torch.full_like(x_t, var))


@pytest.mark.parametrize("call, match", [
    (lambda: make_schedule("quadratic", 10), "name"),
    (lambda: linear_schedule(0), "T"),
    (lambda: linear_schedule(10, beta_end=float("nan")), "beta_end"),
    (lambda: NoiseSchedule(torch.tensor([0.1, 1.5], dtype=torch.float64)), "betas"),
    (lambda: linear_schedule(10).q_sample(torch.zeros(2, 2), 10, torch.zeros(2, 2)), "t must lie"),
    (lambda: linear_schedule(10).q_sample(torch.zeros(2, 2), -1, torch.zeros(2, 2)), "t must lie in 0..9, got -1"),
    (lambda: linear_schedule(10).q_sample(torch.zeros(2, 2), 1, torch.zeros(2, 3)), "eps has shape"),
    (lambda: linear_schedule(10).q_sample(torch.zeros(2, 2), 1, torch.zeros(2, 2, dtype=torch.float64)), "eps has dtype"),
    (lambda: linear_schedule(10).q_sample(torch.zeros(2, 2), torch.tensor([1, 2, 3]), torch.zeros(2, 2)), "batch size"),
    (lambda: linear_schedule(10).q_sample(torch.zeros(2, 2), torch.tensor([1.0, 2.0]), torch.zeros(2, 2)), "t must be an integer"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
