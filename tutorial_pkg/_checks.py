"""Argument checks shared by the public functions: one place for every error message.

Each check names the argument, the value it got and what was expected, so that a student who
passes a wrong shape, device or scale learns which argument to fix.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Iterable

import torch

Tensor = torch.Tensor


def tensor(name: str, value, *, ndim: int | Iterable[int] | None = None, finite: bool = True,
           floating: bool | None = None) -> Tensor:
    """Check that ``value`` is a tensor of the expected rank, dtype kind and finiteness."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimension(s), got shape {tuple(value.shape)}")
    if floating is True and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    # a meta tensor has a shape, a dtype and a device but no values: nothing to check here, and the
    # device check that follows reports a meta tensor passed next to a real one
    if finite and value.is_floating_point() and value.device.type != "meta" and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return value


def same_tensor_kind(name: str, value: Tensor, ref_name: str, ref: Tensor, *, shape: bool = True,
                     dtype: bool = True) -> None:
    """Check that ``value`` matches ``ref`` in device, and optionally in shape and dtype."""
    if value.device != ref.device:
        raise ValueError(f"{name} is on device {value.device}, but {ref_name} is on {ref.device}")
    if dtype and value.dtype != ref.dtype:
        raise ValueError(f"{name} has dtype {value.dtype}, but {ref_name} has dtype {ref.dtype}")
    if shape and value.shape != ref.shape:
        raise ValueError(f"{name} has shape {tuple(value.shape)}, but {ref_name} has shape {tuple(ref.shape)}")


def real(name: str, value, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """Check a finite real number (a Python number or a 0-d tensor) inside an interval."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def integer(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """Check an integer inside the closed interval [low, high]."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def choice(name: str, value, allowed: Iterable[str]) -> str:
    """Check a string switch against its allowed values."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def scale(name: str, value, *, low: float = 0.0) -> float | Tensor:
    """Check a guidance scale: a finite number >= ``low``, or a tensor of such numbers."""
    if isinstance(value, Tensor) and value.numel() != 1:
        tensor(name, value, floating=True)
        if bool((value < low).any()):
            raise ValueError(f"{name} must be >= {low} everywhere, got min {value.min().item():.4g}")
        return value
    return real(name, value, low=low)


def batch(name: str, value, batch_size: int) -> None:
    """Check that a per-sample tensor has the batch size of x_t in its first dimension."""
    if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] != batch_size:
        raise ValueError(f"{name} has batch size {value.shape[0]}, but x_t has batch size {batch_size}")


def per_sample(name: str, value, like: Tensor, *, dtype: torch.dtype | None = None, scale: bool = True):
    """A number, or a tensor of one value per sample, made to broadcast against ``like`` ``(B, ...)``.

    This is the one place where "a number or a ``(B,)`` tensor" is coerced. A number stays a Python float
    (it broadcasts for free). A 0-d or ``(B,)`` tensor is reshaped to ``(B, 1, ..., 1)`` and cast while it
    moves to ``like``'s device, in ``dtype`` (default: ``like``'s); any other tensor must broadcast to
    ``like``'s shape. For a ``scale``, a 1-D tensor that does not hold one value per sample is refused: a
    ``(D,)`` scale would silently weight the coordinates (``scale=False`` lets a variance be per coordinate).
    Only metadata is checked, so this runs at every step without a sync.
    """
    if not isinstance(value, Tensor):
        return value
    dtype = like.dtype if dtype is None else dtype
    batch_size = like.shape[0] if like.ndim else 1
    if scale and value.ndim == 1 and value.shape[0] not in (1, batch_size):
        raise ValueError(f"{name} must be a number or a ({batch_size},) tensor, one value per sample, "
                         f"got shape {tuple(value.shape)}")
    if value.ndim == 1 and value.shape[0] == batch_size and like.ndim > 1:
        value = value.reshape(-1, *([1] * (like.ndim - 1)))
    try:
        fits = torch.broadcast_shapes(value.shape, like.shape) == like.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"{name} has shape {tuple(value.shape)}, which does not broadcast to {tuple(like.shape)}")
    return value.to(device=like.device, dtype=dtype)


def generator(name: str, value, device) -> None:
    """Check a random generator: ``None`` or a ``torch.Generator`` on the device the numbers go to.

    A seed passed where a generator belongs (``generator=123``) is refused with the line that makes one."""
    if value is None:
        return
    if not isinstance(value, torch.Generator):
        hint = (f"; make one with torch.Generator().manual_seed({value})" if isinstance(value, int)
                and not isinstance(value, bool) else "")
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(value).__name__} {value!r}{hint}")
    if torch.device(device).type != value.device.type:
        raise ValueError(f"{name} is on device {value.device}, but the numbers it draws go to {device}")


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype guidance arithmetic runs in: at least float32, also for half-precision inputs."""
    return torch.promote_types(x.dtype, torch.float32)

