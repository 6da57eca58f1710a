"""The temperature dial of chapter 11 against an exact answer: a d-dimensional harmonic oscillator, whose
energy at temperature T is Gamma(d/2, RT) distributed and whose density of states is Omega(E) ∝ E^(d/2 - 1)."""

import math

import numpy as np
import pytest
import torch

from tutorial_pkg.systems import temperature as dial

pytest.importorskip("pymbar")

D = 39                                     # the angular degrees of freedom of chapter 11's molecule
SIMULATED = (300.0, 400.0, 500.0, 650.0)


@pytest.fixture(scope="module")
def pooled():
    g = torch.Generator().manual_seed(0)
    E = torch.cat([torch.distributions.Gamma(torch.full((4000,), D / 2), torch.full((4000,), 1 / (dial.R_KJ * T)))
                   .sample() for T in SIMULATED])
    torch.manual_seed(0)
    T_of = torch.tensor(SIMULATED, dtype=torch.float64).repeat_interleave(4000)
    return E.double(), T_of


@pytest.mark.parametrize("T", [350.0, 575.0])
def test_reweighted_mean_and_spread_match_the_exact_canonical_ones(pooled, T):
    E, T_of = pooled
    w = dial.canonical_weights(E, T_of, T)
    assert w.sum().item() == pytest.approx(1.0) and (w >= 0).all()
    mean = (w * E).sum().item()
    sd = math.sqrt((w * (E - mean) ** 2).sum().item())
    assert mean == pytest.approx(D / 2 * dial.R_KJ * T, rel=0.01)
    assert sd == pytest.approx(math.sqrt(D / 2) * dial.R_KJ * T, rel=0.05)


def test_the_dial_draws_energies_from_p_T_and_hands_them_to_the_generator(pooled):
    E, T_of = pooled
    E_drawn, x = dial.temperature_dial(lambda e: 2 * e, E, T_of, 575.0, 20000,
                                       generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, 2 * E_drawn)
    assert E_drawn.mean().item() == pytest.approx(D / 2 * dial.R_KJ * 575.0, rel=0.01)


def test_the_density_of_states_has_the_exact_slope(pooled):
    E, T_of = pooled
    edges = torch.linspace(40.0, 100.0, 13, dtype=torch.float64)
    log_omega, se = dial.log_density_of_states(E, T_of, edges)
    lo, hi, a = edges[:-1].numpy(), edges[1:].numpy(), D / 2 - 1
    exact = np.log((hi ** (a + 1) - lo ** (a + 1)) / ((a + 1) * (hi - lo)))      # the bin average of E^a
    d = log_omega.numpy() - exact
    d -= np.average(d, weights=1 / se.numpy() ** 2)                             # up to a constant
    assert np.all(np.isfinite(d)) and (se > 0).all()
    assert np.all(np.abs(d) < 4 * se.numpy() + 0.02), (d, se)


def test_bad_input_is_refused(pooled):
    E, T_of = pooled
    with pytest.raises(ValueError, match="same length"):
        dial.canonical_weights(E, T_of[:-1], 350.0)
    with pytest.raises(ValueError, match="temperature"):
        dial.canonical_weights(E, T_of, -1.0)
    with pytest.raises(TypeError, match="sample_at_energy"):
        dial.temperature_dial(None, E, T_of, 350.0, 10)
    with pytest.raises(ValueError, match="edges"):
        dial.log_density_of_states(E, T_of, torch.tensor([1.0, 0.0]))
