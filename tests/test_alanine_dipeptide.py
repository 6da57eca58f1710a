"""Alanine dipeptide: the OpenMM energy and its gradient, the backbone torsions, the validity test, the
basins, the representation's round trip, and the shipped MD data behind its SHA-256.

Tests that need OpenMM take the ``ala`` fixture, which skips them when OpenMM is not installed; the
import guard and the data file's hash are tested without it.
"""

import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from tutorial_pkg.systems import alanine_md
from tutorial_pkg.systems.alanine_dipeptide import BASINS, DATA_DIR, AlanineDipeptide, core_occupancy, core_transitions
from tutorial_pkg.systems.internal_coordinates import kabsch_align, wrap

F64 = torch.float64


@pytest.fixture(scope="module")
def ala():
    pytest.importorskip("openmm")
    return AlanineDipeptide()


@pytest.fixture(scope="module")
def data():
    return alanine_md.load_md_data()


@pytest.fixture(scope="module")
def frames(data):
    """Eight training frames of each temperature, float64, bonds at r0 (to float32 rounding)."""
    idx = torch.cat([torch.nonzero(data.temperature_train == T)[::500, 0] for T in data.temperatures])
    return data.x_train[idx].to(F64), data.E_train[idx]


def _index(ala, residue, name):
    (i,) = [a.index for a in ala.topology.atoms() if a.residue.name == residue and a.name == name]
    return i


def _numpy_dihedral(p0, p1, p2, p3):
    """Blondel & Karplus (1996), eq. (7), in numpy."""
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    return np.arctan2(np.linalg.norm(b2, axis=-1) * (b1 * n2).sum(-1), (n1 * n2).sum(-1))


def _with_torsions(ala, x, **degrees):
    """``x`` rebuilt with some Z-matrix torsions set, by row index: ``_with_torsions(ala, x, r2=-63.0)``."""
    bonds, angles, torsions = ala.zmatrix.to_internal(x)
    torsions = torsions.clone()
    for key, value in degrees.items():
        torsions[:, int(key[1:])] = math.radians(value)
    return ala.zmatrix.to_cartesian(bonds, angles, torsions)


