"""Wall-clock timing for the benchmarks: warm-up, repeats, medians, and ratios measured in one run.

Every comparison is *interleaved*: repeat ``r`` times "time A, time B", and take the median of the ``r``
ratios B / A. Load that comes and goes on the machine then hits both sides of a ratio alike, which a
median of A's times divided by a median of B's times, measured minutes apart, would not ensure.

Each ratio also gets a 95 % confidence interval: the t-interval (``tutorial_pkg.stats``, n - 1 degrees of
freedom) of the mean of the per-repeat log-ratios, exponentiated. A verdict against a target is given only
where that interval lies on one side of it; ``interleaved`` adds repeats (up to ``max_repeats``) while an
interval still straddles its target, and a ratio whose interval still straddles it is "not resolved".
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch


def seconds(fn: Callable[[], object], number: int = 1) -> float:
    """Seconds per call of ``fn``, averaged over ``number`` back-to-back calls (one measurement)."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def calls_for(fn: Callable[[], object], budget_s: float, *, cap: int = 1000) -> int:
    """How many back-to-back calls of ``fn`` fill about ``budget_s`` seconds (after one warm-up call)."""
    fn()
    one = max(seconds(fn), 1e-7)
    return int(min(cap, max(1, budget_s / one)))


@dataclass
class Measurement:
    """Times (seconds, medians over repeats) and ratios (medians of per-repeat ratios, with quartiles)."""

    times: dict = field(default_factory=dict)
    ratios: dict = field(default_factory=dict)      # name -> (median, q25, q75)
    least: dict = field(default_factory=dict)       # name -> the least time over the repeats
    least_ratios: dict = field(default_factory=dict)  # name -> the ratio of the least times
    intervals: dict = field(default_factory=dict)     # name -> (geometric mean, 95 % low, 95 % high)
    repeats: int = 0


def log_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(geometric mean, low, high): the t-interval of the mean log-ratio over the repeats, exponentiated."""
    from tutorial_pkg import stats

    logs = [math.log(v) for v in values]
    if len(logs) < 2:
        return values[0], float("nan"), float("nan")
    e = stats.replicates(logs, level=level)
    return math.exp(e.mean), math.exp(e.low), math.exp(e.high)


def straddles(interval: tuple[float, float, float], target: Optional[float]) -> bool:
    """Whether an interval leaves unresolved which side of ``target`` the ratio lies on."""
    if target is None:
        return False
    _, low, high = interval
    return not (high <= target or low > target)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(median, 25th percentile, 75th percentile) of a short list of repeats."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q25, q50, q75 = statistics.quantiles(values, n=4, method="inclusive")
    return q50, q25, q75


def interleaved(parts: dict[str, tuple[Callable[[], object], int]], ratios: dict[str, Callable[[dict], float]],
                *, repeats: int, warmup: int = 1, targets: Optional[dict[str, float]] = None,
                max_repeats: Optional[int] = None) -> Measurement:
    """Time every part once per repeat, in turn, and form the named ratios from each repeat's times.

    ``parts`` maps a name to ``(fn, number)``: ``fn`` is called ``number`` times back to back per
    repeat and its time per call recorded. ``ratios`` maps a name to a function of one repeat's times.
    ``targets`` maps a ratio's name to its target: while the 95 % interval of such a ratio straddles its
    target, repeats are added, up to ``max_repeats`` (default ``3 * repeats``).
    """
    for fn, _ in parts.values():
        for _ in range(warmup):
            fn()
    per_repeat: list[dict] = []
    limit = max(repeats, max_repeats if max_repeats is not None else 3 * repeats)
    while True:
        per_repeat.append({name: seconds(fn, number) for name, (fn, number) in parts.items()})
        if len(per_repeat) < repeats:
            continue
        if len(per_repeat) >= limit or not targets:
            break
        if not any(straddles(log_interval([ratios[k](r) for r in per_repeat]), v) for k, v in targets.items()):
            break
    out = Measurement(repeats=len(per_repeat))
    for name in parts:
        out.times[name] = statistics.median(r[name] for r in per_repeat)
        out.least[name] = min(r[name] for r in per_repeat)
    for name, ratio in ratios.items():
        out.ratios[name] = quartiles([ratio(r) for r in per_repeat])
        out.least_ratios[name] = ratio(out.least)
        out.intervals[name] = log_interval([ratio(r) for r in per_repeat])
    return out


def verdict(interval: tuple[float, float, float], target: Optional[float], floor: Optional[float] = None) -> str:
    """PASS when the ratio's 95 % interval lies at or below the target, MISS when it lies above it, and
    'not resolved' when it straddles the target.

    ``floor`` is the physical lower bound of the ratio (1.0 for a loop that cannot cost less than the network
    it calls). An interval wholly below it is not a better result but measurement noise: the verdict is 'NOISE',
    and the comparison says nothing until it is measured again on a quieter machine.
    """
    if target is None:
        return "info"
    _, low, high = interval
    if floor is not None and high < floor:
        return "NOISE"
    if high <= target:
        return "PASS"
    if low > target:
        return "MISS"
    return "not resolved"


def fmt_time(s: float) -> str:
    """A time in the unit that reads best: s, ms or µs."""
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def set_threads(n: int) -> int:
    """Fix torch's intra-op threads (and inter-op threads, once per process); return what torch now uses."""
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # may be set only before the first parallel work
        pass
    return torch.get_num_threads()
