import math

import pytest
import torch

from tutorial_pkg.systems import MullerBrown, boltzmann_dataset


@pytest.fixture(scope="module")
def data():
    return boltzmann_dataset(20_000, 4_000, generator=torch.Generator().manual_seed(0))


def test_energy_at_the_known_minima_and_saddles():
    """Müller & Brown (1979): minima at -146.70, -108.17, -80.77; saddles at -40.66 and -72.25."""
    mb = MullerBrown()
    assert mb.energy(mb.minima).tolist() == pytest.approx([-146.6995, -108.1667, -80.7678], abs=1e-3)
    assert mb.energy(mb.saddles).tolist() == pytest.approx([-40.6648, -72.2489], abs=1e-3)
    # stationary points: the gradient vanishes there (to the precision of the tabulated coordinates)
    assert mb.gradient(torch.cat([mb.minima, mb.saddles])).norm(dim=1).max() < 5e-3


def test_gradient_matches_finite_differences():
    mb = MullerBrown()
    x = torch.tensor([[-0.3, 0.7], [0.5, 0.1], [-1.0, 1.2]], dtype=torch.float64)
    h = 1e-6
    fd = torch.stack([(mb.energy(x + h * e) - mb.energy(x - h * e)) / (2 * h)
                      for e in torch.eye(2, dtype=torch.float64)], 1)
    assert torch.allclose(mb.gradient(x), fd, rtol=1e-6, atol=1e-5)


def test_grid_sampler_histogram_matches_boltzmann_weights():
    """At one temperature, the share of samples in each basin equals the Boltzmann weight of that basin on the grid."""
    data = boltzmann_dataset(100_000, 1, temperatures=(20.0,), resolution=200, generator=torch.Generator().manual_seed(1))
    mb = data.system
    pts, energies, _ = mb.grid(200)
    w = torch.softmax(-energies / 20.0, 0)
    # coarse histogram in 5 x 5 boxes whose edges fall on cell edges (200 = 5 x 40 cells): counts against weights
    (x_lo, x_hi), (y_lo, y_hi) = mb.box
    def box_index(p):
        i = ((p[:, 0] - x_lo) / (x_hi - x_lo) * 5).long().clamp(0, 4)
        j = ((p[:, 1] - y_lo) / (y_hi - y_lo) * 5).long().clamp(0, 4)
        return i * 5 + j
    expected = torch.zeros(25, dtype=torch.float64).index_add_(0, box_index(pts), w)
    observed = torch.bincount(box_index(data.x_train), minlength=25).double() / 100_000
    se = (expected * (1 - expected) / 100_000).sqrt()
    assert torch.all((observed - expected).abs() < 5 * se + 1e-4)


def test_energies_span_the_deepest_basin_to_above_the_saddles(data):
    assert data.E_train.min() < -140 and torch.quantile(data.E_train, 0.95) > -40.66
    assert torch.allclose(data.E_train, data.system.energy(data.x_train))


def test_train_and_test_are_independent_draws(data):
    assert data.x_train.shape == (20_000, 2) and data.x_test.shape == (4_000, 2)
    assert not torch.isin(data.x_test[:, 0], data.x_train[:, 0]).any()


def test_conditional_reference_is_the_training_density_in_the_band(data):
    E_star, delta = -100.0, 2.0
    ref = data.conditional_reference(E_star, 3000, delta=delta, generator=torch.Generator().manual_seed(2))
    energies = data.system.energy(ref)
    assert ref.shape == (3000, 2) and ((energies - E_star).abs() < delta).all()
    # the training samples that fall in the band have the same basin shares as the reference
    in_band = data.x_train[(data.E_train - E_star).abs() < delta]
    assert len(in_band) > 100
    share_ref = torch.bincount(data.system.basin(ref), minlength=3).double() / len(ref)
    share_train = torch.bincount(data.system.basin(in_band), minlength=3).double() / len(in_band)
    se = (share_train * (1 - share_train) / len(in_band)).sqrt()
    assert torch.all((share_ref - share_train).abs() < 5 * se + 0.02)


def test_basin_assignment_of_the_minima_themselves():
    mb = MullerBrown()
    assert mb.basin(mb.minima + 0.01).tolist() == [0, 1, 2]


@pytest.mark.parametrize("call, match", [
    (lambda: MullerBrown().energy(torch.zeros(3, 3)), "x must have shape"),
    (lambda: MullerBrown().energy(torch.full((3, 2), float("nan"))), "x holds NaN"),
    (lambda: boltzmann_dataset(0), "n_train"),
    (lambda: boltzmann_dataset(10, temperatures=(10.0, -1.0)), "temperatures"),
    (lambda: boltzmann_dataset(10, 10, resolution=50).conditional_reference(1e5, 10), "no configuration"),
    (lambda: boltzmann_dataset(10, 10, resolution=50).conditional_reference(-100.0, 10, delta=0.0), "delta"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_the_reference_basin_shares_are_the_density_of_states_of_the_level_set():
    """A density of V alone, restricted to a thin band, is uniform on it: each ring's share of the band is its
    line integral of dl / |grad V|, whatever the temperatures (chapter 6, eq. density-of-states)."""
    mb = MullerBrown()
    for temperatures in ((10.0, 20.0, 40.0), (30.0,)):
        data = boltzmann_dataset(100, 100, temperatures=temperatures, generator=torch.Generator().manual_seed(0))
        for E_star in (-100.0, -60.0):
            weights = mb.level_set_weights(E_star)
            ref = data.conditional_reference(E_star, 3000, delta=0.5, generator=torch.Generator().manual_seed(1))
            shares = torch.bincount(mb.basin(ref), minlength=3).double() / 3000
            assert torch.allclose(shares, weights / weights.sum(), atol=0.035), (temperatures, E_star, shares)


def test_a_held_out_band_is_absent_from_the_training_draw_only():
    data = boltzmann_dataset(2000, 2000, heldout_band=(-105.0, -95.0), generator=torch.Generator().manual_seed(0))
    assert len(data.E_train) == 2000 and not data.in_band(data.E_train).any()
    assert data.in_band(data.E_test).any()
