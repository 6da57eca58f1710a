"""Pre-trained weights for the chapters whose models take longer to train than a chapter may run.

Each entry is a **recipe**: the data, the network and the training call of the package's own training code.
``python -m tutorial_pkg.zoo build NAME`` runs the recipe, writes ``weights/NAME.pt`` (a state dict) and
records its SHA-256 in ``weights/SHA256SUMS``. :func:`load` checks the file against that hash before it
opens it, and opens it with ``torch.load(..., weights_only=True)``, which refuses anything but tensors.

A chapter calls ``zoo.load(NAME)``. It loads the shipped weights on every device (CPU, CUDA, MPS: the files
hold float32 tensors, mapped to the device when loaded), so a chapter prints the same numbers on Colab as in
the book. It retrains only when asked: ``retrain=True``, or the environment variable ``TUTORIAL_PKG_RETRAIN=1``.
The returned :class:`Loaded` says which of the two happened (``source``) and carries a one-line ``note``
for the chapter to print.

Usage::

    python -m tutorial_pkg.zoo list
    python -m tutorial_pkg.zoo build muller_brown_cfg [--steps N] [--out DIR]
    python -m tutorial_pkg.zoo verify
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import sys
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import torch
from torch import nn

from . import _checks, _hashes, nets, training
from ._hashes import sha256
from .datasets import load_digits_split
from .device import default_device
from .schedules import linear_schedule
from .systems import boltzmann_dataset

__all__ = ["Recipe", "RECIPES", "Loaded", "load", "build", "verify", "sha256", "WEIGHTS_DIR", "RETRAIN_ENV"]

WEIGHTS_DIR = pathlib.Path(__file__).parent / "weights"
RETRAIN_ENV = "TUTORIAL_PKG_RETRAIN"


@dataclass(frozen=True)
class Recipe:
    """How to make one shipped model: ``make_model()`` builds the untrained network, ``train(model, steps,
    progress)`` trains it with :mod:`tutorial_pkg.training` and returns the network to ship."""

    name: str
    description: str
    make_model: Callable[[], nn.Module]
    train: Callable[[nn.Module, int, bool], nn.Module]
    steps: int


# -- the data the recipes train on (the chapters load the same data) -------------------------------
# energies that the Müller-Brown models never see in training: chapter 6 tests them inside this band
HELDOUT_BAND = (-105.0, -95.0)


def muller_brown_data():
    """The Müller-Brown data of chapter 6: 20 000 training samples with no energy in ``HELDOUT_BAND``, and an
    independent draw of 5 000 Boltzmann samples of the whole distribution for testing; seed 0."""
    return boltzmann_dataset(20_000, 5_000, heldout_band=HELDOUT_BAND, generator=torch.Generator().manual_seed(0))


SCHEDULE_T = 1000


def _mb_energy_stats():
    E = muller_brown_data().E_train
    return E.mean().item(), E.std().item()


def _mb_cfg_model():
    shift, scale = _mb_energy_stats()
    torch.manual_seed(0)
    return nets.MLPEpsModel(2, hidden=128, depth=3, cond="energy", null="learned",
                            energy_shift=shift, energy_scale=scale)


def _mb_cfg_train(model, steps, progress):
    data = muller_brown_data()
    return training.train_eps_model(model, data.standardize(data.x_train).float(), linear_schedule(SCHEDULE_T),
                                    cond=data.E_train.float(), p_uncond=0.2, steps=steps, batch_size=512,
                                    lr=2e-3, ema_decay=0.999, seed=0, progress=progress).model


def _mb_regressor_model(spread: str = "x_t"):
    shift, scale = _mb_energy_stats()
    torch.manual_seed(0)
    return nets.NoiseAwareRegressor(2, hidden=128, depth=3, energy_shift=shift, energy_scale=scale, spread=spread)


def _mb_regressor_train(model, steps, progress):
    data = muller_brown_data()
    return training.train_predictor(model, data.standardize(data.x_train).float(), data.E_train.float(),
                                    linear_schedule(SCHEDULE_T), steps=steps, batch_size=512, lr=1e-3,
                                    ema_decay=0.999, seed=0, progress=progress).model


@functools.lru_cache(maxsize=1)
def alanine_data():
    """Chapter 11's data: the alanine dipeptide system (OpenMM), its MD frames and energies
    (``systems.load_md_data``) and the internal-coordinate features fitted on the training frames.
    Returns ``(system, md, features)``; needs OpenMM (the ``molecules`` extra)."""
    from .systems import AlanineDipeptide, load_md_data

    system, md = AlanineDipeptide(), load_md_data()
    return system, md, system.internal_features(md.x_train)


def _alanine_energy_stats():
    _, md, _ = alanine_data()
    return md.E_train.mean().item(), md.E_train.std().item()


def _alanine_cfg_model():
    _, _, features = alanine_data()
    shift, scale = _alanine_energy_stats()
    torch.manual_seed(0)
    return nets.MLPEpsModel(features.dim, hidden=256, depth=4, time_dim=64, cond="energy", null="learned",
                            cond_dim=64, energy_shift=shift, energy_scale=scale)


def _alanine_cfg_train(model, steps, progress):
    _, md, features = alanine_data()
    return training.train_eps_model(model, features.encode(md.x_train.double()).float(), linear_schedule(SCHEDULE_T),
                                    cond=md.E_train.float(), p_uncond=0.2, steps=steps, batch_size=512, lr=1e-3,
                                    ema_decay=0.999, seed=0, progress=progress).model


def _alanine_regressor_model():
    _, _, features = alanine_data()
    shift, scale = _alanine_energy_stats()
    torch.manual_seed(0)
    return nets.NoiseAwareRegressor(features.dim, hidden=256, depth=3, time_dim=64, energy_shift=shift,
                                    energy_scale=scale, spread="x_t")


def _alanine_regressor_train(model, steps, progress):
    _, md, features = alanine_data()
    return training.train_predictor(model, features.encode(md.x_train.double()).float(), md.E_train.float(),
                                    linear_schedule(SCHEDULE_T), steps=steps, batch_size=512, lr=1e-3,
                                    ema_decay=0.999, seed=0, progress=progress).model


def _digits_eps_model():
    torch.manual_seed(0)
    return nets.MLPEpsModel(64, hidden=256, depth=3, time_dim=64, cond="label", num_classes=10, null="learned",
                            cond_dim=64)


def _digits_eps_train(model, steps, progress):
    split = load_digits_split()
    return training.train_eps_model(model, split.x_train, linear_schedule(SCHEDULE_T), cond=split.y_train,
                                    p_uncond=0.15, steps=steps, batch_size=256, lr=1e-3, ema_decay=0.999,
                                    seed=0, progress=progress).model


def _digits_classifier_model():
    torch.manual_seed(0)
    return nets.NoiseAwareClassifier(64, 10, hidden=256, depth=2, time_dim=64)


def _digits_classifier_train(model, steps, progress):
    split = load_digits_split()
    return training.train_predictor(model, split.x_train, split.y_train, linear_schedule(SCHEDULE_T), steps=steps,
                                    batch_size=256, lr=1e-3, seed=0, progress=progress).model


def ch1_mixture_data():
    """Chapter 1's data: the two-dimensional mixture of three Gaussians and its 4 000 training samples (seed 0).
    Returns ``(mixture, x0)``, ``x0`` in float64 as the chapter draws it."""
    from .analytic import GaussianMixture

    mixture = GaussianMixture(
        weights=[0.3, 0.3, 0.4],
        means=[[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]],
        covs=[[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.1], [-0.1, 0.3]], [[0.5, 0.0], [0.0, 0.1]]],
    )
    x0, _ = mixture.sample(4000, generator=torch.Generator().manual_seed(0))
    return mixture, x0


def _ch1_mixture_model(seed: int):
    torch.manual_seed(seed)
    return nets.MLPEpsModel(2)


def _ch1_mixture_train(seed: int):
    def train(model, steps, progress):
        _, x0 = ch1_mixture_data()
        return training.train_eps_model(model, x0.float(), linear_schedule(SCHEDULE_T), steps=steps, batch_size=256,
                                        lr=3e-3, seed=seed, progress=progress).model
    return train


# chapter 4: small noise-aware classifiers of the chapter's three-Gaussian mixture, one per training seed,
# each on its own draw of the data, so that the chapter replicates over independently trained networks
CH4_SEEDS = (0, 1, 2, 3, 4)


def _ch4_mixture():
    from .analytic import GaussianMixture
    return GaussianMixture(weights=[0.35, 0.35, 0.3], means=[[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]],
                           covs=[[[0.5, 0.2], [0.2, 0.4]], [[0.4, -0.1], [-0.1, 0.5]], [[0.6, 0.0], [0.0, 0.3]]])


def _ch4_classifier_model(seed):
    torch.manual_seed(seed)
    return nets.NoiseAwareClassifier(2, 3)


def _ch4_classifier_train(seed, model, steps, progress):
    x0, labels = _ch4_mixture().sample(4000, generator=torch.Generator().manual_seed(100 + seed))
    return training.train_predictor(model, x0.float(), labels, linear_schedule(SCHEDULE_T), steps=steps, seed=seed,
                                    progress=progress).model


# -- chapter 2: the conditional models of the two-dimensional mixture, several independent seeds -------
CH2_SEEDS = (0, 1, 2, 3, 4)
# more training sets, each with a Fourier network whose frequencies B have their own seed, and a linear control
CH2_FSEEDS = {5: 1, 6: 2, 7: 3}                      # training set and network seed -> fourier_seed


def ch2_mixture():
    """Chapter 2's three-component mixture and its noisy linear energy (h = (1, 0.6), b = 0), with the
    label noise ``tau`` of the energy given to :func:`ch2_data`."""
    from .analytic import GaussianMixture

    return GaussianMixture(weights=[0.3, 0.3, 0.4], means=[[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]],
                           covs=[[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.1], [-0.1, 0.3]], [[0.5, 0.0], [0.0, 0.1]]])


def ch2_data(seed: int = 0, tau: float = 0.3):
    """Training set ``seed`` of chapter 2: 4000 configurations (generator seed ``2 * seed``), their labels and
    one energy each (generator seed ``2 * seed + 1``). Seed 0 is the set the chapter draws itself.
    Returns ``(x0, labels, energies, likelihood)``, all float64."""
    from .analytic import LinearGaussianLikelihood

    seed = _checks.integer("seed", seed, low=0)
    mixture = ch2_mixture()
    x0, labels = mixture.sample(4000, generator=torch.Generator().manual_seed(2 * seed))
    likelihood = LinearGaussianLikelihood(mixture, h=[1.0, 0.6], b=0.0, tau=tau)
    energies = likelihood.sample(x0, generator=torch.Generator().manual_seed(2 * seed + 1))
    return x0, labels, energies, likelihood


def _ch2_label_model():
    torch.manual_seed(0)
    return nets.MLPEpsModel(2, cond="label", num_classes=3)


def _ch2_label_train(model, steps, progress):
    x0, labels, _, _ = ch2_data(0)
    return training.train_eps_model(model, x0.float(), linear_schedule(SCHEDULE_T), cond=labels, steps=steps,
                                    batch_size=256, lr=3e-3, seed=0, progress=progress).model


def _ch2_energy_model(seed: int, tau: float = 0.3, energy_features: str = "fourier", fourier_seed: int = 0):
    # the recipes ch2_energy_<steps>_seed<s> keep the frequencies of generator seed 0 (FourierFeatures' default)
    # for every network seed, as shipped; ch2_energy_2000_fseed<f>_seed<s> draw them with seed f; the linear
    # embedding has no frequencies
    def make():
        _, _, energies, _ = ch2_data(seed, tau)
        torch.manual_seed(seed)
        return nets.MLPEpsModel(2, cond="energy", energy_shift=energies.mean().item(),
                                energy_scale=energies.std().item(), energy_features=energy_features,
                                fourier_seed=fourier_seed)
    return make


def _ch2_energy_train(seed: int, tau: float = 0.3):
    def train(model, steps, progress):
        x0, _, energies, _ = ch2_data(seed, tau)
        return training.train_eps_model(model, x0.float(), linear_schedule(SCHEDULE_T), cond=energies.float(),
                                        steps=steps, batch_size=256, lr=3e-3, seed=seed, progress=progress).model
    return train


CH2_RECIPES = [
    Recipe("ch2_label", "chapter 2: class-conditional eps-model of the mixture, training set 0, 2000 steps",
           _ch2_label_model, _ch2_label_train, 2000),
    *[Recipe(f"ch2_energy_{steps}_seed{s}", f"chapter 2: energy-conditional eps-model (tau = 0.3), training set "
             f"and network seed {s}, {steps} steps", _ch2_energy_model(s), _ch2_energy_train(s), steps)
      for steps in (300, 2000) for s in CH2_SEEDS],
    *[Recipe(f"ch2_energy_linear_2000_seed{s}", f"chapter 2, control: the recipe ch2_energy_2000_seed{s} with the "
             f"energy embedded linearly (no Fourier features)", _ch2_energy_model(s, energy_features="linear"),
             _ch2_energy_train(s), 2000) for s in CH2_SEEDS],
    Recipe("ch2_energy_tau1", "chapter 2, exercise 3: energy-conditional eps-model with tau = 1, training set 0, "
           "2000 steps", _ch2_energy_model(0, 1.0), _ch2_energy_train(0, 1.0), 2000),
    *[Recipe(f"ch2_energy_2000_fseed{f}_seed{s}", f"chapter 2: the recipe ch2_energy_2000_seed<s> on training set "
             f"and network seed {s}, with Fourier frequencies B of generator seed {f}",
             _ch2_energy_model(s, fourier_seed=f), _ch2_energy_train(s), 2000) for s, f in CH2_FSEEDS.items()],
    *[Recipe(f"ch2_energy_linear_2000_seed{s}", f"chapter 2, control: the recipe ch2_energy_2000_fseed{f}_seed{s} "
             f"with the energy embedded linearly (no Fourier features)",
             _ch2_energy_model(s, energy_features="linear"), _ch2_energy_train(s), 2000)
      for s, f in CH2_FSEEDS.items()],
]


RECIPES = {r.name: r for r in [
    Recipe("muller_brown_cfg", "chapter 6: energy-conditioned eps-model, learned null, p_uncond = 0.2, band held out",
           _mb_cfg_model, _mb_cfg_train, 20_000),
    Recipe("muller_brown_regressor", "chapter 6: noise-aware Gaussian regressor of the energy, spread sigma(x_t, t)",
           _mb_regressor_model, _mb_regressor_train, 10_000),
    Recipe("muller_brown_regressor_t", "chapter 6: the same regressor with a spread sigma(t) of the noise level only",
           lambda: _mb_regressor_model("t"), _mb_regressor_train, 10_000),
    Recipe("alanine_cfg", "chapter 11: energy-conditioned eps-model of alanine dipeptide's internal coordinates, "
           "learned null, p_uncond = 0.2", _alanine_cfg_model, _alanine_cfg_train, 20_000),
    Recipe("alanine_regressor", "chapter 11: noise-aware Gaussian regressor of alanine dipeptide's energy, spread "
           "sigma(x_t, t)", _alanine_regressor_model, _alanine_regressor_train, 10_000),
    Recipe("digits_eps", "chapter 7: class-conditional eps-model of 8x8 digits, learned null, p_uncond = 0.15",
           _digits_eps_model, _digits_eps_train, 8_000),
    Recipe("digits_classifier", "chapter 7: noise-aware classifier of 8x8 digits, for classifier guidance",
           _digits_classifier_model, _digits_classifier_train, 6_000),
    Recipe("ch1_mixture_seed0", "chapter 1: eps-model of the three-Gaussian mixture, the chapter's training call "
           "with training seed 0", functools.partial(_ch1_mixture_model, 0), _ch1_mixture_train(0), 2_000),
    Recipe("ch1_mixture_seed1", "chapter 1: eps-model of the three-Gaussian mixture, the chapter's training call "
           "with training seed 1", functools.partial(_ch1_mixture_model, 1), _ch1_mixture_train(1), 2_000),
    Recipe("ch1_mixture_seed2", "chapter 1: eps-model of the three-Gaussian mixture, the chapter's training call "
           "with training seed 2", functools.partial(_ch1_mixture_model, 2), _ch1_mixture_train(2), 2_000),
    *[Recipe(f"ch4_classifier_seed{seed}", f"chapter 4: noise-aware classifier of the three-Gaussian mixture, "
             f"training seed {seed}, its own 4000 draws", functools.partial(_ch4_classifier_model, seed),
             functools.partial(_ch4_classifier_train, seed), 800) for seed in CH4_SEEDS],
    *CH2_RECIPES,
]}


# -- chapter 3: small noise-aware predictors of a three-component Gaussian mixture, several training seeds
CH3_SEEDS = (0, 1, 2, 3)


@functools.lru_cache(maxsize=1)
def ch3_data():
    """Chapter 3's mixture and data: ``(mixture, likelihood, x, y, E)``, 3000 samples (seed 4) with their
    classes and linear-Gaussian energies (seed 5), float64, as the chapter draws them."""
    from .analytic import GaussianMixture, LinearGaussianLikelihood

    mixture = GaussianMixture(
        weights=[0.35, 0.35, 0.3],
        means=[[-1.5, 0.0], [1.5, 0.0], [0.0, 1.8]],
        covs=[[[0.6, 0.2], [0.2, 0.4]], [[0.5, -0.2], [-0.2, 0.4]], [[0.7, 0.0], [0.0, 0.3]]],
    )
    likelihood = LinearGaussianLikelihood(mixture, h=[1.0, 0.6], b=0.0, tau=0.3)
    x, y = mixture.sample(3000, generator=torch.Generator().manual_seed(4))
    E = likelihood.sample(x, generator=torch.Generator().manual_seed(5))
    return mixture, likelihood, x, y, E


def _ch3_classifier_model(seed):
    torch.manual_seed(seed)
    return nets.NoiseAwareClassifier(2, 3)


def _ch3_regressor_model(seed):
    _, _, _, _, E = ch3_data()
    torch.manual_seed(seed)
    return nets.NoiseAwareRegressor(2, energy_shift=E.mean().item(), energy_scale=E.std().item())


def _ch3_train(seed, target):
    def train(model, steps, progress):
        _, _, x, y, E = ch3_data()
        return training.train_predictor(model, x.float(), y if target == "class" else E.float(),
                                        linear_schedule(SCHEDULE_T), steps=steps, seed=seed,
                                        progress=progress).model
    return train


RECIPES.update({r.name: r for seed in CH3_SEEDS for r in [
    Recipe(f"ch3_classifier_seed{seed}", f"chapter 3: noise-aware classifier of the mixture, training seed {seed}",
           functools.partial(_ch3_classifier_model, seed), _ch3_train(seed, "class"), 1500),
    Recipe(f"ch3_regressor_seed{seed}", f"chapter 3: noise-aware Gaussian regressor of the mixture's energy, "
           f"spread sigma(t), training seed {seed}", functools.partial(_ch3_regressor_model, seed),
           _ch3_train(seed, "energy"), 1500),
]})


# -- chapter 5: small classifier-free networks of the chapter's mixtures, several training seeds ------
# The chapter replicates its claims over independently trained networks; each network trains in seconds,
# but together they would exceed a chapter's time budget, so they ship here. Seed 0 of each family is the
# chapter's own network (the same initialisation and batches as a training call in the notebook).
CH5_SEEDS = (0, 1, 2)
CH5_P_UNCOND = (0.05, 0.1, 0.2, 0.5)


@functools.lru_cache(maxsize=1)
def ch5_data():
    """Chapter 5's data: its three-class mixture, 4000 labelled samples (seed 4), the linear likelihood of the
    energies centred on their mean and the energies of the samples (seed 6). Returns
    ``(mixture, x, y, likelihood, E)``."""
    from .analytic import GaussianMixture, LinearGaussianLikelihood

    mixture = GaussianMixture(
        weights=[0.35, 0.35, 0.3],
        means=[[-1.5, 0.0], [1.5, 0.0], [0.0, 1.8]],
        covs=[[[0.6, 0.2], [0.2, 0.4]], [[0.5, -0.2], [-0.2, 0.4]], [[0.7, 0.0], [0.0, 0.3]]],
    )
    x, y = mixture.sample(4000, generator=torch.Generator().manual_seed(4))
    h = torch.tensor([1.0, 0.6], dtype=torch.float64)
    likelihood = LinearGaussianLikelihood(mixture, h=h, b=-(mixture.mean() @ h).item(), tau=0.3)
    E = likelihood.sample(x, generator=torch.Generator().manual_seed(6))
    return mixture, x, y, likelihood, E


@functools.lru_cache(maxsize=1)
def ch5_chapter2_data():
    """Chapter 2's mixture and 4000 energy-labelled samples (seeds 0 and 1), re-used by chapter 5's cure
    section. Returns ``(mixture, x, likelihood, E)``."""
    from .analytic import GaussianMixture, LinearGaussianLikelihood

    mixture = GaussianMixture(
        weights=[0.3, 0.3, 0.4],
        means=[[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]],
        covs=[[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.1], [-0.1, 0.3]], [[0.5, 0.0], [0.0, 0.1]]],
    )
    likelihood = LinearGaussianLikelihood(mixture, h=[1.0, 0.6], b=0.0, tau=0.3)
    x, _ = mixture.sample(4000, generator=torch.Generator().manual_seed(0))
    E = likelihood.sample(x, generator=torch.Generator().manual_seed(1))
    return mixture, x, likelihood, E


def _ch5_label(p_uncond: float, seed: int) -> Recipe:
    def make():
        torch.manual_seed(seed)
        return nets.MLPEpsModel(2, cond="label", num_classes=3, null="learned")

    def train(model, steps, progress):
        _, x, y, _, _ = ch5_data()
        return training.train_eps_model(model, x.float(), linear_schedule(SCHEDULE_T), cond=y, p_uncond=p_uncond,
                                        steps=steps, seed=seed, progress=progress).model

    name = f"ch5_label_p{round(100 * p_uncond):02d}_seed{seed}"
    return Recipe(name, f"chapter 5: class-conditional eps-model of the mixture, learned null, p_uncond = {p_uncond:g}, "
                        f"training seed {seed}", make, train, 1000)


def _ch5_energy(null: str, seed: int) -> Recipe:
    def make():
        _, _, _, _, E = ch5_data()
        torch.manual_seed(seed)
        return nets.MLPEpsModel(2, cond="energy", null=null, energy_scale=E.std().item())

    def train(model, steps, progress):
        _, x, _, _, E = ch5_data()
        return training.train_eps_model(model, x.float(), linear_schedule(SCHEDULE_T), cond=E.float(), p_uncond=0.2,
                                        steps=steps, seed=seed, progress=progress).model

    return Recipe(f"ch5_energy_{null}_seed{seed}", f"chapter 5: energy-conditioned eps-model, {null} null, "
                  f"p_uncond = 0.2, training seed {seed}", make, train, 1000)


def _ch5_cure(kind: str, seed: int = 0) -> Recipe:
    def normalise():
        _, _, _, E = ch5_chapter2_data()
        return dict(energy_shift=E.mean().item(), energy_scale=E.std().item())

    def make():
        torch.manual_seed(seed)
        if kind == "regressor":
            return nets.NoiseAwareRegressor(2, **normalise())
        return nets.MLPEpsModel(2, cond="energy", **normalise())

    def train(model, steps, progress):
        _, x, _, E = ch5_chapter2_data()
        recipe = dict(batch_size=256, lr=3e-3, seed=seed, progress=progress)
        if kind == "regressor":
            return training.train_predictor(model, x.float(), E.float(), linear_schedule(SCHEDULE_T), steps=steps,
                                            **recipe).model
        return training.train_eps_model(model, x.float(), linear_schedule(SCHEDULE_T), cond=E.float(),
                                        p_uncond=0.2 if kind == "dropout" else 0.0, steps=steps, **recipe).model

    what = {"chapter2": "chapter 2's energy-conditioned eps-model (no condition dropout)",
            "dropout": "the same network trained with condition dropout, p_uncond = 0.2",
            "regressor": "a noise-aware Gaussian regressor of the energy"}[kind]
    # seed 0 keeps its first name; seeds 1 and 2 replicate the cure section over independently trained networks
    name = f"ch5_cure_{kind}" if seed == 0 else f"ch5_cure_{kind}_seed{seed}"
    return Recipe(name, f"chapter 5: {what}, on chapter 2's data, training seed {seed}", make, train,
                  600 if kind == "regressor" else 2000)


RECIPES.update({r.name: r for r in (
    [_ch5_label(p, s) for p in CH5_P_UNCOND for s in CH5_SEEDS]
    + [_ch5_energy("zero", 0)] + [_ch5_energy("learned", s) for s in CH5_SEEDS]
    + [_ch5_cure(kind) for kind in ("chapter2", "dropout", "regressor")]
    + [_ch5_cure(kind, s) for kind in ("chapter2", "dropout", "regressor") for s in CH5_SEEDS[1:]]
)})



# -- chapter 8: autoguidance, replicated over independently trained pairs of networks ---------------
CH8_SEEDS = (0, 1, 2, 3, 4, 5, 6, 7)


def ch8_mixture():
    """Chapter 8's autoguidance data: its three-class mixture and 20 000 labelled samples (seed 0)."""
    from .analytic import GaussianMixture
    mixture = GaussianMixture(
        weights=[0.35, 0.35, 0.3],
        means=[[-1.5, 0.0], [1.5, 0.0], [0.0, 1.8]],
        covs=[[[0.6, 0.2], [0.2, 0.4]], [[0.5, -0.2], [-0.2, 0.4]], [[0.7, 0.0], [0.0, 0.3]]],
    )
    x, y = mixture.sample(20_000, generator=torch.Generator().manual_seed(0))
    return mixture, x, y