# -- without OpenMM ------------------------------------------------------------------------------------
def test_the_package_imports_without_openmm_and_the_system_says_how_to_install_it():
    code = ("import sys; sys.modules['openmm'] = None\n"
            "import tutorial_pkg, tutorial_pkg.systems as s\n"
            "from tutorial_pkg.systems import MullerBrown, BoltzmannData, boltzmann_dataset, AlanineDipeptide\n"
            "assert len(s.load_md_data().x_train) > 0\n"
            "try:\n    AlanineDipeptide()\nexcept ImportError as err:\n    print(err)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'pip install "tutorial_pkg[molecules]"' in result.stdout and "pip install openmm" in result.stdout


def test_the_md_data_has_the_documented_shapes(data):
    n_T = len(data.temperatures)
    assert data.temperatures == alanine_md.TEMPERATURES and data.frame_ps == 1.0
    assert data.x_train.shape == (4000 * n_T, 22, 3) and data.x_train.dtype == torch.float32
    assert data.x_test.shape == (1000 * n_T, 22, 3) and data.x_test.dtype == torch.float32
    assert data.E_train.shape == (4000 * n_T,) and data.E_train.dtype == F64 and data.E_test.shape == (1000 * n_T,)
    assert sorted(set(data.temperature_train.tolist())) == list(alanine_md.TEMPERATURES)
    assert (data.temperature_test == torch.tensor(alanine_md.TEMPERATURES, dtype=F64).repeat_interleave(1000)).all()
    # hotter trajectories have higher mean energies
    means = [data.E_train[data.temperature_train == T].mean() for T in data.temperatures]
    assert means == sorted(means)


def test_a_tampered_or_unrecorded_data_file_is_refused(tmp_path):
    shutil.copy(alanine_md.DATA_FILE, tmp_path)
    shutil.copy(DATA_DIR / "SHA256SUMS", tmp_path)
    copy = tmp_path / alanine_md.DATA_FILE.name
    assert len(alanine_md.load_md_data(path=copy).x_train) > 0
    blob = bytearray(copy.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    copy.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="does not match its recorded SHA-256"):
        alanine_md.load_md_data(path=copy)
    (tmp_path / "SHA256SUMS").write_text("")
    with pytest.raises(ValueError, match="no SHA-256 is recorded"):
        alanine_md.load_md_data(path=copy)


def test_core_states_follow_the_stated_boundaries():
    e = 1e-6  # either side of each boundary
    phi = torch.tensor([-150, 170, -150, -150, -80, -80, -80, -49 - e, 70, 70, 70, -80, -80, 0, -80], dtype=F64)
    psi = torch.tensor([150, -160, -150 + e, 120 - e, 70, 40 - e, 100 + e, 70, -60, -110 - e, 60, -40, -71, 0, 150],
                       dtype=F64)
    basins, names = AlanineDipeptide.basin(torch.deg2rad(phi), torch.deg2rad(psi))
    assert names == BASINS == ("C5", "C7eq", "C7ax", "alpha_R")
    assert [names[b] if b >= 0 else None for b in basins] == [
        "C5", "C5", None, None, "C7eq", None, None, None, "C7ax", None, None, "alpha_R", None, None, None]
    assert basins.dtype == torch.long


def test_core_occupancy_and_transitions_count_cores_only():
    labels = torch.tensor([0, -1, 0, -1, 1, 1, -1, 1, 0, 2, -1, -1])
    assert core_occupancy(labels).tolist() == pytest.approx([3 / 12, 3 / 12, 1 / 12, 0.0])
    # 0 -> (transition) -> 0 is a recrossing, not a transition; then 0 -> 1, 1 -> 0, 0 -> 2
    assert core_transitions(labels) == 3
    assert core_transitions(torch.tensor([-1, -1])) == 0
    with pytest.raises(ValueError, match="labels"):
        core_occupancy(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="labels"):
        core_transitions(torch.tensor([0.0, 1.0]))


# -- the energy --------------------------------------------------------------------------------------
def test_energy_of_the_crd_structure_equals_a_fresh_openmm_context(ala):
    import openmm
    from openmm import app, unit
    prmtop = app.AmberPrmtopFile(str(DATA_DIR / "alanine-dipeptide.prmtop"))
    system = prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(ala.x_crd[0].numpy())
    expected = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    E = ala.energy(ala.x_crd)
    assert E.shape == (1,) and E.dtype == F64 and E.item() == pytest.approx(expected, abs=1e-9)
    terms = ala.energy_terms(ala.x_crd)
    assert set(terms) == {"HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce"}
    assert sum(terms.values()).item() == pytest.approx(E.item(), abs=1e-9)
    some = ala.energy_terms(ala.x_crd, names=("HarmonicAngleForce", "NonbondedForce"))
    assert set(some) == {"HarmonicAngleForce", "NonbondedForce"}
    assert all(torch.equal(some[k], terms[k]) for k in some)


def test_energy_reproduces_the_shipped_energies_and_is_invariant_to_rigid_motions(ala, frames):
    x, E = frames
    assert torch.allclose(ala.energy(x), E, atol=1e-9, rtol=0)
    R = torch.linalg.qr(torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(0)))[0]
    assert torch.allclose(ala.energy(x @ R.T + 1.5), E, atol=1e-6, rtol=0)
    assert ala.energy(x.float()).dtype == torch.float32


