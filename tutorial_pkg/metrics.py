"""How good are guided samples? Energy error, Wasserstein distances, basins, accuracy and diversity.

Chapter 6 scores energy-conditioned samples of the Müller-Brown potential against their targets and against
the exact conditional reference; chapter 7 scores digits with an independent classifier and a diversity
measure. 1-D Wasserstein distances come from SciPy; chapter 11 compares torsion angles with the Wasserstein-1
distance on the circle.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import torch

from . import _checks

Tensor = torch.Tensor

__all__ = ["EnergyError", "energy_error", "wasserstein_1d", "sliced_wasserstein", "basin_occupancy",
           "classifier_accuracy", "within_class_distance", "z_scores", "coverage", "circular_wasserstein"]


class EnergyError(NamedTuple):
    """Median and mean of ``|E(x) - E*|`` over the samples of one target."""

    median: float
    mean: float


def _as_numpy_1d(name: str, value) -> np.ndarray:
    if isinstance(value, Tensor):
        _checks.tensor(name, value, ndim=1)
        value = value.detach().cpu().double().numpy()
    value = np.asarray(value, dtype=np.float64)
    if value.ndim != 1 or value.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of samples, got shape {value.shape}")
    if not np.isfinite(value).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return value


def energy_error(energies, target: float) -> EnergyError:
    """Median and mean absolute distance of the samples' energies ``(N,)`` from the target E*."""
    e = _as_numpy_1d("energies", energies)
    target = _checks.real("target", target)
    err = np.abs(e - target)
    return EnergyError(float(np.median(err)), float(err.mean()))


@torch.no_grad()
def z_scores(regressor, x_t: Tensor, t, E) -> Tensor:
    """``z = (E - f(x_t, t)) / sigma(x_t, t)`` of a Gaussian regressor, ``(B,)`` on the regressor's device.

    ``regressor(x_t, t) -> (f, log_sigma)``, as :class:`tutorial_pkg.nets.NoiseAwareRegressor`. A calibrated
    regressor gives z of mean 0 and standard deviation 1 in every group of ``x_t`` (chapter 6).
    """
    if not callable(regressor):
        raise TypeError(f"regressor must be callable as regressor(x_t, t) -> (f, log_sigma), got {type(regressor).__name__}")
    f, log_sigma = regressor(x_t, t)
    E = torch.as_tensor(E, device=f.device, dtype=f.dtype)
    if E.ndim == 0:
        E = E.expand(f.shape[0])
    if E.shape != f.shape:
        raise ValueError(f"E must be a number or have shape {tuple(f.shape)}, got {tuple(E.shape)}")
    return (E - f) / log_sigma.exp()


def coverage(z: Tensor, level: float = 0.95) -> float:
    """The share of z-scores in the central interval that holds ``level`` of a standard normal
    (``|z| < 1.96`` for 0.95): ``level`` itself for a calibrated Gaussian regressor (chapter 6)."""
    _checks.tensor("z", z, ndim=1)
    level = _checks.real("level", level, low=0.0, high=1.0, low_open=True, high_open=True)
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor((1 + level) / 2, dtype=torch.float64)).item()
    return (z.abs() < q).double().mean().item()


def wasserstein_1d(a, b) -> float:
    """The Wasserstein-1 distance between two 1-D samples (``scipy.stats.wasserstein_distance``)."""
    from scipy.stats import wasserstein_distance  # here, not at import: scipy.stats takes about a second to import

    return float(wasserstein_distance(_as_numpy_1d("a", a), _as_numpy_1d("b", b)))


def circular_wasserstein(a, b) -> float:
    """The Wasserstein-1 distance between two samples of angles ``(N,)`` and ``(M,)`` in radians, on the circle
    of circumference 2 pi (any range; angles are wrapped): W1 = min_alpha integral abs(F(theta) - G(theta) - alpha)
    over [0, 2 pi), with F, G the empirical distribution functions and alpha their best offset, a weighted median
    of F - G (Rabin, Delon and Gousseau 2011, J. Math. Imaging Vis. 41, 147; chapter 11, eq. (circular-w1)).
    An angle and the same angle plus 2 pi are the same point; the distance is at most pi."""
    two_pi = 2 * np.pi
    x, y = (np.mod(_as_numpy_1d(name, v), two_pi) for name, v in (("a", a), ("b", b)))
    grid = np.concatenate([[0.0], np.sort(np.concatenate([x, y])), [two_pi]])
    width = np.diff(grid)                                    # the intervals on which F - G is constant
    left = grid[:-1]
    diff = (np.searchsorted(np.sort(x), left, side="right") / len(x)
            - np.searchsorted(np.sort(y), left, side="right") / len(y))
    order = np.argsort(diff)
    cum = np.cumsum(width[order])
    alpha = diff[order][np.searchsorted(cum, 0.5 * cum[-1])]  # weighted median of F - G
    return float(np.sum(width * np.abs(diff - alpha)))


