"""A physical system with an exact answer: the Müller-Brown potential and its Boltzmann samples.

The Müller-Brown potential (Müller & Brown 1979) is a sum of four Gaussian wells on the plane, with three
minima and two saddles: the classic test of chemistry's path and sampling methods. Chapter 6
(``book/06_energy_conditioned_generation``) generates configurations at a requested energy E on it.

Exact sampling on a fine grid (a multinomial draw of cells plus uniform jitter inside the cell) gives
Boltzmann samples at any temperature in milliseconds, with no Markov chain to equilibrate. Restricting the
same grid distribution to an energy band gives the **exact reference** for p(x | E*), so generated samples
can be compared with the true conditional distribution, not only with the target energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .. import _checks

Tensor = torch.Tensor

__all__ = ["MullerBrown", "BoltzmannData", "boltzmann_dataset"]

# Müller & Brown (1979), Table 1: V(x, y) = sum_i A_i exp(a_i (x - x0_i)^2 + b_i (x - x0_i)(y - y0_i) + c_i (y - y0_i)^2)
_A = (-200.0, -100.0, -170.0, 15.0)
_a = (-1.0, -1.0, -6.5, 0.7)
_b = (0.0, 0.0, 11.0, 0.6)
_c = (-10.0, -10.0, -6.5, 0.7)
_x0 = (1.0, 0.0, -0.5, -1.0)
_y0 = (0.0, 0.5, 1.5, 1.0)


def _points(name: str, x) -> Tensor:
    """Check a batch of points of the plane, ``(B, 2)``."""
    _checks.tensor(name, x, ndim=2, floating=True)
    if x.shape[1] != 2:
        raise ValueError(f"{name} must have shape (B, 2), got {tuple(x.shape)}")
    return x


class MullerBrown:
    """The Müller-Brown potential on the box ``[-1.5, 1.2] x [-0.5, 2.0]``.

    ``energy(x)`` and ``gradient(x)`` take a batch of points ``(B, 2)`` and return ``(B,)`` and ``(B, 2)``.
    ``minima`` and ``saddles`` hold the stationary points (Müller & Brown 1979), rows of ``(3, 2)`` and ``(2, 2)``.
    """

    box = ((-1.5, 1.2), (-0.5, 2.0))
    minima = torch.tensor([[-0.558224, 1.441726], [0.623499, 0.028038], [-0.050011, 0.466694]], dtype=torch.float64)
    saddles = torch.tensor([[-0.822002, 0.624313], [0.212487, 0.292988]], dtype=torch.float64)

    def __repr__(self) -> str:
        return "MullerBrown()"

    def energy(self, x: Tensor) -> Tensor:
        """V(x), ``(B, 2) -> (B,)``, in the dtype and on the device of ``x``."""
        _points("x", x)
        p = [torch.tensor(v, dtype=x.dtype, device=x.device) for v in (_A, _a, _b, _c, _x0, _y0)]
        A, a, b, c, x0, y0 = p
        dx, dy = x[:, :1] - x0, x[:, 1:] - y0
        return (A * torch.exp(a * dx ** 2 + b * dx * dy + c * dy ** 2)).sum(1)

    def gradient(self, x: Tensor) -> Tensor:
        """grad V(x), ``(B, 2) -> (B, 2)``, by automatic differentiation of :meth:`energy`."""
        _points("x", x)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(xg).sum(), xg)
        return g

    def grid(self, resolution: int = 400) -> tuple[Tensor, Tensor, float]:
        """Cell centres ``(resolution^2, 2)`` of a regular grid over the box, their energies, and the cell area."""
        resolution = _checks.integer("resolution", resolution, low=2)
        (x_lo, x_hi), (y_lo, y_hi) = self.box
        hx, hy = (x_hi - x_lo) / resolution, (y_hi - y_lo) / resolution
        xs = x_lo + hx * (torch.arange(resolution, dtype=torch.float64) + 0.5)
        ys = y_lo + hy * (torch.arange(resolution, dtype=torch.float64) + 0.5)
        pts = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
        return pts, self.energy(pts), hx * hy

    def level_set_weights(self, E_star: float, *, resolution: int = 800) -> Tensor:
        """The density of states of each basin on the level set V(x) = E*: the line integral of dl / ``|grad V|``
        along the contour lines in the box that flow to each minimum, ``(3,)``, float64. Chapter 6.

        A density that depends on x only through V(x), restricted to a thin band ``|V - E*| < delta``, is uniform on
        the band, and the band's width across the contour is 2 delta / ``|grad V|``: so each ring's share of the band
        is its share of this line integral, whatever the temperatures. The contour lines come from
        ``contourpy`` (a matplotlib dependency) on a grid of ``resolution^2`` points; each segment is weighted by
        its length over ``|grad V|`` at its midpoint and assigned to the basin of its midpoint.
        """
        import contourpy

        E_star = _checks.real("E_star", E_star)
        resolution = _checks.integer("resolution", resolution, low=10)
        (x_lo, x_hi), (y_lo, y_hi) = self.box
        xs = torch.linspace(x_lo, x_hi, resolution, dtype=torch.float64)
        ys = torch.linspace(y_lo, y_hi, resolution, dtype=torch.float64)
        X, Y = torch.meshgrid(xs, ys, indexing="xy")
        Z = self.energy(torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).reshape(X.shape)
        lines = contourpy.contour_generator(xs.numpy(), ys.numpy(), Z.numpy()).lines(E_star)
        segments = [torch.as_tensor(line, dtype=torch.float64) for line in lines if len(line) > 1]
        if not segments:
            raise ValueError(f"E_star={E_star} has no level set in the box")
        a = torch.cat([seg[:-1] for seg in segments])
        b = torch.cat([seg[1:] for seg in segments])
        mid, length = (a + b) / 2, (b - a).norm(dim=1)
        weight = length / self.gradient(mid).norm(dim=1)
        return torch.zeros(len(self.minima), dtype=torch.float64).index_add_(0, self.basin(mid), weight)

    def basin(self, x: Tensor, *, steps: int = 200, step_size: float = 2e-3) -> Tensor:
        """Index of the minimum each point flows to under gradient descent, ``(B,)`` long.

        The step is ``step_size`` times the gradient, capped at ``step_size`` in length, so steep walls do
        not throw points out of their basin.
        """
        _checks.tensor("x", x, ndim=2, floating=True)
        steps = _checks.integer("steps", steps, low=1)
        step_size = _checks.real("step_size", step_size, low=0.0, low_open=True)
        # in float64 on the CPU: nothing float64 goes to an accelerator
        y = x.detach().to(device="cpu", dtype=torch.float64)
        for _ in range(steps):
            g = self.gradient(y)
            y = y - step_size * g / g.norm(dim=1, keepdim=True).clamp(min=1.0)
        return torch.cdist(y, self.minima).argmin(1).to(x.device)


def _grid_sample(points: Tensor, weights: Tensor, n: int, cell: tuple[float, float],
                 generator: Optional[torch.Generator]) -> Tensor:
    """Draw n cells by their weights and jitter uniformly inside each cell."""
    idx = torch.multinomial(weights, n, replacement=True, generator=generator)
    jitter = (torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5) * torch.tensor(cell, dtype=torch.float64)
    return points[idx] + jitter


@dataclass(frozen=True)
class BoltzmannData:
    """Boltzmann samples of a potential over several temperatures, with an exact conditional reference.

    Attributes:
        x_train, E_train: training configurations ``(N, 2)`` and their energies ``(N,)``; with a held-out band,
            none of them has an energy in it.
        x_test, E_test: an independent draw of the whole distribution, which no model trains on.
        temperatures: the temperatures kT mixed in equal parts.
        heldout_band: ``(E_low, E_high)``, energies the training draw excludes (or None): targets inside it
            test a model on energies it never saw.
    """

    system: MullerBrown
    temperatures: tuple
    x_train: Tensor
    E_train: Tensor
    x_test: Tensor
    E_test: Tensor
    resolution: int
    heldout_band: Optional[tuple] = None

    def in_band(self, E) -> Tensor:
        """Whether energies lie in the held-out band (bool, the shape of ``E``); all False without a band."""
        if not isinstance(E, (Tensor, float, int)):
            raise TypeError(f"E must be a tensor of energies or a number, got {type(E).__name__}")
        E = torch.as_tensor(E)
        if self.heldout_band is None:
            return torch.zeros_like(E, dtype=torch.bool)
        lo, hi = self.heldout_band
        return (E >= lo) & (E <= hi)

    @property
    def mean(self) -> Tensor:
        """Mean of the training configurations, ``(2,)``: the origin of the standardised coordinates."""
        return self.x_train.mean(0)

    @property
    def std(self) -> Tensor:
        """Per-coordinate standard deviation of the training configurations, ``(2,)``."""
        return self.x_train.std(0)

    def standardize(self, x: Tensor) -> Tensor:
        """Configurations to the zero-mean, unit-variance coordinates that the networks see."""
        _points("x", x)
        return (x - self.mean.to(x)) / self.std.to(x)

    def unstandardize(self, z: Tensor) -> Tensor:
        """Network coordinates back to configurations of the potential."""
        _points("z", z)
        return z * self.std.to(z) + self.mean.to(z)

    def _grid_weights(self):
        pts, energies, _ = self.system.grid(self.resolution)
        shifted = energies - energies.min()
        w = sum(torch.softmax(-shifted / kT, 0) for kT in self.temperatures) / len(self.temperatures)
        return pts, energies, w

    def log_density(self, x: Tensor) -> Tensor:
        """Unnormalised log of the training density (the temperature mixture) at ``x``, ``(B,)``."""
        _points("x", x)
        energies = self.system.energy(x.to(device="cpu", dtype=torch.float64))
        lo = self.system.energy(self.system.minima).min()
        terms = torch.stack([-(energies - lo) / kT for kT in self.temperatures])
        return torch.logsumexp(terms, 0)

    def conditional_reference(self, E_star: float, n: int, *, delta: float = 2.0,
                              generator: Optional[torch.Generator] = None) -> Tensor:
        """Exact samples of ``p(x | |E(x) - E*| < delta)``, where ``p`` is the whole temperature mixture (the
        held-out band included, as in the test draw): the reference that chapter 6 scores every sampler against.

        Grid cells whose centre's energy lies within ``delta + 5`` of ``E*`` are drawn by their weight, jittered
        uniformly within the cell, and kept only if the jittered point's energy is in the band (rejection). The
        margin of 5 exceeds half a cell's energy range near the level sets chapter 6 uses (at most about 2.4 at
        the default resolution of 400), so no cell that can reach the band is left out, and the result is exact
        up to the grid's resolution. Returns ``(n, 2)`` float64.
        """
        E_star = _checks.real("E_star", E_star)
        delta = _checks.real("delta", delta, low=0.0, low_open=True)
        n = _checks.integer("n", n, low=1)
        pts, energies, w = self._grid_weights()
        band = (energies - E_star).abs() < delta + 5.0
        if not bool(band.any()):
            raise ValueError(f"no configuration of the box has an energy within {delta} of E_star={E_star}")
        (x_lo, x_hi), (y_lo, y_hi) = self.system.box
        cell = ((x_hi - x_lo) / self.resolution, (y_hi - y_lo) / self.resolution)
        out, have = [], 0
        for _ in range(100):
            cand = _grid_sample(pts, torch.where(band, w, torch.zeros_like(w)), 4 * n, cell, generator)
            cand = cand[(self.system.energy(cand) - E_star).abs() < delta]
            out.append(cand)
            have += len(cand)
            if have >= n:
                break
        else:
            raise RuntimeError(f"could not draw {n} reference samples at E_star={E_star}; widen delta")
        return torch.cat(out)[:n]


def boltzmann_dataset(n_train: int = 20_000, n_test: int = 5_000, *,
                      temperatures: Sequence[float] = (10.0, 20.0, 40.0), resolution: int = 400,
                      heldout_band: Optional[tuple] = None,
                      generator: Optional[torch.Generator] = None) -> BoltzmannData:
    """Exact Boltzmann samples of the Müller-Brown potential, mixed over ``temperatures`` (kT, in the
    potential's units), drawn on a ``resolution x resolution`` grid with jitter. The default temperatures
    put the energies from the deepest basin to above both saddles. Chapter 6.

    ``heldout_band = (E_low, E_high)`` excludes that band of energies from the training draw (by rejection, so
    the training samples are exact samples of the distribution restricted to the energies outside it); the
    test draw keeps the whole distribution.
    """
    n_train = _checks.integer("n_train", n_train, low=1)
    n_test = _checks.integer("n_test", n_test, low=1)
    if isinstance(temperatures, (str, bytes)) or not hasattr(temperatures, "__len__"):
        raise TypeError(f"temperatures must be a sequence of kT values, got {type(temperatures).__name__}")
    if len(temperatures) < 1:
        raise ValueError("temperatures must hold at least one temperature")
    temps = tuple(_checks.real("temperatures", kT, low=0.0, low_open=True) for kT in temperatures)
    data = BoltzmannData(MullerBrown(), temps, torch.empty(0, 2), torch.empty(0), torch.empty(0, 2), torch.empty(0),
                         _checks.integer("resolution", resolution, low=10))
    band = None
    if heldout_band is not None:
        lo, hi = (_checks.real("heldout_band", v) for v in heldout_band)
        if not lo < hi:
            raise ValueError(f"heldout_band must be (E_low, E_high) with E_low < E_high, got {heldout_band!r}")
        band = (lo, hi)
    pts, _, w = data._grid_weights()
    (x_lo, x_hi), (y_lo, y_hi) = data.system.box
    cell = ((x_hi - x_lo) / resolution, (y_hi - y_lo) / resolution)
    x = _grid_sample(pts, w, n_train + n_test, cell, generator)
    E = data.system.energy(x)
    x_train, E_train, x_test, E_test = x[:n_train], E[:n_train], x[n_train:], E[n_train:]
    if band is not None:
        keep = ~((E_train >= band[0]) & (E_train <= band[1]))
        x_train, E_train = x_train[keep], E_train[keep]
        while len(x_train) < n_train:              # rejection: draw again until the training split is full
            more = _grid_sample(pts, w, n_train, cell, generator)
            E_more = data.system.energy(more)
            keep = ~((E_more >= band[0]) & (E_more <= band[1]))
            x_train, E_train = torch.cat([x_train, more[keep]]), torch.cat([E_train, E_more[keep]])
        x_train, E_train = x_train[:n_train], E_train[:n_train]
    return BoltzmannData(data.system, temps, x_train, E_train, x_test, E_test, resolution, band)
