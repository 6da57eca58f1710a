"""The statistics behind every claim of the book: replicates, comparisons, verdicts, correlated series.

The book's evidence standard (the page "How to read the numbers") in code, on :mod:`scipy.stats` and
:mod:`pymbar.timeseries` rather than by hand:

* :func:`replicates`: the mean of independent replicates, its standard error and a confidence interval
  from the t-quantile of its ``n - 1`` degrees of freedom (with 3 replicates the 95 % quantile is 4.30,
  not 1.96);
* :func:`paired`: two methods run on the same noise (the same seeds, the same trained network), compared
  by the differences per replicate; :func:`unpaired`: two methods on independent noise, by Welch's
  interval;
* each comparison carries a **verdict** read from its interval: ``"A lower"``, ``"A higher"`` or
  ``"not resolved at n = ..."``. A chapter asserts and writes what the verdict says;
* :func:`statistical_inefficiency`, :func:`effective_size` and :func:`series_mean` for correlated series
  (MD frames, Markov chains): a mean over ``n`` correlated frames carries the information of ``n / g``
  independent ones, where ``g`` is the statistical inefficiency (``pymbar.timeseries``);
* :func:`share`: the share of a set (a basin, a class) with its interval, from independent draws or a
  correlated series.

Chapter 1 and chapters 3 to 11 use it; the page "How to read the numbers" explains each function on an example.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _st

from . import _checks, reporting

__all__ = ["Estimate", "Comparison", "replicates", "paired", "unpaired", "against", "statistical_inefficiency",
           "effective_size", "series_mean", "share", "t_quantile", "pymbar_module"]


def _values(name: str, values, *, at_least: int = 2) -> np.ndarray:
    """``values`` as a 1-D float64 array of finite numbers (a list, a numpy array or a tensor)."""
    if hasattr(values, "detach"):  # a torch tensor, wherever it lives
        values = values.detach().cpu().double().numpy()
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a sequence of real numbers, got {type(values).__name__}") from err
    if v.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per replicate), got shape {v.shape}")
    if v.size < at_least:
        raise ValueError(f"{name} must hold at least {at_least} values, got {v.size}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return v


@functools.lru_cache(maxsize=None)
def pymbar_module(name: str = "timeseries"):
    """``pymbar.<name>``, imported without the warnings pymbar logs on import (a general caution about
    timescales, and a note that JAX is not installed), which would otherwise fill a chapter's output."""
    import importlib

    _checks.choice("name", name, ("timeseries", "mbar", "mbar_solvers", "utils"))
    log = logging.getLogger("pymbar")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return importlib.import_module(f"pymbar.{name}")
    finally:
        log.setLevel(level)


def _level(level) -> float:
    return _checks.real("level", level, low=0.0, high=1.0, low_open=True, high_open=True)


def t_quantile(dof: float, level: float = 0.95) -> float:
    """The two-sided ``level`` quantile of Student's t with ``dof`` degrees of freedom (4.30 for 2 at 95 %)."""
    dof = _checks.real("dof", dof, low=0.0, low_open=True)
    return float(_st.t.ppf(0.5 + _level(level) / 2, dof))


@dataclass(frozen=True)
class Estimate:
    """A mean with its standard error and a t-interval.

    ``n`` counts the values it was computed from, ``dof`` the degrees of freedom of its interval (``n - 1``
    for independent replicates; ``n_eff - 1`` for a correlated series). ``str()`` prints ``mean ± se``
    rounded to what the standard error supports (:func:`tutorial_pkg.reporting.estimate`), so that a checked
    cell prints the same text on any machine.
    """

    mean: float
    se: float
    n: int
    dof: float
    low: float
    high: float
    level: float = 0.95

    @property
    def half_width(self) -> float:
        """Half the width of the interval: ``t_quantile(dof) * se``."""
        return (self.high - self.low) / 2

    def contains(self, value) -> bool:
        """Whether ``value`` lies inside the interval (an exact answer, say)."""
        value = _checks.real("value", value)
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return reporting.estimate(self.mean, self.se) if self.se > 0 else reporting.fmt(self.mean, 3)

    def interval(self) -> str:
        """The interval as text, ``[low, high]``, to the decimals its standard error supports."""
        d = reporting.decimals_for(self.se) if self.se > 0 else 3
        return f"[{reporting.fmt(self.low, d)}, {reporting.fmt(self.high, d)}]"


def _estimate(mean: float, se: float, n: int, dof: float, level: float) -> Estimate:
    h = t_quantile(dof, level) * se if se > 0 else 0.0
    return Estimate(float(mean), float(se), int(n), float(dof), float(mean - h), float(mean + h), level)


