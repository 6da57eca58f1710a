"""The temperature dial: canonical samples at any temperature from a generator conditioned on the energy.

For canonical data the configurations at a fixed energy form the (configurational) microcanonical ensemble,
whatever the temperature: p_T(x | E) = delta(E(x) - E) / Omega(E). So a generator of p(x | E) and the density
of states Omega(E) give the canonical ensemble at every temperature,

    p_T(x) = int p(x | E) Omega(E) exp(-E / kT) dE / Z(T),

sampled by drawing E from p_T(E) = Omega(E) exp(-E / kT) / Z(T) and then x from the generator at E. Omega(E)
comes from energies simulated at several temperatures by MBAR (Shirts and Chodera 2008, through pymbar): each
pooled frame n gets the weight

    w_n(T) ∝ exp(-E_n / kT) / sum_k N_k exp(f_k - E_n / kT_k),

the MBAR estimate of p_T at that frame, with f_k the reduced free energies of the simulated temperatures.
Chapter 11.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from .. import _checks

Tensor = torch.Tensor

__all__ = ["mbar_free_energies", "canonical_weights", "log_density_of_states", "temperature_dial"]

R_KJ = 8.31446261815324e-3  # the gas constant, kJ/(mol K)


def _pool(E, temperature_of_frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    E = _checks.tensor("E", torch.as_tensor(E), ndim=1).detach().cpu().double().numpy()
    T = _checks.tensor("temperature_of_frame", torch.as_tensor(temperature_of_frame), ndim=1).detach().cpu().double().numpy()
    if E.shape != T.shape:
        raise ValueError(f"E and temperature_of_frame must have the same length, got {E.size} and {T.size}")
    if E.size < 2 or not (np.isfinite(E).all() and np.isfinite(T).all()) or (T <= 0).any():
        raise ValueError("E and temperature_of_frame must be finite, with temperatures > 0 and at least two frames")
    temperatures = np.unique(T)
    return E, T, temperatures


def mbar_free_energies(E, temperature_of_frame) -> tuple[np.ndarray, np.ndarray]:
    """The simulated temperatures (sorted) and their reduced free energies f_k (f of the first = 0) by MBAR,
    from pooled energies ``E`` (kJ/mol) and each frame's temperature (kelvin)."""
    from .. import stats

    E, T, temperatures = _pool(E, temperature_of_frame)
    N_k = np.array([(T == t).sum() for t in temperatures])
    order = np.concatenate([np.flatnonzero(T == t) for t in temperatures])
    u_kn = E[order][None, :] / (R_KJ * temperatures[:, None])
    mbar = stats.pymbar_module("mbar").MBAR(u_kn, N_k, verbose=False)
    return temperatures, np.asarray(mbar.f_k, dtype=np.float64)


def canonical_weights(E, temperature_of_frame, temperature: float) -> Tensor:
    """The MBAR weights ``(N,)`` float64 (summing to 1) of the pooled frames at ``temperature`` kelvin: an
    expectation at that temperature is ``sum_n w_n g(x_n)``. Frame order is that of ``E``."""
    temperature = _checks.real("temperature", temperature, low=0.0, low_open=True)
    E_np, T, _ = _pool(E, temperature_of_frame)
    temperatures, f_k = mbar_free_energies(E_np, T)
    N_k = np.array([(T == t).sum() for t in temperatures])
    # log of the mixture denominator sum_k N_k exp(f_k - E_n / kT_k), then the target's Boltzmann factor
    log_den = np.logaddexp.reduce(np.log(N_k)[:, None] + f_k[:, None] - E_np[None, :] / (R_KJ * temperatures[:, None]),
                                  axis=0)
    log_w = -E_np / (R_KJ * temperature) - log_den
    w = np.exp(log_w - log_w.max())
    return torch.from_numpy(w / w.sum())


def log_density_of_states(E, temperature_of_frame, edges) -> tuple[Tensor, Tensor]:
    """ln Omega(E) on the bins ``edges`` (up to a constant; its maximum is set to 0) by MBAR, with its
    standard error from the number of pooled frames in each bin (sqrt(1 / n), Poisson). Bins without a frame
    get -inf and an infinite error."""
    E_np, T, _ = _pool(E, temperature_of_frame)
    edges = _checks.tensor("edges", torch.as_tensor(edges, dtype=torch.float64), ndim=1).numpy()
    if edges.size < 2 or not (np.diff(edges) > 0).all():
        raise ValueError("edges must be increasing, at least two of them")
    temperatures, f_k = mbar_free_energies(E_np, T)
    N_k = np.array([(T == t).sum() for t in temperatures])
    log_den = np.logaddexp.reduce(np.log(N_k)[:, None] + f_k[:, None] - E_np[None, :] / (R_KJ * temperatures[:, None]),
                                  axis=0)
    bins = np.digitize(E_np, edges) - 1
    inside = (bins >= 0) & (bins < edges.size - 1)
    log_omega = np.full(edges.size - 1, -np.inf)
    counts = np.bincount(bins[inside], minlength=edges.size - 1)
    for b in np.flatnonzero(counts):
        log_omega[b] = np.logaddexp.reduce(-log_den[inside & (bins == b)]) - np.log(edges[b + 1] - edges[b])
    log_omega -= log_omega[np.isfinite(log_omega)].max()
    se = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), np.inf)
    return torch.from_numpy(log_omega), torch.from_numpy(se)


def temperature_dial(sample_at_energy: Callable[[Tensor], Tensor], E, temperature_of_frame, temperature: float,
                     n: int, *, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """Canonical samples at ``temperature`` from a generator conditioned on the energy.

    Draws ``n`` energies from p_T(E) (the pooled energies ``E``, simulated at the temperatures
    ``temperature_of_frame``, resampled with their MBAR weights :func:`canonical_weights`) and returns them
    with ``sample_at_energy(E_drawn)``, the generator's samples at those energies: ``(E_drawn (n,), x)``.
    """
    if not callable(sample_at_energy):
        raise TypeError(f"sample_at_energy must be callable, got {type(sample_at_energy).__name__}")
    n = _checks.integer("n", n, low=1)
    w = canonical_weights(E, temperature_of_frame, temperature)
    idx = torch.multinomial(w, n, replacement=True, generator=generator)
    E_drawn = torch.as_tensor(E).detach().cpu().double()[idx]
    return E_drawn, sample_at_energy(E_drawn)
