"""Internal coordinates: torsions and angles against independent formulas, NeRF as their exact inverse, the
Z-matrix round trip in float64, the rigid alignment, and a feature vector that decodes whatever it is given."""

import math

import numpy as np
import pytest
import torch

from tutorial_pkg.systems.internal_coordinates import (InternalFeatures, ZMatrix, bond_angle, dihedral,
                                                       kabsch_align, nerf, wrap)

F64 = torch.float64
# a branched toy molecule: a chain 0-1-2-3-4 with atom 5 on 1 and atom 6 on 3
TOY = ZMatrix((1, 0, 2), ((3, 2, 1, 0), (4, 3, 2, 1), (5, 1, 2, 3), (6, 3, 2, 5)))


def _numpy_dihedral(p0, p1, p2, p3):
    """Blondel & Karplus (1996), eq. (7): atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3))."""
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    return np.arctan2(np.linalg.norm(b2, axis=-1) * (b1 * n2).sum(-1), (n1 * n2).sum(-1))


def _random_internal(B, zm, gen):
    bonds = 0.1 + 0.05 * torch.rand(B, zm.n_atoms - 1, generator=gen, dtype=F64)
    angles = 1.6 + 0.8 * torch.rand(B, zm.n_atoms - 2, generator=gen, dtype=F64)
    torsions = (2 * torch.rand(B, zm.n_atoms - 3, generator=gen, dtype=F64) - 1) * math.pi
    return bonds, angles, torsions


def test_dihedral_of_a_hand_made_example_and_against_an_independent_formula():
    # a on +x, the axis b -> c along +z, d turned by t about it: the torsion is t (IUPAC sign)
    for t in (-2.5, -math.pi / 2, 0.3, math.pi / 3, 3.0):
        p = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 0, 1], [math.cos(t), math.sin(t), 1]], dtype=F64)
        assert dihedral(*p).item() == pytest.approx(t, abs=1e-14)
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(4, 100, 3, generator=gen, dtype=F64)
    np.testing.assert_allclose(dihedral(*p).numpy(), _numpy_dihedral(*p.numpy()), atol=1e-12)
    u, v = p[0] - p[1], p[2] - p[1]
    expected = np.arccos(((u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1))).numpy())
    np.testing.assert_allclose(bond_angle(p[0], p[1], p[2]).numpy(), expected, atol=1e-12)


def test_wrap_maps_onto_minus_pi_exclusive_to_pi_inclusive():
    theta = torch.tensor([math.pi, -math.pi, 0.0, 3 * math.pi, -0.5, 2 * math.pi + 0.5], dtype=F64)
    expected = torch.tensor([math.pi, math.pi, 0.0, math.pi, -0.5, 0.5], dtype=F64)
    assert torch.allclose(wrap(theta), expected, atol=1e-12)


@pytest.mark.parametrize("B", [1, 5])
def test_nerf_places_the_point_at_its_bond_angle_and_torsion_with_the_right_shape(B):
    gen = torch.Generator().manual_seed(B)
    a, b, c = torch.randn(3, B, 3, generator=gen, dtype=F64)
    bond, angle, torsion = (v[:, 0] for v in _random_internal(B, TOY, gen))
    d = nerf(a, b, c, bond, angle, torsion)
    assert d.shape == (B, 3)
    assert torch.allclose((d - c).norm(dim=-1), bond, atol=1e-13)
    assert torch.allclose(bond_angle(b, c, d), angle, atol=1e-12)
    assert torch.allclose(wrap(dihedral(a, b, c, d) - torsion), torch.zeros(B, dtype=F64), atol=1e-12)


def test_nerf_refuses_column_vectors_that_would_broadcast_to_b_by_b():
    a, b, c = torch.randn(3, 4, 3, dtype=F64)
    with pytest.raises(ValueError, match="bond"):
        nerf(a, b, c, torch.ones(4, 1, dtype=F64), torch.ones(4, dtype=F64), torch.ones(4, dtype=F64))


@pytest.mark.parametrize("B", [1, 7])
def test_internal_to_cartesian_to_internal_is_exact_in_float64(B):
    bonds, angles, torsions = _random_internal(B, TOY, torch.Generator().manual_seed(B))
    x = TOY.to_cartesian(bonds, angles, torsions)
    assert x.shape == (B, TOY.n_atoms, 3) and x.dtype == F64
    b2, a2, t2 = TOY.to_internal(x)
    assert b2.shape == bonds.shape and a2.shape == angles.shape and t2.shape == torsions.shape
    assert (b2 - bonds).abs().max() < 1e-12 and (a2 - angles).abs().max() < 1e-12
    assert wrap(t2 - torsions).abs().max() < 1e-12


def test_cartesian_to_internal_to_cartesian_is_a_rigid_motion():
    x = TOY.to_cartesian(*_random_internal(6, TOY, torch.Generator().manual_seed(3)))
    R = torch.linalg.qr(torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(4)))[0]
    R = R * torch.linalg.det(R)  # a proper rotation
    moved = x @ R.T + torch.tensor([0.3, -1.0, 2.0], dtype=F64)
    back = TOY.to_cartesian(*TOY.to_internal(moved))
    assert (kabsch_align(back, moved) - moved).abs().max() < 1e-12
    # a mirror image is not a rigid motion: Kabsch may not reflect
    assert (kabsch_align(-moved, moved) - moved).abs().max() > 1e-2


def test_project_sets_the_bonds_and_keeps_angles_and_torsions():
    bonds, angles, torsions = _random_internal(4, TOY, torch.Generator().manual_seed(5))
    x = TOY.to_cartesian(bonds, angles, torsions)
    r0 = torch.full((TOY.n_atoms - 1,), 0.12, dtype=F64)
    b2, a2, t2 = TOY.to_internal(TOY.project(x, r0))
    assert torch.allclose(b2, r0.expand(4, -1), atol=1e-12) and torch.allclose(a2, angles, atol=1e-12)
    assert wrap(t2 - torsions).abs().max() < 1e-12
    x_r0 = TOY.to_cartesian(r0.expand(4, -1), angles, torsions)
    assert (TOY.project(x_r0, r0) - x_r0).abs().max() < 1e-12


def test_features_round_trip_and_any_vector_decodes():
    gen = torch.Generator().manual_seed(6)
    bonds, angles, torsions = _random_internal(50, TOY, gen)
    r0 = bonds[0]
    x = TOY.to_cartesian(r0.expand(50, -1), angles, torsions)
    features = InternalFeatures.fit(TOY, r0, (1,), x)
    assert features.dim == 5 + 3 + 2 and len(features.names) == features.dim
    f = features.encode(x)
    assert f.shape == (50, features.dim)
    assert torch.allclose(features.encode(features.decode(f)), f, atol=1e-10)
    assert (kabsch_align(features.decode(f), x) - x).abs().max() < 1e-10
    # unnormalised (cos, sin) pairs decode as their direction; random vectors decode to finite frames
    g = f.clone()
    g[:, -2:] *= 3.7
    assert torch.allclose(features.decode(g), features.decode(f), atol=1e-12)
    assert torch.isfinite(features.decode(torch.randn(20, features.dim, dtype=F64, generator=gen))).all()


def test_a_z_matrix_that_does_not_place_every_atom_once_is_refused():
    with pytest.raises(ValueError, match="rows"):
        ZMatrix((0, 1, 2), ((3, 2, 1, 4),))
    with pytest.raises(ValueError, match="rows"):
        ZMatrix((0, 1, 2), ((5, 2, 1, 0),))
    with pytest.raises(ValueError, match="root"):
        ZMatrix((0, 0, 2), ())
