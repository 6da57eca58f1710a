"""Alanine dipeptide (Ace-Ala-NMe, 22 atoms) in vacuum with the AMBER ff96 force field; OpenMM is the energy.

The molecule of chapter 11: the smallest peptide with the two backbone torsions phi and psi, whose
Ramachandran plane has three well-populated core states in vacuum (C5, C7eq, C7ax) and a sparsely visited alpha_R. :class:`AlanineDipeptide` builds the
OpenMM system from the AMBER files shipped in ``systems/data`` (openmmtools 0.27.0; see the README there):
vacuum, ``NoCutoff``, X-H bonds constrained, the "Reference" platform (for 22 atoms evaluated one frame at a time it is faster
than "CPU", with the same energies and forces: the book's page on costs measures both). Its energy is a :class:`torch.autograd.Function` whose backward pass is OpenMM's force, so
energy guidance can differentiate through it.

OpenMM is optional: this module imports without it, and :class:`AlanineDipeptide` raises an ``ImportError``
that says how to install it. The molecular-dynamics data live in :mod:`~tutorial_pkg.systems.alanine_md`.
"""

from __future__ import annotations

import math
import pathlib
from typing import Optional

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .. import _checks, _hashes
from .internal_coordinates import InternalFeatures, ZMatrix, _dihedral, _frames, _wrap

Tensor = torch.Tensor

__all__ = ["AlanineDipeptide", "OpenMMEnergy", "BASINS", "CORES", "DATA_DIR", "core_occupancy", "core_transitions"]

DATA_DIR = pathlib.Path(__file__).parent / "data"
INSTALL = 'pip install "tutorial_pkg[molecules]"  (or: pip install openmm)'
BASINS = ("C5", "C7eq", "C7ax", "alpha_R")
# core states in degrees, (phi ranges, psi ranges); phi of C5 is periodic (it wraps across +-180). A frame
# outside every core is in a transition region and gets the label -1 (chapter 11).
CORES = {
    "C5": (((-180.0, -120.0), (120.0, 180.0)), ((120.0, 180.0), (-180.0, -150.0))),
    "C7eq": (((-120.0, -50.0),), ((40.0, 100.0),)),
    "C7ax": (((30.0, 110.0),), ((-110.0, -20.0),)),
    "alpha_R": (((-120.0, -50.0),), ((-70.0, -10.0),)),
}
N_ATOMS = 22

# the Z-matrix, (i, j, k, l) as (residue, atom name): root CA, N, C of alanine, then one row per atom
_ROOT = (("ALA", "CA"), ("ALA", "N"), ("ALA", "C"))
_ROWS = (
    (("ALA", "CB"), ("ALA", "CA"), ("ALA", "N"), ("ALA", "C")),
    (("ALA", "HA"), ("ALA", "CA"), ("ALA", "N"), ("ALA", "C")),
    (("ACE", "C"), ("ALA", "N"), ("ALA", "CA"), ("ALA", "C")),        # phi
    (("ALA", "H"), ("ALA", "N"), ("ALA", "CA"), ("ACE", "C")),
    (("ACE", "O"), ("ACE", "C"), ("ALA", "N"), ("ALA", "CA")),
    (("ACE", "CH3"), ("ACE", "C"), ("ALA", "N"), ("ALA", "CA")),      # omega 1
    (("ACE", "H1"), ("ACE", "CH3"), ("ACE", "C"), ("ALA", "N")),      # methyl rotor
    (("ACE", "H2"), ("ACE", "CH3"), ("ACE", "C"), ("ACE", "H1")),
    (("ACE", "H3"), ("ACE", "CH3"), ("ACE", "C"), ("ACE", "H1")),
    (("NME", "N"), ("ALA", "C"), ("ALA", "CA"), ("ALA", "N")),        # psi
    (("ALA", "O"), ("ALA", "C"), ("ALA", "CA"), ("NME", "N")),
    (("NME", "C"), ("NME", "N"), ("ALA", "C"), ("ALA", "CA")),        # omega 2
    (("NME", "H"), ("NME", "N"), ("ALA", "C"), ("NME", "C")),
    (("NME", "H1"), ("NME", "C"), ("NME", "N"), ("ALA", "C")),        # methyl rotor
    (("NME", "H2"), ("NME", "C"), ("NME", "N"), ("NME", "H1")),
    (("NME", "H3"), ("NME", "C"), ("NME", "N"), ("NME", "H1")),
    (("ALA", "HB1"), ("ALA", "CB"), ("ALA", "CA"), ("ALA", "N")),     # methyl rotor
    (("ALA", "HB2"), ("ALA", "CB"), ("ALA", "CA"), ("ALA", "HB1")),
    (("ALA", "HB3"), ("ALA", "CB"), ("ALA", "CA"), ("ALA", "HB1")),
)
# rows whose torsion rotates freely (phi, psi, three methyl rotors): written as (cos, sin)
_FREE_ROWS = (2, 6, 9, 13, 16)
_PHI = (("ACE", "C"), ("ALA", "N"), ("ALA", "CA"), ("ALA", "C"))
_PSI = (("ALA", "N"), ("ALA", "CA"), ("ALA", "C"), ("NME", "N"))
_OMEGA = ((("ACE", "CH3"), ("ACE", "C"), ("ALA", "N"), ("ALA", "CA")),
          (("ALA", "CA"), ("ALA", "C"), ("NME", "N"), ("NME", "C")))
