"""tutorial_pkg: the companion package of the course book "Guidance".

Modules, one idea each:

* :mod:`~tutorial_pkg.models`: the model contract ``eps_model(x_t, t, cond) -> eps``, the wrapper base,
  null conditions, and the adaptors between eps, x0, v and score predictions (chapters 1, 5, 9).
* :mod:`~tutorial_pkg.schedules`: noise schedules and the forward-process identities (chapter 1).
* :mod:`~tutorial_pkg.sampling`: DDPM and DDIM steps and samplers, and their exact Gaussian moments
  (chapters 1, 8).
* :mod:`~tutorial_pkg.guidance`: classifier guidance and classifier-free guidance as model wrappers
  (chapters 3-5, 8).
* :mod:`~tutorial_pkg.tweedie`: Tweedie's x0_hat and its Jacobian; guidance through x0_hat by a clean
  likelihood or an energy function (DPS, MMPS), and exact sampler moments for affine guidance (chapter 9).
* :mod:`~tutorial_pkg.variants`: newer CFG variants as wrappers: CFG++, APG, CFG-Zero* (chapter 9b).
* :mod:`~tutorial_pkg.analytic`: exact Gaussian mixtures and a linear-Gaussian likelihood.
* :mod:`~tutorial_pkg.smc`: sequential Monte Carlo (Feynman-Kac correctors) for the tilted target (chapter 10).
* :mod:`~tutorial_pkg.nets`: the conditional eps-model and the noise-aware predictors.
* :mod:`~tutorial_pkg.training`: denoising training with condition dropout; predictor training.
* :mod:`~tutorial_pkg.systems`: physical systems with exact references (chapter 6).
* :mod:`~tutorial_pkg.metrics`: energy errors, Wasserstein distances, basins, accuracy, diversity.
* :mod:`~tutorial_pkg.datasets`: real data that ships with its libraries (chapter 7).
* :mod:`~tutorial_pkg.zoo`: the shipped, SHA-256-checked weights and the recipes that make them.
* :mod:`~tutorial_pkg.grading`: the self-checks of the assignments, feedback for students.
* :mod:`~tutorial_pkg.grader`: grading the assignments on the instructor's side (``python -m tutorial_pkg.grader``).
* :mod:`~tutorial_pkg.reporting`: numbers printed to the precision their uncertainty supports.
* :mod:`~tutorial_pkg.stats`: replicates, paired comparisons, verdicts and effective sample sizes, on scipy and
  pymbar (the page "How to read the numbers").
* :mod:`~tutorial_pkg.device`: the device a chapter runs on.
"""

import importlib

from . import analytic, guidance, models, nets, sampling, schedules, training, variants
from .device import default_device

__version__ = "0.1.0"

# imported when first used, so that `python -m tutorial_pkg.zoo` runs a module not yet imported (PEP 562)
_LAZY = ("datasets", "grader", "grading", "metrics", "reporting", "smc", "stats", "systems", "tweedie", "zoo")

__all__ = ["analytic", "datasets", "grader", "grading", "guidance", "metrics", "models", "nets", "reporting", "sampling",
           "schedules", "smc", "stats", "systems", "training", "tweedie", "variants", "zoo", "default_device", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tutorial_pkg' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
