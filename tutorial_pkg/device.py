"""Pick the device a chapter runs on: CUDA on Colab, Apple's MPS on a Mac, the CPU otherwise."""

from __future__ import annotations

import os

import torch

__all__ = ["default_device"]

_KINDS = ("cpu", "cuda", "mps")


def default_device() -> torch.device:
    """Return ``cuda`` when a GPU is visible, then ``mps``, then ``cpu``.

    Every function of the package creates its tensors on the device of its inputs, so a chapter
    only calls this once, to decide where its networks and data live. The environment variable
    ``TUTORIAL_PKG_DEVICE`` (``cpu``, ``cuda`` or ``mps``) overrides the choice: the grader sets it to ``cpu`` in
    the process that runs a submission, so that its samples repeat on the grader's CPU.
    """
    chosen = os.environ.get("TUTORIAL_PKG_DEVICE", "").strip().lower()
    if chosen:
        if chosen not in _KINDS:
            raise ValueError(f"TUTORIAL_PKG_DEVICE must be one of {', '.join(_KINDS)}, got {chosen!r}")
        return torch.device(chosen)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
