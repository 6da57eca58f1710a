"""Internal coordinates of a molecule: a Z-matrix, the NeRF conversion back to Cartesian, and the feature
vector that a diffusion model learns (chapter 11).

A Z-matrix places three root atoms in a fixed frame and every other atom ``i`` from three atoms placed
before it, ``j`` (bonded to ``i``), ``k`` and ``l``: by the bond length ``|x_i - x_j|``, the bond angle
``(x_i, x_j, x_k)`` and the torsion ``(x_i, x_j, x_k, x_l)``. Going back to Cartesian coordinates places one
atom per row with the natural extension reference frame (NeRF; Parsons et al. 2005, J. Comput. Chem. 26,
1063), vectorised over the batch. Internal coordinates do not change under rotations and translations, so
a model of them never has to learn those symmetries.

:class:`InternalFeatures` fixes the bonds at the force field's r0, standardises the bond angles, centres
the near-constant torsions on their circular mean and writes the freely rotating torsions as (cos, sin)
pairs. Its decoder normalises each pair with atan2, so that every vector decodes to a molecule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .. import _checks

Tensor = torch.Tensor

__all__ = ["wrap", "bond_angle", "dihedral", "nerf", "kabsch_align", "ZMatrix", "InternalFeatures"]


def _frames(name: str, x, n_atoms: Optional[int] = None) -> Tensor:
    """Check a batch of configurations ``(B, n_atoms, 3)``."""
    _checks.tensor(name, x, ndim=3, floating=True)
    if x.shape[2] != 3 or (n_atoms is not None and x.shape[1] != n_atoms):
        want = f"(B, {n_atoms}, 3)" if n_atoms is not None else "(B, n_atoms, 3)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    return x


def _columns(name: str, value, batch: int, width: int, ref: Tensor) -> Tensor:
    """Check a per-frame block ``(B, width)`` on the device and in the dtype of ``ref``."""
    _checks.tensor(name, value, ndim=2, floating=True)
    if tuple(value.shape) != (batch, width):
        raise ValueError(f"{name} must have shape ({batch}, {width}), got {tuple(value.shape)}")
    _checks.same_tensor_kind(name, value, "bonds", ref, shape=False)
    return value


def _points(names: Sequence[str], points: Sequence) -> None:
    """Check points ``(..., 3)`` of one shape, dtype and device."""
    for name, p in zip(names, points):
        _checks.tensor(name, p, floating=True)
        if p.ndim < 1 or p.shape[-1] != 3 or p.shape != points[0].shape:
            raise ValueError(f"{name} must have shape (..., 3) like {names[0]} {tuple(points[0].shape)}, "
                             f"got {tuple(p.shape)}")
        _checks.same_tensor_kind(name, p, names[0], points[0])


def wrap(theta: Tensor) -> Tensor:
    """An angle mapped to ``(-pi, pi]``, elementwise."""
    _checks.tensor("theta", theta, floating=True, finite=False)
    return _wrap(theta)


def _wrap(theta: Tensor) -> Tensor:
    return math.pi - torch.remainder(math.pi - theta, 2 * math.pi)


def bond_angle(x_a: Tensor, x_b: Tensor, x_c: Tensor) -> Tensor:
    """The angle at ``x_b`` between ``x_a`` and ``x_c``, in ``[0, pi]``; ``(..., 3) -> (...)``."""
    _points(("x_a", "x_b", "x_c"), (x_a, x_b, x_c))
    return _angle(x_a, x_b, x_c)


def _angle(x_a: Tensor, x_b: Tensor, x_c: Tensor) -> Tensor:
    u, v = x_a - x_b, x_c - x_b
    return torch.atan2(torch.linalg.cross(u, v).norm(dim=-1), (u * v).sum(-1))


def dihedral(x_a: Tensor, x_b: Tensor, x_c: Tensor, x_d: Tensor) -> Tensor:
    """The torsion angle of four points in ``[-pi, pi]``, ``(..., 3) -> (...)``: the angle between the planes
    (a, b, c) and (b, c, d), positive when a-b turns clockwise onto c-d seen along b -> c (IUPAC), from
    atan2 of its sine and cosine (Blondel & Karplus 1996, J. Comput. Chem. 17, 1132)."""
    _points(("x_a", "x_b", "x_c", "x_d"), (x_a, x_b, x_c, x_d))
    return _dihedral(x_a, x_b, x_c, x_d)


def _dihedral(x_a: Tensor, x_b: Tensor, x_c: Tensor, x_d: Tensor) -> Tensor:
    b0, b2 = x_a - x_b, x_d - x_c
    b1 = x_c - x_b
    b1 = b1 / b1.norm(dim=-1, keepdim=True)
    # the two outer bonds, projected onto the plane normal to the middle bond
    v = b0 - (b0 * b1).sum(-1, keepdim=True) * b1
    w = b2 - (b2 * b1).sum(-1, keepdim=True) * b1
    return torch.atan2((torch.linalg.cross(b1, v) * w).sum(-1), (v * w).sum(-1))


def _place(x_a: Tensor, x_b: Tensor, x_c: Tensor, bond: Tensor, angle: Tensor, torsion: Tensor) -> Tensor:
    # NeRF (Parsons et al. 2005): the new atom in the frame (bc, n x bc, n) of the three atoms before it
    bc = x_c - x_b
    bc = bc / bc.norm(dim=-1, keepdim=True)
    n = torch.linalg.cross(x_b - x_a, bc)
    n = n / n.norm(dim=-1, keepdim=True)
    m = torch.linalg.cross(n, bc)
    r, cos_a, sin_a = bond[:, None], torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    return x_c + r * (-cos_a * bc + sin_a * torch.cos(torsion)[:, None] * m + sin_a * torch.sin(torsion)[:, None] * n)


def nerf(x_a: Tensor, x_b: Tensor, x_c: Tensor, bond: Tensor, angle: Tensor, torsion: Tensor) -> Tensor:
    """The point ``x_d`` with ``|x_d - x_c| = bond``, ``bond_angle(x_b, x_c, x_d) = angle`` and
    ``dihedral(x_a, x_b, x_c, x_d) = torsion``: one step of NeRF (Parsons et al. 2005, Fig. 2).

    ``x_a, x_b, x_c``: ``(B, 3)``; ``bond, angle, torsion``: ``(B,)``. Returns ``(B, 3)``.
    """
    _points(("x_a", "x_b", "x_c"), (x_a, x_b, x_c))
    if x_a.ndim != 2:
        raise ValueError(f"x_a must have shape (B, 3), got {tuple(x_a.shape)}")
    for name, p in (("bond", bond), ("angle", angle), ("torsion", torsion)):
        _checks.tensor(name, p, ndim=1, floating=True)
        if p.shape[0] != x_a.shape[0]:
            raise ValueError(f"{name} must have shape ({x_a.shape[0]},), the batch of x_a, got {tuple(p.shape)}")
        _checks.same_tensor_kind(name, p, "x_a", x_a, shape=False)
    return _place(x_a, x_b, x_c, bond, angle, torsion)


def kabsch_align(x: Tensor, y: Tensor) -> Tensor:
    """``x`` rotated and translated onto ``y`` by the least-squares rigid motion (Kabsch 1976, Acta Cryst.
    A32, 922; no reflection); ``(B, N, 3), (B, N, 3) -> (B, N, 3)``."""
    _frames("x", x)
    _frames("y", y)
    _checks.same_tensor_kind("y", y, "x", x)
    x_mean, y_mean = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
    H = (x - x_mean).transpose(1, 2) @ (y - y_mean)
    U, _, Vh = torch.linalg.svd(H)
    # a proper rotation: flip the last axis when the best orthogonal map is a reflection
    d = torch.sign(torch.linalg.det(Vh.transpose(1, 2) @ U.transpose(1, 2)))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = Vh.transpose(1, 2) @ D @ U.transpose(1, 2)
    return (x - x_mean) @ R.transpose(1, 2) + y_mean


@dataclass(frozen=True)
class ZMatrix:
    """A Z-matrix: ``root = (centre, first, second)``, both bonded to the centre, and one row ``(i, j, k, l)``
    per further atom, placed by bond ``(i, j)``, angle ``(i, j, k)`` and torsion ``(i, j, k, l)`` from atoms
    placed before it. ``atom_names`` (optional) name the atoms in :attr:`InternalFeatures.names`.

    The internal coordinates come in the order of :attr:`bonds` ``(n_atoms - 1)``, :attr:`angles`
    ``(n_atoms - 2)`` and :attr:`torsions` ``(n_atoms - 3)``: the root's first, then one per row.
    """

    root: tuple
    rows: tuple
    atom_names: tuple = ()

    def __post_init__(self):
        n = 3 + len(self.rows)
        placed = list(self.root)
        if len(self.root) != 3 or len(set(self.root)) != 3 or not all(isinstance(i, int) for i in self.root):
            raise ValueError(f"root must be three different atom indices, got {self.root!r}")
        for row in self.rows:
            if not all(isinstance(i, int) for i in row):
                raise ValueError(f"rows: {row!r} must hold atom indices (int)")
            if len(row) != 4 or len(set(row)) != 4 or not set(row[1:]) <= set(placed) or row[0] in placed:
                raise ValueError(f"rows: {row!r} must place a new atom i from three different atoms placed before it")
            placed.append(row[0])
        if sorted(placed) != list(range(n)):
            raise ValueError(f"rows must place every atom 0..{n - 1} once, got {sorted(placed)}")
        if self.atom_names and len(self.atom_names) != n:
            raise ValueError(f"atom_names must name all {n} atoms, got {len(self.atom_names)}")

    @property
    def n_atoms(self) -> int:
        return 3 + len(self.rows)

    @property
    def bonds(self) -> tuple:
        c, f, s = self.root
        return ((f, c), (s, c)) + tuple((i, j) for i, j, _, _ in self.rows)

    @property
    def angles(self) -> tuple:
        c, f, s = self.root
        return ((s, c, f),) + tuple((i, j, k) for i, j, k, _ in self.rows)

    @property
    def torsions(self) -> tuple:
        return tuple(tuple(row) for row in self.rows)

    def to_internal(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Bond lengths ``(B, n_atoms - 1)``, bond angles ``(B, n_atoms - 2)`` and torsions ``(B, n_atoms - 3)``
        of configurations ``x`` ``(B, n_atoms, 3)``, in the dtype and on the device of ``x``."""
        _frames("x", x, self.n_atoms)
        b, a, t = (torch.tensor(v, device=x.device).T for v in (self.bonds, self.angles, self.torsions))
        bonds = (x[:, b[0]] - x[:, b[1]]).norm(dim=-1)
        return bonds, _angle(x[:, a[0]], x[:, a[1]], x[:, a[2]]), _dihedral(*(x[:, t[m]] for m in range(4)))

    def to_cartesian(self, bonds: Tensor, angles: Tensor, torsions: Tensor) -> Tensor:
        """Configurations ``(B, n_atoms, 3)`` from internal coordinates (the inverse of :meth:`to_internal`,
        up to a rigid motion): the root centre at the origin, its first atom on the x-axis, its second in the
        xy-plane, then one NeRF step per row."""
        _checks.tensor("bonds", bonds, ndim=2, floating=True)
        B = bonds.shape[0]
        _columns("bonds", bonds, B, self.n_atoms - 1, bonds)
        _columns("angles", angles, B, self.n_atoms - 2, bonds)
        _columns("torsions", torsions, B, self.n_atoms - 3, bonds)
        c, f, s = self.root
        x = [None] * self.n_atoms
        zero = torch.zeros_like(bonds[:, 0])
        x[c] = torch.stack([zero, zero, zero], -1)
        x[f] = torch.stack([bonds[:, 0], zero, zero], -1)
        x[s] = torch.stack([bonds[:, 1] * torch.cos(angles[:, 0]), bonds[:, 1] * torch.sin(angles[:, 0]), zero], -1)
        for r, (i, j, k, l) in enumerate(self.rows):
            x[i] = _place(x[l], x[k], x[j], bonds[:, r + 2], angles[:, r + 1], torsions[:, r])
        return torch.stack(x, 1)

    def project(self, x: Tensor, r0: Tensor) -> Tensor:
        """``x`` with its bond lengths set to ``r0`` ``(n_atoms - 1,)`` and its angles and torsions kept:
        Cartesian -> internal -> Cartesian, superposed onto ``x`` (:func:`kabsch_align`); ``(B, n_atoms, 3)``."""
        _frames("x", x, self.n_atoms)
        _checks.tensor("r0", r0, ndim=1, floating=True)
        if r0.shape[0] != self.n_atoms - 1:
            raise ValueError(f"r0 must have shape ({self.n_atoms - 1},), got {tuple(r0.shape)}")
        _, angles, torsions = self.to_internal(x)
        bonds = r0.to(device=x.device, dtype=x.dtype).expand(x.shape[0], -1)
        return kabsch_align(self.to_cartesian(bonds, angles, torsions), x)


