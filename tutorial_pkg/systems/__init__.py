"""Physical systems: energy functions and where their samples live, one module per system.

Each system has ``energy(x)``, a batch of configurations to a batch of energies ``(B,)``, and
``gradient(x)``, its derivative with respect to ``x``.

* :mod:`~tutorial_pkg.systems.muller_brown`: the Müller-Brown potential on the plane, with exact Boltzmann
  samples and an exact conditional reference (chapter 6).
"""

from .muller_brown import BoltzmannData, MullerBrown, boltzmann_dataset

__all__ = ["MullerBrown", "BoltzmannData", "boltzmann_dataset"]