_CHIRAL = (("ALA", "CA"), ("ALA", "N"), ("ALA", "C"), ("ALA", "CB"))

# validity thresholds, calibrated on the MD frames (chapter 11)
MIN_HEAVY_NM, MIN_H_NM, MIN_OMEGA_DEG, MAX_E = 0.2, 0.15, 110.0, 150.0


def _openmm():
    """openmm, openmm.app and openmm.unit, or an ImportError that says how to install them."""
    try:
        import openmm
        from openmm import app, unit
    except ImportError as err:
        raise ImportError(f"AlanineDipeptide needs OpenMM for its energy, and OpenMM is not installed: "
                          f"{INSTALL}") from err
    return openmm, app, unit


class OpenMMEnergy(torch.autograd.Function):
    """``E(x)`` of a batch ``(B, 22, 3)`` in nm, kJ/mol, by OpenMM; its gradient is minus OpenMM's force.

    ``OpenMMEnergy.apply(x, evaluate)`` with ``evaluate(x: ndarray (B, N, 3), forces: bool) -> (E, F or None)``.
    OpenMM runs on the CPU in float64; the energy and the gradient come back on the device and in the dtype of
    ``x``, and no float64 tensor is made on another device.
    """

    @staticmethod
    def forward(ctx, x: Tensor, evaluate) -> Tensor:
        """E ``(B,)`` of ``x`` ``(B, 22, 3)``; keeps OpenMM's forces for the backward pass when ``x`` needs them."""
        x64 = x.detach().cpu().to(torch.float64)
        E, F = evaluate(x64.numpy(), forces=ctx.needs_input_grad[0])
        if F is not None:
            ctx.save_for_backward(torch.from_numpy(F))
        ctx.device, ctx.dtype = x.device, x.dtype
        return torch.from_numpy(E).to(x.dtype).to(x.device)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_E: Tensor):
        """dL/dx = dL/dE * (-F), ``(B,) -> (B, 22, 3)``."""
        (F,) = ctx.saved_tensors
        # dE/dx = -F, times the incoming gradient of each frame's energy
        grad_x = -grad_E.detach().cpu().to(torch.float64)[:, None, None] * F
        return grad_x.to(ctx.dtype).to(ctx.device), None