def _circular_mean(theta: Tensor) -> Tensor:
    return torch.atan2(torch.sin(theta).mean(0), torch.cos(theta).mean(0))


@dataclass(frozen=True)
class InternalFeatures:
    """The feature vector ``(B, dim)`` of a molecule with its bonds fixed at ``r0``, and its decoder.

    Layout: the bond angles, standardised, ``(theta - angle_mean) / angle_std``; the torsions not in
    ``free``, centred on their circular mean, wrapped to (-pi, pi] and scaled,
    ``wrap(tau - torsion_mean) / torsion_std``; then ``(cos tau, sin tau)`` for each torsion in ``free``
    (the freely rotating ones). :meth:`fit` takes the means and spreads from training configurations.
    Chapter 11.
    """

    zmatrix: ZMatrix
    r0: Tensor
    free: tuple
    angle_mean: Tensor
    angle_std: Tensor
    torsion_mean: Tensor
    torsion_std: Tensor

    @classmethod
    def fit(cls, zmatrix: ZMatrix, r0: Tensor, free: Sequence[int], x: Tensor) -> "InternalFeatures":
        """The features of ``zmatrix`` with bonds ``r0`` and free torsions ``free`` (indices into
        :attr:`ZMatrix.torsions`), their statistics from training configurations ``x`` ``(B, n_atoms, 3)``."""
        _frames("x", x, zmatrix.n_atoms)
        if x.shape[0] < 2:
            raise ValueError(f"x must hold at least two configurations to fit means and spreads, got {x.shape[0]}")
        free = tuple(int(i) for i in free)
        if len(set(free)) != len(free) or not all(0 <= i < zmatrix.n_atoms - 3 for i in free):
            raise ValueError(f"free must hold different torsion indices in [0, {zmatrix.n_atoms - 4}], got {free}")
        _, angles, torsions = zmatrix.to_internal(x.to(torch.float64))
        fixed = [i for i in range(zmatrix.n_atoms - 3) if i not in free]
        mu = _circular_mean(torsions[:, fixed])
        return cls(zmatrix, r0.detach().to("cpu", torch.float64), free, angles.mean(0), angles.std(0),
                   mu, _wrap(torsions[:, fixed] - mu).std(0))

    @property
    def fixed(self) -> tuple:
        """Indices of the near-constant torsions, in the order of the feature vector."""
        return tuple(i for i in range(self.zmatrix.n_atoms - 3) if i not in self.free)

    @property
    def dim(self) -> int:
        return self.zmatrix.n_atoms - 2 + len(self.fixed) + 2 * len(self.free)

    @property
    def names(self) -> tuple:
        """A name per feature, e.g. ``"angle C-CA-N"``, ``"torsion O-C-N-CA"``, ``"cos C-N-CA-C"``."""
        atoms = self.zmatrix.atom_names or tuple(str(i) for i in range(self.zmatrix.n_atoms))
        label = lambda idx: "-".join(atoms[i] for i in idx)  # noqa: E731
        t = self.zmatrix.torsions
        return (tuple(f"angle {label(a)}" for a in self.zmatrix.angles)
                + tuple(f"torsion {label(t[i])}" for i in self.fixed)
                + tuple(f"{f} {label(t[i])}" for i in self.free for f in ("cos", "sin")))

    def encode(self, x: Tensor) -> Tensor:
        """Features ``(B, dim)`` of configurations ``x`` ``(B, n_atoms, 3)``, in the dtype of ``x``."""
        _frames("x", x, self.zmatrix.n_atoms)
        _, angles, torsions = self.zmatrix.to_internal(x)
        s = {k: getattr(self, k).to(x) for k in ("angle_mean", "angle_std", "torsion_mean", "torsion_std")}
        free = torsions[:, list(self.free)]
        return torch.cat([(angles - s["angle_mean"]) / s["angle_std"],
                          _wrap(torsions[:, list(self.fixed)] - s["torsion_mean"]) / s["torsion_std"],
                          torch.stack([torch.cos(free), torch.sin(free)], -1).flatten(1)], 1)

    def decode(self, f: Tensor) -> Tensor:
        """Configurations ``(B, n_atoms, 3)`` with bonds at r0 from features ``f`` ``(B, dim)``, any values:
        each (cos, sin) pair is normalised by atan2. In the dtype and on the device of ``f``."""
        _checks.tensor("f", f, ndim=2, floating=True)
        if f.shape[1] != self.dim:
            raise ValueError(f"f must have shape (B, {self.dim}), got {tuple(f.shape)}")
        n_a, n_f = self.zmatrix.n_atoms - 2, len(self.fixed)
        s = {k: getattr(self, k).to(f) for k in ("angle_mean", "angle_std", "torsion_mean", "torsion_std")}
        angles = f[:, :n_a] * s["angle_std"] + s["angle_mean"]
        fixed = _wrap(f[:, n_a:n_a + n_f] * s["torsion_std"] + s["torsion_mean"])
        pairs = f[:, n_a + n_f:].reshape(f.shape[0], -1, 2)
        free = torch.atan2(pairs[..., 1], pairs[..., 0])
        # back to the order of the Z-matrix rows
        order = torch.tensor(self.fixed + self.free, device=f.device).argsort()
        torsions = torch.cat([fixed, free], 1)[:, order]
        bonds = self.r0.to(f).expand(f.shape[0], -1)
        return self.zmatrix.to_cartesian(bonds, angles, torsions)