def replicates(values, *, level: float = 0.95) -> Estimate:
    """The mean of independent replicates (seeds, trained networks, particle systems) with its t-interval.

    ``values``: one number per replicate, at least two. The interval is ``mean ± t_{n-1} * s / sqrt(n)``,
    as :func:`scipy.stats.ttest_1samp` computes it. The replicates must be independent *at the level of the
    claim*: three batches drawn from one trained network replicate the sampler, not the training.
    """
    v = _values("values", values)
    level = _level(level)
    se = float(v.std(ddof=1) / math.sqrt(v.size))
    return _estimate(v.mean(), se, v.size, v.size - 1, level)


@dataclass(frozen=True)
class Comparison:
    """``a - b`` as an :class:`Estimate` (``difference``), with the verdict its interval gives.

    ``verdict`` is ``"<a> lower"`` when the whole interval lies below 0, ``"<a> higher"`` when it lies above,
    and ``"not resolved at n = <n>"`` otherwise. ``p_value`` is the two-sided p-value of the same t-test.
    """

    a: str
    b: str
    difference: Estimate
    p_value: float
    paired: bool
    kind: str = ""


    @property
    def resolved(self) -> bool:
        return self.difference.low > 0 or self.difference.high < 0

    @property
    def verdict(self) -> str:
        if self.difference.high < 0:
            return f"{self.a} lower"
        if self.difference.low > 0:
            return f"{self.a} higher"
        return f"not resolved at n = {self.difference.n}"

    def __str__(self) -> str:
        kind = self.kind or ("paired" if self.paired else "unpaired")
        return (f"{self.a} - {self.b} = {self.difference} ({kind}, {round(self.difference.level * 100)} % interval "
                f"{self.difference.interval()}): {self.verdict}")


def _names(names: Sequence[str]) -> tuple[str, str]:
    if isinstance(names, str) or len(names) != 2 or not all(isinstance(n, str) for n in names):
        raise ValueError(f"names must be two strings, the names of a and b, got {names!r}")
    return names[0], names[1]


def paired(a, b, *, names: Sequence[str] = ("A", "B"), level: float = 0.95) -> Comparison:
    """Two methods run on the same noise, compared by their differences per replicate.

    ``a[i]`` and ``b[i]`` must come from the same replicate (the same seed, the same trained network, the
    same reference draw). Noise they share cancels in ``a[i] - b[i]``, so a paired comparison resolves
    differences that an unpaired one, on the same numbers, cannot. The interval is the t-interval of the
    differences (:func:`scipy.stats.ttest_rel`).
    """
    va, vb = _values("a", a), _values("b", b)
    if va.size != vb.size:
        raise ValueError(f"a and b must hold one value per shared replicate, got {va.size} and {vb.size} values")
    level = _level(level)
    diff = replicates(va - vb, level=level)
    p = float(_st.ttest_rel(va, vb).pvalue) if diff.se > 0 else (0.0 if diff.mean != 0 else 1.0)
    return Comparison(*_names(names), diff, p, True)


def unpaired(a, b, *, names: Sequence[str] = ("A", "B"), level: float = 0.95) -> Comparison:
    """Two methods on independent noise, compared by Welch's t-interval of the difference of their means.

    The degrees of freedom are Welch-Satterthwaite's (:func:`scipy.stats.ttest_ind` with ``equal_var=False``);
    ``n`` of the difference is the smaller of the two sample sizes.
    """
    va, vb = _values("a", a), _values("b", b)
    level = _level(level)
    res = _st.ttest_ind(va, vb, equal_var=False)
    va_m, vb_m = va.var(ddof=1) / va.size, vb.var(ddof=1) / vb.size
    se = math.sqrt(va_m + vb_m)
    if se > 0:
        dof = (va_m + vb_m) ** 2 / (va_m ** 2 / (va.size - 1) + vb_m ** 2 / (vb.size - 1))
        p = float(res.pvalue)
    else:
        dof, p = float(min(va.size, vb.size) - 1), (0.0 if va.mean() != vb.mean() else 1.0)
    diff = _estimate(va.mean() - vb.mean(), se, min(va.size, vb.size), dof, level)
    return Comparison(*_names(names), diff, p, False)