def _ch8_auto(kind: str, seed: int) -> Recipe:
    def make():
        torch.manual_seed(seed)
        return nets.MLPEpsModel(2, cond="label", num_classes=3)

    def train(model, steps, progress):
        _, x, y = ch8_mixture()
        return training.train_eps_model(model, x.float(), linear_schedule(SCHEDULE_T), cond=y, p_uncond=0.1,
                                        steps=steps, lr=3e-3, seed=seed, progress=progress).model

    # the weak network of a pair shares the strong one's initialisation and batches, and trains for a third
    return Recipe(f"ch8_auto_{kind}_seed{seed}", f"chapter 8: under-trained class-conditional eps-model "
                  f"({kind}: {300 if kind == 'strong' else 100} steps), p_uncond = 0.1, training seed {seed}",
                  make, train, 300 if kind == "strong" else 100)


RECIPES.update({r.name: r for r in [_ch8_auto(kind, s) for s in CH8_SEEDS for kind in ("strong", "weak")]})

# -- files and hashes --------------------------------------------------------------------------------
def _recipe(name: str) -> Recipe:
    _checks.choice("name", name, RECIPES)
    return RECIPES[name]


def verify(name: str, *, folder: Optional[pathlib.Path] = None) -> pathlib.Path:
    """Check ``NAME.pt`` against its recorded SHA-256 and return its path; raise ``ValueError`` if it differs."""
    _recipe(name)
    folder = pathlib.Path(folder) if folder is not None else WEIGHTS_DIR
    path = folder / f"{name}.pt"
    return _hashes.check(path, kind="the weights file", remedy=f"build it with `python -m tutorial_pkg.zoo build {name}`",
                         remedy_if_changed=f"rebuild with `python -m tutorial_pkg.zoo build {name}` or retrain with "
                                           f"{RETRAIN_ENV}=1")


