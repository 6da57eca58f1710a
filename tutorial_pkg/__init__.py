"""tutorial_pkg: the companion package of the course book "Guidance".

Modules, one idea each:

* :mod:`~tutorial_pkg.schedules`: noise schedules and the forward-process identities (chapter 1).
* :mod:`~tutorial_pkg.sampling`: DDPM and DDIM steps and samplers (chapter 1).
* :mod:`~tutorial_pkg.guidance`: classifier guidance and classifier-free guidance as model wrappers
  (chapters 3-5).
* :mod:`~tutorial_pkg.analytic`: exact Gaussian mixtures and a linear-Gaussian likelihood.
* :mod:`~tutorial_pkg.nets`: the conditional eps-model and the noise-aware predictors.
* :mod:`~tutorial_pkg.training`: denoising training with condition dropout; predictor training.
* :mod:`~tutorial_pkg.device`: the device a chapter runs on.
"""

from . import analytic, guidance, nets, sampling, schedules, training
from .device import default_device

__version__ = "0.1.0"

__all__ = ["analytic", "guidance", "nets", "sampling", "schedules", "training", "default_device", "__version__"]