def test_autograd_gradient_matches_central_finite_differences(ala, frames):
    x = frames[0][[0, -1]].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(ala.energy(x).sum(), x)
    assert torch.equal(grad, ala.gradient(x.detach()))
    v = torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    h = 1e-5
    with torch.no_grad():
        fd = (ala.energy(x + h * v) - ala.energy(x - h * v)) / (2 * h)
        for atom, axis in ((8, 0), (15, 2), (19, 1)):  # CA, O(ALA), an NME hydrogen
            e = torch.zeros_like(x)
            e[:, atom, axis] = 1.0
            fd_one = (ala.energy(x + h * e) - ala.energy(x - h * e)) / (2 * h)
            assert torch.allclose(fd_one, grad[:, atom, axis], rtol=1e-6, atol=1e-4)
    assert torch.allclose(fd, (grad * v).sum((1, 2)), rtol=1e-6, atol=1e-4)
    # float32 in, float32 gradient out
    x32 = x.detach().float().requires_grad_(True)
    ala.energy(x32).sum().backward()
    assert x32.grad.dtype == torch.float32 and torch.allclose(x32.grad.double(), grad, rtol=1e-3, atol=1e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_energy_on_a_gpu_returns_there_and_makes_no_float64_there(ala, frames):
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    made = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            made.extend((str(func), t.device.type) for t in tree_leaves(out)
                        if isinstance(t, torch.Tensor) and t.dtype == F64 and t.device.type != "cpu")
            return out

    x = frames[0][:2].float().cuda().requires_grad_(True)
    with Watch():
        E = ala.energy(x)
        E.sum().backward()
    assert E.device == x.device and E.dtype == torch.float32
    assert x.grad.device == x.device and x.grad.dtype == torch.float32
    assert not made, made


# -- torsions ----------------------------------------------------------------------------------------
def test_phi_and_psi_use_the_backbone_atoms_by_name(ala):
    phi_atoms = [_index(ala, "ACE", "C"), _index(ala, "ALA", "N"), _index(ala, "ALA", "CA"), _index(ala, "ALA", "C")]
    psi_atoms = [_index(ala, "ALA", "N"), _index(ala, "ALA", "CA"), _index(ala, "ALA", "C"), _index(ala, "NME", "N")]
    bonds = {frozenset((a.index, b.index)) for a, b in ala.topology.bonds()}
    for atoms in (phi_atoms, psi_atoms):  # each is a bonded chain
        assert all(frozenset(atoms[m:m + 2]) in bonds for m in range(3))
    gen = torch.Generator().manual_seed(2)
    x = ala.x_crd + 0.02 * torch.randn(5, 22, 3, generator=gen, dtype=F64)
    phi, psi = ala.torsions(x)
    np.testing.assert_allclose(phi.numpy(), _numpy_dihedral(*x[:, phi_atoms].transpose(0, 1).numpy()), atol=1e-12)
    np.testing.assert_allclose(psi.numpy(), _numpy_dihedral(*x[:, psi_atoms].transpose(0, 1).numpy()), atol=1e-12)


def test_torsions_of_known_conformers(ala):
    # tleap builds the extended chain: phi = psi = omega = 180 degrees
    phi, psi = ala.torsions(ala.x_crd)
    assert abs(wrap(phi - math.pi)).item() < 1e-5 and abs(wrap(psi - math.pi)).item() < 1e-5
    assert all(abs(wrap(w - math.pi)).item() < 1e-5 for w in ala.omegas(ala.x_crd))
    # turning the C-terminal half about the N-CA bond by delta (right-handed) turns phi by delta
    n, ca = _index(ala, "ALA", "N"), _index(ala, "ALA", "CA")
    side = [a.index for a in ala.topology.atoms() if a.residue.name == "NME"
            or (a.residue.name == "ALA" and a.name not in ("N", "H", "CA"))]
    axis = (ala.x_crd[0, ca] - ala.x_crd[0, n]) / (ala.x_crd[0, ca] - ala.x_crd[0, n]).norm()
    for delta in (math.radians(-63.0), math.radians(75.0)):
        K = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=F64)
        R = torch.eye(3, dtype=F64) + math.sin(delta) * K + (1 - math.cos(delta)) * K @ K  # Rodrigues
        x = ala.x_crd.clone()
        x[0, side] = (x[0, side] - x[0, ca]) @ R.T + x[0, ca]
        phi, psi = ala.torsions(x)
        assert wrap(phi - math.pi - delta).abs().item() < 1e-5 and wrap(psi - math.pi).abs().item() < 1e-5
    # alpha_R, built from internal coordinates (row 2 is phi, row 9 psi)
    x = _with_torsions(ala, ala.x_crd, r2=-63.0, r9=-43.0)
    phi, psi = ala.torsions(x)
    assert math.degrees(phi.item()) == pytest.approx(-63.0, abs=1e-9)
    assert math.degrees(psi.item()) == pytest.approx(-43.0, abs=1e-9)
    assert BASINS[ala.basin(phi, psi)[0].item()] == "alpha_R"


# -- validity ----------------------------------------------------------------------------------------
def test_the_crd_structure_and_md_frames_are_valid(ala, frames):
    assert ala.chirality(ala.x_crd).item() > 0  # L-alanine: tleap's ALA
    assert ala.is_valid(ala.x_crd).all()
    assert ala.is_valid(frames[0], frames[1]).all()


