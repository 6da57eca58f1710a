"""Physical systems: energy functions and where their samples live, one module per system.

Each system has ``energy(x)``, a batch of configurations to a batch of energies ``(B,)``, and
``gradient(x)``, its derivative with respect to ``x``, both in the dtype and on the device of ``x``.

* :mod:`~tutorial_pkg.systems.muller_brown`: the Müller-Brown potential on the plane, with exact Boltzmann
  samples and an exact conditional reference (chapter 6).
* :mod:`~tutorial_pkg.systems.alanine_dipeptide`: alanine dipeptide in vacuum, AMBER ff96, with OpenMM as
  its energy (an optional dependency); :mod:`~tutorial_pkg.systems.internal_coordinates`, the
  representation a model learns; :mod:`~tutorial_pkg.systems.alanine_md`, its molecular-dynamics data;
  :mod:`~tutorial_pkg.systems.temperature`, the temperature dial, canonical samples at any temperature from a
  generator conditioned on the energy (chapter 11).
"""

from .alanine_dipeptide import AlanineDipeptide
from .alanine_md import MDData, load_md_data
from .muller_brown import BoltzmannData, MullerBrown, boltzmann_dataset

__all__ = ["MullerBrown", "BoltzmannData", "boltzmann_dataset", "AlanineDipeptide", "MDData", "load_md_data"]