def build(name: str, *, steps: Optional[int] = None, out: Optional[pathlib.Path] = None,
          progress: bool = True) -> pathlib.Path:
    """Run recipe ``name``, save its state dict as ``NAME.pt`` in ``out`` (default: the package's weights
    folder) and record its SHA-256 in ``SHA256SUMS`` there. Returns the path of the file."""
    recipe = _recipe(name)
    steps = recipe.steps if steps is None else _checks.integer("steps", steps, low=1)
    out = pathlib.Path(out) if out is not None else WEIGHTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    model = recipe.train(recipe.make_model(), steps, progress)
    path = out / f"{name}.pt"
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, path)
    _hashes.write_sum(out, path.name, sha256(path))
    return path


class Loaded(NamedTuple):
    """A model from the zoo and where it came from: ``"shipped"`` weights or ``"retrained"`` now.

    ``note`` is the line a chapter prints, e.g. ``"digits_eps: shipped weights (SHA-256 checked) on cpu"``.
    """

    model: nn.Module
    source: str
    note: str = ""


def load(name: str, *, device=None, retrain: Optional[bool] = None, folder: Optional[pathlib.Path] = None,
         progress: bool = True) -> Loaded:
    """The trained model of recipe ``name``, on ``device`` (default: :func:`tutorial_pkg.default_device`).

    Loads the shipped weights, on any device, after the SHA-256 check of :func:`verify` and with
    ``weights_only=True``. ``retrain=True``, or ``retrain=None`` with ``TUTORIAL_PKG_RETRAIN=1`` in the
    environment, runs the recipe instead (minutes on a CPU, and its numbers differ from the book's).
    """
    recipe = _recipe(name)
    if retrain is None:
        retrain = os.environ.get(RETRAIN_ENV) == "1"
    elif not isinstance(retrain, bool):
        raise TypeError(f"retrain must be True, False or None, got {type(retrain).__name__} {retrain!r}")
    device = default_device() if device is None else torch.device(device)
    model = recipe.make_model().to(device)
    if retrain:
        why = "retrain=True" if os.environ.get(RETRAIN_ENV) != "1" else f"{RETRAIN_ENV}=1"
        model = recipe.train(model, recipe.steps, progress)
        return Loaded(model.eval(), "retrained",
                      f"{name}: retrained now ({recipe.steps} steps, {why}) on {device.type}")
    path = verify(name, folder=folder)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a file that passes the hash but does not unpickle as tensors
        raise ValueError(f"could not load {path.name} with weights_only=True: {err}") from err
    model.load_state_dict(state)
    return Loaded(model.eval(), "shipped", f"{name}: shipped weights (SHA-256 checked) on {device.type}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tutorial_pkg.zoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the recipes")
    b = sub.add_parser("build", help="train a recipe and save its weights with their SHA-256")
    b.add_argument("name", choices=sorted(RECIPES))
    b.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    b.add_argument("--out", type=pathlib.Path, default=None, help="output folder (default: the package's weights)")
    sub.add_parser("verify", help="check every shipped file against its SHA-256")
    args = parser.parse_args(argv)
    if args.command == "list":
        for r in RECIPES.values():
            print(f"{r.name:24s} {r.steps:6d} steps  {r.description}")
    elif args.command == "build":
        path = build(args.name, steps=args.steps, out=args.out)
        print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB, sha256 {sha256(path)}")
    else:
        for name in RECIPES:
            path = verify(name)
            print(f"{path.name}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