def test_a_clash_a_mirror_image_a_cis_amide_or_a_high_energy_is_invalid(ala):
    x = ala.x_crd.repeat(5, 1, 1)
    # an H of the NME methyl moved onto the ALA carbonyl O (five bonds apart)
    h, o = _index(ala, "NME", "H1"), _index(ala, "ALA", "O")
    x[1, h] = x[1, o] + torch.tensor([0.12, 0.0, 0.0], dtype=F64)
    x[2] = -x[2]  # D-alanine
    x[3] = _with_torsions(ala, x[3:4], r5=0.0)[0]  # omega 1 cis
    valid = ala.is_valid(x, E=torch.tensor([0.0, 0.0, 0.0, 0.0, 151.0], dtype=F64))
    assert valid.tolist() == [True, False, False, False, False]
    assert ala.chirality(x[2:3]).item() < 0


# -- the representation --------------------------------------------------------------------------------
def test_the_bonds_are_the_force_field_r0(ala, frames):
    bonds = ala.zmatrix.to_internal(frames[0])[0]
    assert (bonds - ala.r0).abs().max() < 1e-6  # the shipped frames are projected, then stored as float32
    assert ala.r0.shape == (21,) and ala.r0.min() > 0.09 and ala.r0.max() < 0.16


def test_the_round_trip_reproduces_frames_and_energies(ala, frames):
    x = ala.project(frames[0])  # bonds exactly at r0 in float64
    features = ala.internal_features(x)
    f = features.encode(x)
    assert f.shape == (len(x), features.dim) and features.dim == 20 + 14 + 10
    back = features.decode(f)
    assert back.shape == x.shape and back.dtype == F64
    assert (kabsch_align(back, x) - x).abs().max() < 1e-5
    assert (ala.energy(back) - ala.energy(x)).abs().max() < 1e-3
    assert (features.encode(back) - f).abs().max() < 1e-10
    bonds, angles, torsions = ala.zmatrix.to_internal(x)
    b2, a2, t2 = ala.zmatrix.to_internal(ala.zmatrix.to_cartesian(bonds, angles, torsions))
    assert max((b2 - bonds).abs().max(), (a2 - angles).abs().max(), wrap(t2 - torsions).abs().max()) < 1e-10
    # B = 1 keeps its shapes
    assert features.decode(f[:1]).shape == (1, 22, 3) and ala.project(x[:1]).shape == (1, 22, 3)


def test_any_feature_vector_decodes_to_a_molecule_with_bonds_at_r0(ala, frames):
    features = ala.internal_features(frames[0])
    f = torch.randn(16, features.dim, generator=torch.Generator().manual_seed(3))
    x = features.decode(f)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert (ala.zmatrix.to_internal(x.double())[0] - ala.r0).abs().max() < 1e-5
    assert torch.isfinite(ala.energy(x)).all()


# -- the data ------------------------------------------------------------------------------------------
def test_short_trajectories_are_reproducible_and_seeds_differ(ala):
    a = alanine_md.simulate(ala, 400.0, 2, seed=7)
    assert a.shape == (2, 22, 3) and np.array_equal(a, alanine_md.simulate(ala, 400.0, 2, seed=7))
    assert not np.allclose(a, alanine_md.simulate(ala, 400.0, 2, seed=8))


# -- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, arg", [
    (lambda ala: ala.energy(torch.zeros(2, 21, 3, dtype=F64)), "x"),
    (lambda ala: ala.energy(torch.zeros(22, 3, dtype=F64)), "x"),
    (lambda ala: ala.energy(torch.full((1, 22, 3), float("nan"))), "x"),
    (lambda ala: ala.torsions(torch.zeros(2, 22, 2)), "x"),
    (lambda ala: ala.is_valid(ala.x_crd, E=torch.zeros(3, dtype=F64)), "E"),
    (lambda ala: ala.basin(torch.zeros(3), torch.zeros(3, 1)), "psi"),
    (lambda ala: ala.internal_features(torch.zeros(4, 20, 3)), "x_train"),
    (lambda ala: ala.internal_features(ala.x_crd.repeat(2, 1, 1)).decode(torch.zeros(2, 43)), "f"),
    (lambda ala: ala.internal_features(ala.x_crd), "x_train"),
    (lambda ala: alanine_md.simulate(ala, -1.0, 2, seed=1), "temperature"),
    (lambda ala: alanine_md.simulate(ala, 300.0, 2, seed=1, x0=np.zeros((21, 3))), "x0"),
])
def test_bad_input_names_the_argument(ala, call, arg):
    with pytest.raises((ValueError, TypeError), match=rf"(?<!\w){arg}(?!\w)"):
        call(ala)
