import math

import numpy as np

import pytest
import torch

from tutorial_pkg import metrics


def test_energy_error_median_and_mean():
    err = metrics.energy_error(torch.tensor([1.0, 2.0, 4.0, 10.0]), 2.0)
    assert err.median == pytest.approx(1.5) and err.mean == pytest.approx(11 / 4)


def test_wasserstein_of_a_shift_is_the_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5000, generator=g, dtype=torch.float64)
    assert metrics.wasserstein_1d(a, a + 0.7) == pytest.approx(0.7, abs=1e-12)
    assert metrics.wasserstein_1d(a, a) == 0.0


def test_sliced_wasserstein_of_a_shift_is_two_over_pi_times_its_length():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 2, generator=g, dtype=torch.float64)
    v = torch.tensor([0.0, 1.5], dtype=torch.float64)
    # the same points, shifted: each projection's W1 is exactly |v . u| for any number of points, whose mean over
    # directions is 2|v|/pi; the 4000 directions put 0.03 at about four standard errors of that mean
    sw = metrics.sliced_wasserstein(x, x + v, n_projections=4000, generator=g)
    assert sw == pytest.approx(2 * 1.5 / math.pi, rel=0.03)
    assert metrics.sliced_wasserstein(x, x.clone(), generator=g) == pytest.approx(0.0, abs=1e-12)


def test_weighted_sliced_wasserstein_is_exact_on_two_points_and_equals_the_repeated_set():
    g = torch.Generator().manual_seed(2)
    # one dimension: {0 (weight 1/4), 1 (weight 3/4)} against {0, 1} equally weighted moves mass 1/4 by 1
    x, y = torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    w = torch.tensor([1.0, 3.0], dtype=torch.float64)
    assert metrics.sliced_wasserstein(x, y, x_weights=w, n_projections=5, generator=g) == pytest.approx(0.25, abs=1e-12)
    # integer weights: the distance of the set with every point repeated that many times
    x = torch.randn(40, 2, generator=g, dtype=torch.float64)
    y = torch.randn(60, 2, generator=g, dtype=torch.float64) + 0.3
    counts = torch.randint(0, 4, (40,), generator=g)
    repeated = x.repeat_interleave(counts, dim=0)
    a = metrics.sliced_wasserstein(x, y, x_weights=counts.double(), generator=torch.Generator().manual_seed(3))
    b = metrics.sliced_wasserstein(repeated, y, generator=torch.Generator().manual_seed(3))
    assert a == pytest.approx(b, abs=1e-12)
    # weights on y too, and the scale of the weights does not matter
    wy = torch.rand(60, generator=g, dtype=torch.float64)
    a = metrics.sliced_wasserstein(x, y, y_weights=wy, generator=torch.Generator().manual_seed(4))
    b = metrics.sliced_wasserstein(x, y, y_weights=7 * wy, generator=torch.Generator().manual_seed(4))
    assert a == pytest.approx(b, abs=1e-12) and a > 0


def test_sliced_wasserstein_is_the_mean_of_scipys_one_dimensional_distances():
    from scipy.stats import wasserstein_distance
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randn(45, 3, generator=g, dtype=torch.float64)
    wx, wy = torch.rand(30, generator=g, dtype=torch.float64), torch.rand(45, generator=g, dtype=torch.float64)
    d = torch.randn(16, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    d = d / d.norm(dim=1, keepdim=True)
    px, py = (x @ d.T).numpy(), (y @ d.T).numpy()
    for a, b in ((None, None), (wx, None), (wx, wy)):
        want = np.mean([wasserstein_distance(px[:, i], py[:, i], None if a is None else a.numpy(),
                                             None if b is None else b.numpy()) for i in range(16)])
        got = metrics.sliced_wasserstein(x, y, n_projections=16, generator=torch.Generator().manual_seed(6),
                                         x_weights=a, y_weights=b)
        assert got == pytest.approx(want, abs=1e-12)


def test_basin_occupancy():
    occ = metrics.basin_occupancy(torch.tensor([0, 0, 2, 1, 0]), 3)
    assert occ.tolist() == pytest.approx([0.6, 0.2, 0.2])


def test_within_class_distance_of_a_gaussian():
    """E|X - Y| for independent 2-D standard normals is sqrt(pi)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3000, 2, generator=g, dtype=torch.float64)
    labels = torch.zeros(3000, dtype=torch.long)
    labels[:1] = 1
    d = metrics.within_class_distance(x, labels, 3)
    assert d[0].item() == pytest.approx(math.sqrt(math.pi), rel=0.03)
    assert math.isnan(d[1]) and math.isnan(d[2])


def test_classifier_accuracy():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.5]])
    assert metrics.classifier_accuracy(lambda x: x, x, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.energy_error(torch.tensor([float("nan")]), 1.0), "energies holds NaN"),
    (lambda: metrics.energy_error(torch.tensor([1.0]), float("inf")), "target"),
    (lambda: metrics.wasserstein_1d(torch.tensor([]), torch.tensor([1.0])), "a must be"),
    (lambda: metrics.sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 3)), "same dimension"),
    (lambda: metrics.sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 2), n_projections=0), "n_projections"),
    (lambda: metrics.basin_occupancy(torch.tensor([0, 3]), 3), "basins"),
    (lambda: metrics.within_class_distance(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), 2), "labels has"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def _circular_w1_by_offsets(a, b, n_grid=20001):
    # the definition, brute force: W1 = min over the offset alpha of the integral of |F - G - alpha| on a grid
    theta = np.linspace(0, 2 * np.pi, n_grid, endpoint=False)
    cdf = lambda v: (np.mod(v, 2 * np.pi)[None, :] <= theta[:, None]).mean(1)  # noqa: E731
    d = cdf(a) - cdf(b)
    alphas = np.linspace(d.min(), d.max(), 2001)
    return min(np.abs(d - al).mean() * 2 * np.pi for al in alphas)


def test_circular_wasserstein_is_the_linear_one_on_a_short_arc_and_takes_the_short_way_round():
    g = torch.Generator().manual_seed(0)
    a, b = 0.3 * torch.randn(300, generator=g, dtype=torch.float64), 0.5 + 0.2 * torch.randn(200, generator=g, dtype=torch.float64)
    # far from the cut at 0 = 2 pi the circle is a line: on an arc around pi the linear W1 applies
    assert metrics.circular_wasserstein(a + np.pi, b + np.pi) == pytest.approx(metrics.wasserstein_1d(a, b), rel=1e-9)
    # two point masses either side of +-pi are 2 * eps apart on the circle, not 2 pi - 2 eps
    eps = 0.05
    assert metrics.circular_wasserstein([np.pi - eps], [-np.pi + eps]) == pytest.approx(2 * eps, abs=1e-12)
    # rotating both samples changes nothing, and the same sample is at distance 0
    assert metrics.circular_wasserstein(a + 2.0, b + 2.0) == pytest.approx(metrics.circular_wasserstein(a, b), rel=1e-9)
    assert metrics.circular_wasserstein(a, a + 4 * np.pi) == pytest.approx(0.0, abs=1e-12)


def test_circular_wasserstein_matches_the_definition_by_brute_force():
    g = torch.Generator().manual_seed(1)
    a = torch.cat([torch.randn(70, generator=g) * 0.4 - 2.5, torch.randn(30, generator=g) * 0.3 + 1.0]).double()
    b = (torch.rand(80, generator=g) * 2 * np.pi).double()
    assert metrics.circular_wasserstein(a, b) == pytest.approx(_circular_w1_by_offsets(a.numpy(), b.numpy()), abs=2e-3)