def sliced_wasserstein(x: Tensor, y: Tensor, *, n_projections: int = 128,
                       generator: Optional[torch.Generator] = None, x_weights: Optional[Tensor] = None,
                       y_weights: Optional[Tensor] = None) -> float:
    """Sliced Wasserstein-1 distance between point clouds ``(N, D)`` and ``(M, D)``.

    The mean, over ``n_projections`` random unit directions, of the 1-D Wasserstein-1 distance between the
    projected samples (Bonneel et al. 2015). It is 0 for identical distributions and grows with any
    difference of location or shape; for a shift by a vector ``v`` in D = 2 it is ``|v|`` times the mean
    ``|cos|`` of the random directions, ``2 |v| / pi``.

    ``x_weights`` ``(N,)`` and ``y_weights`` ``(M,)``, non-negative with a positive sum, weight the points in the
    projected empirical distribution functions (equal weights when left out). A weighted particle set, such as
    :func:`tutorial_pkg.smc.smc_sample` returns, is then scored as it estimates, without resampling it to equal
    weights first (which would add the duplicates' noise to the distance). Integer weights give the distance of
    the set with each point repeated that many times.
    """
    _checks.tensor("x", x, ndim=2)
    _checks.tensor("y", y, ndim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    n_projections = _checks.integer("n_projections", n_projections, low=1)
    wx = _point_weights("x_weights", x_weights, x.shape[0])
    wy = _point_weights("y_weights", y_weights, y.shape[0])
    directions = torch.randn(n_projections, x.shape[1], generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    px = (x.detach().cpu().double() @ directions.T).numpy()
    py = (y.detach().cpu().double() @ directions.T).numpy()
    # all projections at once: W1 = integral of |F_x - F_y| between the sorted pooled values (as scipy's
    # wasserstein_distance computes it for one projection)
    mx = np.full(x.shape[0], 1 / x.shape[0]) if wx is None else wx / wx.sum()
    my = np.full(y.shape[0], 1 / y.shape[0]) if wy is None else wy / wy.sum()
    pooled = np.concatenate([px, py])
    order = np.argsort(pooled, axis=0, kind="stable")
    values = np.take_along_axis(pooled, order, axis=0)
    cdf_gap = np.cumsum(np.concatenate([mx, -my])[order], axis=0)[:-1]
    return float(np.mean((np.abs(cdf_gap) * np.diff(values, axis=0)).sum(0)))


def _point_weights(name: str, weights, n: int):
    """``weights`` as a float64 numpy array of n non-negative numbers with a positive sum, or None."""
    if weights is None:
        return None
    _checks.tensor(name, weights, ndim=1)
    if weights.shape[0] != n:
        raise ValueError(f"{name} must hold one weight per point ({n}), got {weights.shape[0]}")
    w = weights.detach().cpu().double().numpy()
    if (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"{name} must be non-negative with a positive sum")
    return w


def basin_occupancy(basins: Tensor, n_basins: int) -> Tensor:
    """The fraction of samples in each basin, ``(n_basins,)``, from basin indices such as
    :meth:`tutorial_pkg.systems.MullerBrown.basin` returns."""
    _checks.tensor("basins", basins, ndim=1)
    n_basins = _checks.integer("n_basins", n_basins, low=1)
    if basins.numel() == 0:
        raise ValueError("basins must hold at least one sample")
    if basins.is_floating_point() or basins.min().item() < 0 or basins.max().item() >= n_basins:
        raise ValueError(f"basins must be integer indices in 0..{n_basins - 1}")
    return torch.bincount(basins.long().cpu(), minlength=n_basins).double() / basins.numel()


@torch.no_grad()
def classifier_accuracy(classifier, x: Tensor, labels: Tensor) -> float:
    """Fraction of samples ``(N, D)`` whose predicted class (argmax of ``classifier(x)``) equals ``labels``.

    Use an *independent* classifier, trained on held-out real data, never on the generator's training split.
    """
    if not callable(classifier):
        raise TypeError(f"classifier must be callable as classifier(x) -> logits, got {type(classifier).__name__}")
    _checks.tensor("x", x, ndim=2, floating=True)
    _checks.tensor("labels", labels, ndim=1)
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries, but x has {x.shape[0]} samples")
    pred = classifier(x).argmax(1).cpu()
    return float((pred == labels.cpu()).double().mean())


def within_class_distance(x: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Mean pairwise Euclidean distance between samples of the same class, one value per class, ``(K,)``.

    A diversity measure: compare it with the same figure for real data (a collapsed generator scores low).
    Classes with fewer than two samples get NaN.
    """
    _checks.tensor("x", x, ndim=2, floating=True)
    _checks.tensor("labels", labels, ndim=1)
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries, but x has {x.shape[0]} samples")
    num_classes = _checks.integer("num_classes", num_classes, low=1)
    # on the CPU, so that x and labels may come from different devices
    x, labels = x.detach().cpu().double(), labels.cpu()
    out = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    for k in range(num_classes):
        xk = x[labels == k]
        if len(xk) >= 2:
            d = torch.cdist(xk, xk)
            out[k] = d.sum() / (len(xk) * (len(xk) - 1))
    return out
