"""Real data that ships with its libraries, so every chapter runs offline.

``load_digits_split`` gives the 8x8 handwritten digits of scikit-learn (1797 images, bundled with the
library: no download), scaled to [-1, 1] and split once, by a fixed seed, into a part for the generative
models and a held-out part for the independent classifier that scores them (chapter 7).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from . import _checks

Tensor = torch.Tensor

__all__ = ["DigitsSplit", "load_digits_split"]


class DigitsSplit(NamedTuple):
    """Digits as float32 vectors ``(N, 64)`` in [-1, 1] with long labels ``(N,)``.

    ``x_train, y_train`` train the generator and its guidance classifier; ``x_heldout, y_heldout`` are
    for the independent classifier that measures fidelity, never for the generator.
    """

    x_train: Tensor
    y_train: Tensor
    x_heldout: Tensor
    y_heldout: Tensor


def load_digits_split(heldout_fraction: float = 1 / 3, seed: int = 0) -> DigitsSplit:
    """scikit-learn's ``load_digits`` (pixel values 0..16) scaled to [-1, 1] and split by ``seed``."""
    heldout_fraction = _checks.real("heldout_fraction", heldout_fraction, low=0.0, high=1.0,
                                    low_open=True, high_open=True)
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 8.0 - 1.0
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_heldout = int(round(heldout_fraction * len(x)))
    held, train = perm[:n_heldout], perm[n_heldout:]
    return DigitsSplit(x[train], y[train], x[held], y[held])