class AlanineDipeptide:
    """Ace-Ala-NMe in vacuum, AMBER ff96 (OpenMM), with its torsions, validity test, basins and representation.

    ``energy(x)``: ``(B, 22, 3)`` nm -> ``(B,)`` kJ/mol, differentiable. ``torsions(x)``: phi and psi.
    ``is_valid(x)``: the chapter's validity test. ``basin(phi, psi)``: the four Ramachandran basins of vacuum
    ff96. ``internal_features(x_train)``: the feature vector of :mod:`.internal_coordinates`, bonds at r0.
    ``x_crd`` ``(1, 22, 3)`` is the tleap structure of the shipped ``.crd`` file. Chapter 11.
    """

    n_atoms = N_ATOMS

    def __init__(self, *, platform: str = "Reference"):
        _checks.choice("platform", platform, ("Reference", "CPU", "CUDA", "OpenCL"))
        openmm, app, unit = _openmm()
        remedy = "reinstall tutorial_pkg: the shipped alanine-dipeptide files are damaged"
        prmtop = app.AmberPrmtopFile(str(_hashes.check(DATA_DIR / "alanine-dipeptide.prmtop", kind="the topology file",
                                                       remedy=remedy)))
        crd = app.AmberInpcrdFile(str(_hashes.check(DATA_DIR / "alanine-dipeptide.crd", kind="the structure file",
                                                    remedy=remedy)))
        self.platform, self.topology = platform, prmtop.topology
        self.system = prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
        for group, force in enumerate(self.system.getForces()):
            force.setForceGroup(group)
        self.force_names = tuple(type(f).__name__ for f in self.system.getForces())
        self._context = openmm.Context(self.system, openmm.VerletIntegrator(0.001),
                                       openmm.Platform.getPlatformByName(platform))
        self._kJ, self._kJ_nm = unit.kilojoule_per_mole, unit.kilojoule_per_mole / unit.nanometer
        atoms = list(self.topology.atoms())
        self.atom_names = tuple(f"{a.residue.name}:{a.name}" for a in atoms)
        self._index = {(a.residue.name, a.name): a.index for a in atoms}
        self.hydrogen = torch.tensor([a.element.symbol == "H" for a in atoms])
        self.x_crd = torch.tensor(crd.getPositions(asNumpy=True).value_in_unit(unit.nanometer))[None]
        self.zmatrix = ZMatrix(tuple(self._index[a] for a in _ROOT),
                               tuple(tuple(self._index[a] for a in row) for row in _ROWS), self.atom_names)
        self.r0 = self._bond_lengths()
        self._pairs = self._distant_pairs()

    def __repr__(self) -> str:
        return f"AlanineDipeptide(platform={self.platform!r})"

    def _idx(self, *keys) -> list:
        return [self._index[k] for k in keys]

    def _bond_lengths(self) -> Tensor:
        """r0 of each Z-matrix bond: the constraint length for X-H, the HarmonicBondForce r0 otherwise."""
        openmm, _, unit = _openmm()
        r0 = {}
        for force in self.system.getForces():
            if isinstance(force, openmm.HarmonicBondForce):
                for n in range(force.getNumBonds()):
                    i, j, length, _ = force.getBondParameters(n)
                    r0[frozenset((i, j))] = length.value_in_unit(unit.nanometer)
        for n in range(self.system.getNumConstraints()):
            i, j, length = self.system.getConstraintParameters(n)
            r0[frozenset((i, j))] = length.value_in_unit(unit.nanometer)
        missing = [b for b in self.zmatrix.bonds if frozenset(b) not in r0]
        if missing:
            raise RuntimeError(f"the force field has no bond length for the Z-matrix bonds {missing}")
        return torch.tensor([r0[frozenset(b)] for b in self.zmatrix.bonds], dtype=torch.float64)

    def _distant_pairs(self) -> tuple[Tensor, Tensor, Tensor]:
        """Atom pairs three or more bonds apart (i, j) and whether a hydrogen is in the pair."""
        n = self.n_atoms
        hops = torch.full((n, n), n, dtype=torch.long)
        hops.fill_diagonal_(0)
        for a, b in self.topology.bonds():
            hops[a.index, b.index] = hops[b.index, a.index] = 1
        for m in range(n):  # Floyd-Warshall on the bond graph
            hops = torch.minimum(hops, hops[:, m:m + 1] + hops[m:m + 1, :])
        i, j = torch.triu_indices(n, n, 1)
        keep = hops[i, j] >= 3
        i, j = i[keep], j[keep]
        return i, j, self.hydrogen[i] | self.hydrogen[j]

    # -- the energy ------------------------------------------------------------------------------------
    def _evaluate(self, x: np.ndarray, forces: bool = False, groups: int = -1):
        E, F = np.empty(len(x)), np.empty(x.shape) if forces else None
        for b in range(len(x)):
            self._context.setPositions(x[b])
            state = self._context.getState(getEnergy=True, getForces=forces, groups=groups)
            E[b] = state.getPotentialEnergy().value_in_unit(self._kJ)
            if forces:
                F[b] = state.getForces(asNumpy=True).value_in_unit(self._kJ_nm)
        return E, F

    def energy(self, x: Tensor) -> Tensor:
        """Potential energy ``E(x)`` in kJ/mol, ``(B, 22, 3)`` nm -> ``(B,)``, differentiable
        (:class:`OpenMMEnergy`); in the dtype and on the device of ``x``. The X-H bonds are constraints
        and so carry no energy: keep them at r0 (the representation does)."""
        _frames("x", x, self.n_atoms)
        return OpenMMEnergy.apply(x, self._evaluate)

    def gradient(self, x: Tensor) -> Tensor:
        """grad E(x) = -F(x) in kJ/mol/nm, ``(B, 22, 3) -> (B, 22, 3)``, in the dtype and on the device of ``x``."""
        _frames("x", x, self.n_atoms)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(xg).sum(), xg)
        return g

    def energy_terms(self, x: Tensor, names: Optional[tuple] = None) -> dict[str, Tensor]:
        """The energy of each force of the system (bonds, angles, torsions, nonbonded), kJ/mol, ``(B,)``
        float64 on the CPU each; they add up to :meth:`energy`. ``names`` (default: all of them) picks the
        forces to evaluate, one OpenMM evaluation per force and frame."""
        _frames("x", x, self.n_atoms)
        known = [n for n in self.force_names if n != "CMMotionRemover"]
        if names is not None:
            if isinstance(names, str) or not all(n in known for n in names):
                raise ValueError(f"names must be a sequence of force names out of {known}, got {names!r}")
        x64 = x.detach().cpu().to(torch.float64).numpy()
        return {name: torch.from_numpy(self._evaluate(x64, groups=1 << group)[0])
                for group, name in enumerate(self.force_names) if name in (known if names is None else names)}

    # -- torsions, validity, basins -------------------------------------------------------------------
    def _torsion(self, x: Tensor, keys) -> Tensor:
        return _dihedral(*(x[:, i] for i in self._idx(*keys)))

    def torsions(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Backbone torsions ``phi`` (C(ACE)-N-CA-C) and ``psi`` (N-CA-C-N(NME)) in radians, ``(B,)`` each."""
        _frames("x", x, self.n_atoms)
        return self._torsion(x, _PHI), self._torsion(x, _PSI)

    def omegas(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The two amide torsions CH3(ACE)-C-N-CA and CA-C-N(NME)-CH3 in radians, ``(B,)`` each (trans: +-pi)."""
        _frames("x", x, self.n_atoms)
        return tuple(self._torsion(x, keys) for keys in _OMEGA)

    def chirality(self, x: Tensor) -> Tensor:
        """The signed volume (N - CA) . ((C - CA) x (CB - CA)) in nm^3, ``(B,)``: positive for L-alanine."""
        _frames("x", x, self.n_atoms)
        ca, n, c, cb = (x[:, i] for i in self._idx(*_CHIRAL))
        return ((n - ca) * torch.linalg.cross(c - ca, cb - ca)).sum(-1)

    def is_valid(self, x: Tensor, E: Optional[Tensor] = None) -> Tensor:
        """The chapter's validity test, ``(B,)`` bool: pairs three or more bonds apart further than 0.2 nm
        (heavy atoms) or 0.15 nm (with a hydrogen), L-chirality at CA, both ``|omega| > 110`` degrees (trans
        amides) and ``E < 150`` kJ/mol. ``E`` ``(B,)``, when given, saves recomputing the energy."""
        _frames("x", x, self.n_atoms)
        if E is None:
            E = self.energy(x.detach())
        _checks.tensor("E", E, ndim=1, finite=False)
        if E.shape[0] != x.shape[0]:
            raise ValueError(f"E must have shape ({x.shape[0]},), the batch of x, got {tuple(E.shape)}")
        i, j, with_h = (t.to(x.device) for t in self._pairs)
        d = (x[:, i] - x[:, j]).norm(dim=-1)
        apart = torch.where(with_h, d > MIN_H_NM, d > MIN_HEAVY_NM).all(1)
        trans = torch.stack([w.abs() for w in self.omegas(x)]).min(0).values > math.radians(MIN_OMEGA_DEG)
        return apart & (self.chirality(x) > 0) & trans & (E.to(x.device) < MAX_E)

    @staticmethod
    def basin(phi: Tensor, psi: Tensor) -> tuple[Tensor, tuple]:
        """Core state of vacuum ff96 on the Ramachandran plane, ``(B,)`` long, and the names :data:`BASINS`;
        ``-1`` for a frame in no core (a transition region). The cores (:data:`CORES`, degrees, closed
        intervals): C5 or beta, phi <= -120 or phi >= 120 (periodic) with psi >= 120 or psi <= -150; C7eq,
        -120 <= phi <= -50 with 40 <= psi <= 100; C7ax, 30 <= phi <= 110 with -110 <= psi <= -20; alpha_R,
        -120 <= phi <= -50 with -70 <= psi <= -10, a psi < 0 core that vacuum ff96 visits rarely."""
        _checks.tensor("phi", phi, ndim=1, floating=True)
        _checks.tensor("psi", psi, ndim=1, floating=True)
        _checks.same_tensor_kind("psi", psi, "phi", phi, dtype=False)
        phi_deg, psi_deg = torch.rad2deg(_wrap(phi)), torch.rad2deg(_wrap(psi))
        out = torch.full(phi.shape, -1, dtype=torch.long, device=phi.device)
        for k, name in enumerate(BASINS):
            phis, psis = CORES[name]
            in_phi = torch.zeros_like(phi_deg, dtype=torch.bool)
            for lo, hi in phis:
                in_phi |= (phi_deg >= lo) & (phi_deg <= hi)
            in_psi = torch.zeros_like(psi_deg, dtype=torch.bool)
            for lo, hi in psis:
                in_psi |= (psi_deg >= lo) & (psi_deg <= hi)
            out[in_phi & in_psi] = k
        return out, BASINS

    # -- the representation ---------------------------------------------------------------------------
    def project(self, x: Tensor) -> Tensor:
        """``x`` with every bond at the force field's r0 and its angles and torsions kept (superposed onto
        ``x``), ``(B, 22, 3)``: the frames that the feature vector describes exactly."""
        _frames("x", x, self.n_atoms)
        return self.zmatrix.project(x, self.r0)

    def internal_features(self, x_train: Tensor) -> InternalFeatures:
        """The feature vector (bonds at r0; angles and near-constant torsions standardised on ``x_train``;
        (cos, sin) of phi, psi and the three methyl rotors) and its decoder. ``x_train``: ``(B, 22, 3)``."""
        _frames("x_train", x_train, self.n_atoms)
        if x_train.shape[0] < 2:
            raise ValueError(f"x_train must hold at least two configurations, got {x_train.shape[0]}")
        return InternalFeatures.fit(self.zmatrix, self.r0, _FREE_ROWS, x_train)



def core_occupancy(labels: Tensor) -> Tensor:
    """The share of frames or molecules in each core state of :data:`BASINS`, ``(4,)`` float64, out of all of
    them: frames in a transition region (label -1) count in the denominator, so the shares sum to at most 1."""
    _checks.tensor("labels", labels, ndim=1)
    if labels.numel() == 0:
        raise ValueError("labels must hold at least one frame")
    if labels.is_floating_point() or labels.min().item() < -1 or labels.max().item() >= len(BASINS):
        raise ValueError(f"labels must be integers in -1..{len(BASINS) - 1} (AlanineDipeptide.basin)")
    return torch.stack([(labels == k).double().mean() for k in range(len(BASINS))]).cpu()


def core_transitions(labels: Tensor) -> int:
    """The number of transitions between core states along a trajectory (labels of consecutive frames): the
    last core visited changes. Crossing into a transition region and back into the same core is no
    transition, so recrossings of a boundary are not counted (core-set, or milestoning, counting)."""
    _checks.tensor("labels", labels, ndim=1)
    if labels.is_floating_point():
        raise ValueError("labels must be integers (AlanineDipeptide.basin)")
    last, count = -1, 0
    for b in labels.tolist():
        if b >= 0:
            if last >= 0 and b != last:
                count += 1
            last = b
    return count
