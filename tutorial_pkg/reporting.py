"""Numbers as a chapter prints them: rounded to what their uncertainty supports, and never as -0.

A checked cell of the book (``# NBVAL_CHECK_OUTPUT``) must print the same text on any CPU, kernel set and
thread count. A Monte Carlo or training figure carries an uncertainty far larger than the last bits that a
different machine changes, so it is printed to the digit its uncertainty supports and no further; then a
change in the tenth digit cannot change the text. A figure that is exact in float64 is asserted to a
tolerance rather than printed to its last digit. The exact zero that rounding leaves as ``-0.0`` is
printed as ``0``.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Iterable

import numpy as np
import torch

from . import _checks

__all__ = ["significant", "decimals_for", "estimate", "mean_and_se", "fmt"]


def _number(name: str, value) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def significant(value, digits: int = 2) -> float:
    """``value`` rounded to ``digits`` significant digits (``2703.76 -> 2700.0``, ``-0.0 -> 0.0``)."""
    value = _number("value", value)
    digits = _checks.integer("digits", digits, low=1)
    if value == 0 or not math.isfinite(value):
        return value + 0.0
    exponent = math.floor(math.log10(abs(value)))
    return round(value, digits - 1 - exponent) + 0.0


def decimals_for(se) -> int:
    """How many decimals a figure with standard error ``se`` supports: those of the first significant digit
    of ``se``, or of its first two when that digit is 1 (``0.03 -> 2``, ``0.012 -> 3``, ``4.0 -> 0``)."""
    se = _checks.real("se", _number("se", se), low=0.0, low_open=True)
    exponent = math.floor(math.log10(se))
    leading = int(se / 10 ** exponent)
    return max(0, -exponent + (1 if leading == 1 else 0))


def fmt(value, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, printed without a negative zero (``-0.001 -> '0.00'``)."""
    value = _number("value", value)
    decimals = _checks.integer("decimals", decimals, low=0)
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def estimate(value, se, *, min_se: float = 0.0) -> str:
    """``'value ± se'``, both rounded to the decimals that ``se`` supports (:func:`decimals_for`).

    ``min_se`` caps the precision: a standard error below it (or zero) is printed to the decimals of ``min_se``,
    so that a figure whose spread over a few seeds happens to be tiny is not printed to digits that another
    machine changes.
    """
    se = _number("se", se)
    d = decimals_for(max(se, _checks.real("min_se", min_se, low=0.0)))
    return f"{fmt(value, d)} ± {fmt(se, d)}"


def mean_and_se(values: Iterable) -> tuple[float, float]:
    """Mean and standard error of the mean of independent values (seeds, runs): ``(mean, std / sqrt(n))``."""
    v = np.asarray([_number("values", x) for x in values], dtype=np.float64)
    if v.size < 2:
        raise ValueError(f"values must hold at least two numbers to estimate a standard error, got {v.size}")
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))
