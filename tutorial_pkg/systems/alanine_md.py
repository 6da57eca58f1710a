"""Molecular-dynamics data of alanine dipeptide at four temperatures, shipped with its SHA-256 (chapter 11).

Langevin dynamics with OpenMM's ``LangevinMiddleIntegrator`` (Zhang et al. 2019, J. Phys. Chem. A 123,
6056): 2 fs steps, friction 1/ps, at 300, 400, 500 and 650 K, from the energy-minimised tleap structure.
Each temperature has a training trajectory and an independent held-out trajectory with its own seed (for
the integrator and for the Maxwell-Boltzmann starting velocities); the first 100 ps of each are dropped and
then a frame is kept every picosecond. No frame is dropped: an amide that turns cis is counted and reported.

The frames are projected to bonds at the force field's r0 (:meth:`AlanineDipeptide.project`), stored as
float32, and their energies are computed by OpenMM on exactly those stored float32 coordinates, so
``energy(x_train)`` reproduces ``E_train``.

Usage::

    python -m tutorial_pkg.systems.alanine_md build [--ns 4] [--ns-test 1] [--out DIR]
    python -m tutorial_pkg.systems.alanine_md verify
    python -m tutorial_pkg.systems.alanine_md build-extra [--ns 2] [--out DIR]

``build-extra`` writes ``alanine_md_extra.npz``: a second, independent held-out trajectory at each of the four
temperatures (the noise floor of the held-out reference: two independent trajectories differ by it) and
trajectories at two temperatures the model never saw, 350 and 575 K (the check of the temperature dial). Each
has its own seed, none shared with the four-temperature build.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .. import _checks, _hashes
from .alanine_dipeptide import DATA_DIR, AlanineDipeptide, _openmm

Tensor = torch.Tensor

__all__ = ["MDData", "simulate", "build_md_data", "load_md_data", "build_extra_data", "load_extra_data"]

TEMPERATURES = (300.0, 400.0, 500.0, 650.0)
DATA_FILE = DATA_DIR / "alanine_md.npz"
EXTRA_FILE = DATA_DIR / "alanine_md_extra.npz"
UNSEEN_TEMPERATURES = (350.0, 575.0)
STEP_PS, FRICTION_PER_PS, EQUILIBRATION_PS, FRAME_PS = 0.002, 1.0, 100.0, 1.0
BUILD = "build it with `python -m tutorial_pkg.systems.alanine_md build`"


@dataclass(frozen=True)
class MDData:
    """Bond-projected MD frames of alanine dipeptide and their OpenMM energies.

    Attributes:
        x_train, x_test: frames ``(N, 22, 3)`` in nm, float32; ``x_test`` holds the held-out trajectories.
        E_train, E_test: potential energies ``(N,)`` in kJ/mol, float64, of exactly those frames.
        temperature_train, temperature_test: the temperature of each frame's trajectory ``(N,)``, kelvin.
        temperatures: the simulated temperatures; frames come in their order, a frame per ``frame_ps``.
    """

    temperatures: tuple
    x_train: Tensor
    E_train: Tensor
    temperature_train: Tensor
    x_test: Tensor
    E_test: Tensor
    temperature_test: Tensor
    frame_ps: float


def _minimized(ala: AlanineDipeptide) -> np.ndarray:
    openmm, _, unit = _openmm()
    context = openmm.Context(ala.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(ala.x_crd[0].numpy())
    context.applyConstraints(1e-10)
    openmm.LocalEnergyMinimizer.minimize(context, 1e-3)
    return context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)


def simulate(ala: AlanineDipeptide, temperature: float, n_frames: int, *, seed: int,
             x0: Optional[np.ndarray] = None) -> np.ndarray:
    """A Langevin trajectory at ``temperature`` kelvin: ``n_frames`` frames ``(n_frames, 22, 3)`` in nm,
    float64, one per picosecond after 100 ps of equilibration. ``seed`` seeds the integrator and the
    Maxwell-Boltzmann starting velocities; ``x0`` ``(22, 3)`` is the start (default: the minimised crd)."""
    if not isinstance(ala, AlanineDipeptide):
        raise TypeError(f"ala must be an AlanineDipeptide, got {type(ala).__name__}")
    temperature = _checks.real("temperature", temperature, low=0.0, low_open=True)
    n_frames = _checks.integer("n_frames", n_frames, low=1)
    seed = _checks.integer("seed", seed, low=1, high=2**31 - 1)
    x0 = _minimized(ala) if x0 is None else np.asarray(x0, dtype=np.float64)
    if x0.shape != (ala.n_atoms, 3) or not np.isfinite(x0).all():
        raise ValueError(f"x0 must be finite with shape ({ala.n_atoms}, 3), got {x0.shape}")
    openmm, _, unit = _openmm()
    integrator = openmm.LangevinMiddleIntegrator(temperature, FRICTION_PER_PS, STEP_PS)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(ala.system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(x0)
    context.applyConstraints(1e-10)
    # Maxwell-Boltzmann velocities, sqrt(kT / m) in nm/ps for kT in kJ/mol and m in g/mol
    kT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin) * temperature
    mass = np.array([ala.system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(ala.n_atoms)])
    v = np.random.default_rng(seed).standard_normal((ala.n_atoms, 3)) * np.sqrt(kT / mass)[:, None]
    context.setVelocities(v)
    context.applyVelocityConstraints(1e-10)
    integrator.step(round(EQUILIBRATION_PS / STEP_PS))
    frames = np.empty((n_frames, ala.n_atoms, 3))
    for f in range(n_frames):
        integrator.step(round(FRAME_PS / STEP_PS))
        frames[f] = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return frames


def _seeds(k: int) -> tuple[int, int]:
    """The (training, held-out) seeds of the k-th temperature."""
    return 101 + k, 201 + k


def _trajectory(ala: AlanineDipeptide, temperature: float, ns: float, seed: int, x0: np.ndarray, split: str):
    """One trajectory of ``ns`` nanoseconds: its frames with the bonds at r0 (float32), the energies of exactly those
    float32 coordinates, and the row that reports it (time, frames, cis-omega frames, mean energies)."""
    start = time.perf_counter()
    raw = torch.from_numpy(simulate(ala, temperature, round(ns * 1000 / FRAME_PS), seed=seed, x0=x0))
    seconds = time.perf_counter() - start
    x = ala.project(raw).to(torch.float32)
    E = ala.energy(x.to(torch.float64))
    cis = (torch.stack([w.abs() for w in ala.omegas(raw)]).min(0).values < math.pi / 2).sum().item()
    row = {"temperature": temperature, "split": split, "seconds": seconds, "frames": len(x),
           "cis_frames": int(cis), "E_raw": ala.energy(raw).mean().item(), "E": E.mean().item()}
    return x, E, row


def build_md_data(*, ns_train: float = 4.0, ns_test: float = 1.0, out: Optional[pathlib.Path] = None,
                  callback=None) -> tuple[pathlib.Path, list]:
    """Simulate every temperature, project, compute energies, write ``alanine_md.npz`` into ``out`` (default:
    the package's data folder) and record its SHA-256 there. ``callback(row)`` is called after each
    trajectory with ``row = {"temperature", "split", "seconds", "frames", "cis_frames", "E_raw", "E"}``
    (E_raw: mean energy before the projection). Returns the path and the list of rows."""
    ns_train = _checks.real("ns_train", ns_train, low=0.001)
    ns_test = _checks.real("ns_test", ns_test, low=0.001)
    out = pathlib.Path(out) if out is not None else DATA_DIR
    ala = AlanineDipeptide()
    x0 = _minimized(ala)
    arrays = {split: {"x": [], "E": [], "temperature": []} for split in ("train", "test")}
    rows = []
    for k, temperature in enumerate(TEMPERATURES):
        for split, ns, seed in (("train", ns_train, _seeds(k)[0]), ("test", ns_test, _seeds(k)[1])):
            x, E, row = _trajectory(ala, temperature, ns, seed, x0, split)
            rows.append(row)
            if callback is not None:
                callback(row)
            arrays[split]["x"].append(x.numpy())
            arrays[split]["E"].append(E.numpy())
            arrays[split]["temperature"].append(np.full(len(x), temperature))
    out.mkdir(parents=True, exist_ok=True)
    path = out / DATA_FILE.name
    frames = {f"{key}_{split}": np.concatenate(v) for split, d in arrays.items() for key, v in d.items()}
    np.savez_compressed(path, **frames, temperatures=np.array(TEMPERATURES),
                        seeds=np.array([_seeds(k) for k in range(len(TEMPERATURES))]), frame_ps=FRAME_PS,
                        step_ps=STEP_PS, friction_per_ps=FRICTION_PER_PS, equilibration_ps=EQUILIBRATION_PS,
                        openmm_version=_openmm()[0].__version__, cis_frames=np.array([r["cis_frames"] for r in rows]))
    _hashes.write_sum(out, path.name, _hashes.sha256(path))
    return path, rows


def load_md_data(*, path: Optional[pathlib.Path] = None) -> MDData:
    """The shipped MD data (or the file at ``path``), after checking its SHA-256 against the ``SHA256SUMS``
    next to it. Needs no OpenMM. Chapter 11."""
    if path is not None and not pathlib.Path(path).is_file():
        raise ValueError(f"path must be an existing .npz file, got {str(path)!r}")
    path = _hashes.check(DATA_FILE if path is None else pathlib.Path(path), kind="the MD data file", remedy=BUILD)
    with np.load(path, allow_pickle=False) as f:
        t = {k: torch.from_numpy(f[k]) for k in f.files if k.split("_")[-1] in ("train", "test")}
        return MDData(tuple(float(T) for T in f["temperatures"]), t["x_train"], t["E_train"], t["temperature_train"],
                      t["x_test"], t["E_test"], t["temperature_test"], float(f["frame_ps"]))


def _extra_seeds() -> dict:
    """Seeds of the extra trajectories: ("floor", T) for the second held-out trajectory at each training
    temperature, ("unseen", T) for the unseen temperatures; disjoint from :func:`_seeds`."""
    seeds = {("floor", T): 301 + k for k, T in enumerate(TEMPERATURES)}
    seeds.update({("unseen", T): 401 + k for k, T in enumerate(UNSEEN_TEMPERATURES)})
    return seeds


def build_extra_data(*, ns: float = 2.0, ns_floor: float = 1.0, out: Optional[pathlib.Path] = None,
                     callback=None) -> tuple[pathlib.Path, list]:
    """Simulate the extra trajectories of :func:`_extra_seeds` (``ns_floor`` ns per training temperature,
    ``ns`` ns per unseen temperature), project and compute energies as :func:`build_md_data` does, and write
    ``alanine_md_extra.npz`` with its SHA-256 into ``out`` (default: the package's data folder). Arrays
    ``x_<split>``, ``E_<split>``, ``temperature_<split>`` for split in ("floor", "unseen")."""
    ns = _checks.real("ns", ns, low=0.001)
    ns_floor = _checks.real("ns_floor", ns_floor, low=0.001)
    out = pathlib.Path(out) if out is not None else DATA_DIR
    ala = AlanineDipeptide()
    x0 = _minimized(ala)
    arrays = {split: {"x": [], "E": [], "temperature": []} for split in ("floor", "unseen")}
    rows = []
    for (split, temperature), seed in _extra_seeds().items():
        x, E, row = _trajectory(ala, temperature, ns_floor if split == "floor" else ns, seed, x0, split)
        rows.append(row)
        if callback is not None:
            callback(row)
        arrays[split]["x"].append(x.numpy())
        arrays[split]["E"].append(E.numpy())
        arrays[split]["temperature"].append(np.full(len(x), temperature))
    out.mkdir(parents=True, exist_ok=True)
    path = out / EXTRA_FILE.name
    frames = {f"{key}_{split}": np.concatenate(v) for split, d in arrays.items() for key, v in d.items()}
    np.savez_compressed(path, **frames, seconds=np.array([r["seconds"] for r in rows]),
                        seeds=np.array(list(_extra_seeds().values())), frame_ps=FRAME_PS,
                        openmm_version=_openmm()[0].__version__, cis_frames=np.array([r["cis_frames"] for r in rows]))
    _hashes.write_sum(out, path.name, _hashes.sha256(path))
    return path, rows


def load_extra_data(*, path: Optional[pathlib.Path] = None) -> dict:
    """The extra MD data of :func:`build_extra_data` as a dict of tensors (``x_floor``, ``E_floor``,
    ``temperature_floor``, ``x_unseen``, ``E_unseen``, ``temperature_unseen``, ``seconds``), after checking
    its SHA-256. Needs no OpenMM. Chapter 11."""
    if path is not None and not pathlib.Path(path).is_file():
        raise ValueError(f"path must be an existing .npz file, got {str(path)!r}")
    path = _hashes.check(EXTRA_FILE if path is None else pathlib.Path(path), kind="the extra MD data file",
                         remedy="build it with `python -m tutorial_pkg.systems.alanine_md build-extra`")
    with np.load(path, allow_pickle=False) as f:
        return {k: torch.from_numpy(f[k]) for k in ("x_floor", "E_floor", "temperature_floor", "x_unseen",
                                                    "E_unseen", "temperature_unseen", "seconds")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tutorial_pkg.systems.alanine_md",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="run the MD and write alanine_md.npz with its SHA-256")
    b.add_argument("--ns", type=float, default=4.0, help="training trajectory per temperature, ns (default 4)")
    b.add_argument("--ns-test", type=float, default=1.0, help="held-out trajectory per temperature, ns (default 1)")
    b.add_argument("--out", type=pathlib.Path, default=None, help="output folder (default: the package's data)")
    sub.add_parser("verify", help="check the shipped data against its SHA-256")
    e = sub.add_parser("build-extra", help="run the extra MD (second held-out, unseen temperatures)")
    e.add_argument("--ns", type=float, default=2.0, help="trajectory per unseen temperature, ns (default 2)")
    e.add_argument("--ns-floor", type=float, default=1.0, help="second held-out trajectory, ns (default 1)")
    e.add_argument("--out", type=pathlib.Path, default=None, help="output folder (default: the package's data)")
    args = parser.parse_args(argv)
    if args.command == "verify":
        data = load_md_data()
        print(f"{DATA_FILE.name}: OK, {len(data.x_train)} training and {len(data.x_test)} held-out frames")
        return 0
    start = time.perf_counter()
    per_temperature = {}

    def report(row):
        ns = row["frames"] * FRAME_PS / 1000 + EQUILIBRATION_PS / 1000
        print(f"{row['temperature']:5.0f} K {row['split']:5s} {row['frames']:5d} frames {row['seconds']:6.1f} s "
              f"({ns / row['seconds'] * 86400:,.0f} ns/day), mean E {row['E']:7.2f} kJ/mol "
              f"(before projection {row['E_raw']:7.2f}), cis-amide frames: {row['cis_frames']}", flush=True)
        per_temperature[row["temperature"]] = per_temperature.get(row["temperature"], 0.0) + row["seconds"]
        if row["split"] == "test":
            print(f"{row['temperature']:5.0f} K: {per_temperature[row['temperature']]:.1f} s of MD", flush=True)

    if args.command == "build-extra":
        path, _ = build_extra_data(ns=args.ns, ns_floor=args.ns_floor, out=args.out, callback=report)
    else:
        path, _ = build_md_data(ns_train=args.ns, ns_test=args.ns_test, out=args.out, callback=report)
    print(f"in all {time.perf_counter() - start:.1f} s; {path.name}: {path.stat().st_size / 1e6:.2f} MB, "
          f"sha256 {_hashes.sha256(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