def against(values, reference: float, *, reference_se: float = 0.0, names: Sequence[str] = ("A", "reference"),
            level: float = 0.95) -> Comparison:
    """The replicates' mean against a reference value known with its own standard error (a binomial share of a
    large fixed set, a quantile's coverage), by a Welch-type interval of the difference.

    The difference's standard error is ``sqrt(se**2 + reference_se**2)``; its degrees of freedom are
    Welch-Satterthwaite's with the reference's taken as infinite (a binomial standard error of hundreds of items),
    so ``dof = se_diff**4 / (se**4 / (n - 1))``, and ``n - 1`` when ``reference_se`` is 0 (a one-sample t-interval).
    Chapter 7 compares generated digits with the whole training split this way.
    """
    v = _values("values", values)
    if not (isinstance(reference, (int, float)) and math.isfinite(reference)):
        raise ValueError(f"reference must be a finite number, got {reference!r}")
    if not (isinstance(reference_se, (int, float)) and math.isfinite(reference_se) and reference_se >= 0):
        raise ValueError(f"reference_se must be a finite number >= 0, got {reference_se!r}")
    level = _level(level)
    e = replicates(v, level=level)
    se = math.hypot(e.se, reference_se)
    dof = se ** 4 / (e.se ** 4 / e.dof) if e.se > 0 else 1e9  # identical replicates: the reference's normal error
    t = se and (e.mean - reference) / se
    p = float(2 * _st.t.sf(abs(t), dof)) if se > 0 else (0.0 if e.mean != reference else 1.0)
    return Comparison(*_names(names), _estimate(e.mean - reference, se, e.n, dof, level), p, False,
                      "against a reference")

def statistical_inefficiency(series, *, fast: bool = False) -> float:
    """The statistical inefficiency ``g = 1 + 2 sum_k (1 - k/n) rho_k`` of a correlated series.

    ``n`` frames of the series carry about the information of ``n / g`` independent draws. Computed by
    :func:`pymbar.timeseries.statistical_inefficiency` (Chodera et al. 2007), which sums the normalised
    autocorrelation until it first crosses zero; ``g >= 1``. For an AR(1) series with coefficient ``phi``,
    ``g -> (1 + phi) / (1 - phi)``. A constant series has no information about its noise: ``g = 1``.
    """
    x = _values("series", series, at_least=3)
    if np.ptp(x) == 0:
        return 1.0
    return float(pymbar_module("timeseries").statistical_inefficiency(x, fast=fast))


def effective_size(series, *, fast: bool = False) -> float:
    """``n / g``: how many independent draws the correlated ``series`` is worth (:func:`statistical_inefficiency`)."""
    x = _values("series", series, at_least=3)
    return x.size / statistical_inefficiency(x, fast=fast)


def series_mean(series, *, level: float = 0.95, correlated: bool = True) -> Estimate:
    """The mean of a series with its standard error and t-interval, counted by its effective size.

    With ``correlated=True`` (MD frames, chain states) the standard error is ``sd * sqrt(g / n)`` and the
    interval has ``n / g - 1`` degrees of freedom; ``n`` of the result is the number of frames. With
    ``correlated=False`` the values are independent draws and this is :func:`replicates`.
    """
    x = _values("series", series, at_least=3)
    level = _level(level)
    if not correlated:
        return replicates(x, level=level)
    g = statistical_inefficiency(x)
    n_eff = x.size / g
    se = float(x.std(ddof=1) * math.sqrt(g / x.size))
    return _estimate(x.mean(), se, x.size, max(n_eff - 1, 1.0), level)


def share(indicator, *, level: float = 0.95, correlated: bool = False) -> Estimate:
    """The share of frames or samples in a set (``indicator``: booleans or 0/1, one per frame).

    Independent draws (``correlated=False``) get the Wilson score interval, which stays inside [0, 1] and
    does not collapse to a point for a share of 0 or 1 (:meth:`scipy.stats.binomtest`'s
    ``proportion_ci``). A correlated series (``correlated=True``) counts by its effective size ``n / g``:
    the Wilson interval of ``n_eff`` draws with the same share. ``se`` is ``sqrt(p (1 - p) / n_eff)``.
    """
    x = _values("indicator", indicator, at_least=3)
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError("indicator must hold only booleans or 0/1 values, one per frame")
    level = _level(level)
    p = float(x.mean())
    if not correlated:
        ci = _st.binomtest(int(x.sum()), x.size).proportion_ci(confidence_level=level, method="wilson")
        return Estimate(p, math.sqrt(p * (1 - p) / x.size), x.size, x.size - 1, float(ci.low), float(ci.high), level)
    n_eff = effective_size(x)
    # Wilson's interval for n_eff draws (binomtest takes whole counts only, so its formula is written out;
    # tests/test_stats.py checks it against binomtest where n_eff is whole)
    z = float(_st.norm.ppf(0.5 + level / 2))
    centre = (p + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z / (1 + z * z / n_eff) * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff))
    se = math.sqrt(p * (1 - p) / n_eff)
    return Estimate(p, se, x.size, max(n_eff - 1, 1.0), max(0.0, centre - half), min(1.0, centre + half), level)
