"""Pick the device a chapter runs on: CUDA on Colab, Apple's MPS on a Mac, the CPU otherwise."""

from __future__ import annotations

import torch

__all__ = ["default_device"]


def default_device() -> torch.device:
    """Return ``cuda`` when a GPU is visible, then ``mps``, then ``cpu``.

    Every function of the package creates its tensors on the device of its inputs, so a chapter
    only calls this once, to decide where its networks and data live.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
