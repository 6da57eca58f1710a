"""8. The molecule (chapter 11): OpenMM's energy and forces per molecule, on the Reference and CPU platforms.

Energy guidance through x0_hat calls the force field at every guided step, once per molecule: its cost is one
``getState(energy, forces)`` per frame. ``AlanineDipeptide`` evaluates a batch frame by frame on one OpenMM
context; the runner times that on 64 held-out MD frames with each platform, after checking that the two give
the same energies and forces (OpenMM's CPU platform computes in mixed precision, Reference in double).
"""

from __future__ import annotations

import numpy as np

import common
from timing import interleaved

FRAMES = 64
# agreement of the platforms: CPU computes forces in single precision; energies agree to ~1e-3 kJ/mol on
# energies of order 100, forces to ~1e-2 kJ/mol/nm on forces of order 1e3
ENERGY_ATOL, FORCE_RTOL = 0.05, 1e-3


def available() -> bool:
    try:
        import openmm  # noqa: F401
    except ImportError:
        return False
    return True


def run(*, repeats: int = 5) -> list[dict]:
    from tutorial_pkg.systems.alanine_dipeptide import AlanineDipeptide
    from tutorial_pkg.systems.alanine_md import load_md_data

    x = load_md_data().x_test[:FRAMES].double().numpy()
    platforms = {name: AlanineDipeptide(platform=name) for name in ("Reference", "CPU")}
    (E_ref, F_ref), (E_cpu, F_cpu) = (platforms[p]._evaluate(x, forces=True) for p in ("Reference", "CPU"))
    e_err = float(np.abs(E_ref - E_cpu).max())
    f_err = float(np.abs(F_ref - F_cpu).max() / np.abs(F_ref).max())
    agree = e_err <= ENERGY_ATOL and f_err <= FORCE_RTOL
    m = interleaved({p: (lambda a=a: a._evaluate(x, forces=True), 1) for p, a in platforms.items()},
                    {"CPU/Reference": lambda r: r["CPU"] / r["Reference"]}, repeats=repeats)
    return [common.result(8, "molecule/openmm", f"OpenMM energy and forces, CPU platform / Reference platform, "
                          f"alanine dipeptide in vacuum, {FRAMES} frames one by one, batch {FRAMES}", m, "CPU/Reference",
                          times={f"{p} per molecule": t / FRAMES for p, t in m.times.items()},
                          note=f"the platforms {'agree' if agree else 'DISAGREE'}: max |dE| {e_err:.1e} kJ/mol, "
                               f"max |dF| / max |F| {f_err:.1e}")]
