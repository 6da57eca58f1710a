"""Wall-clock timing for the benchmarks: warm-up, repeats, medians, and ratios measured in one run.

Every comparison is *interleaved*: repeat ``r`` times "time A, time B", and take the median of the ``r``
ratios B / A. Load that comes and goes on the machine then hits both sides of a ratio alike, which a
median of A's times divided by a median of B's times, measured minutes apart, would not ensure.
"""

from __future__ import annotations

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


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(median, 25th percentile, 75th percentile) of a short list of repeats."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q25, q50, q75 = statistics.quantiles(values, n=4, method="inclusive")
    return q50, q25, q75


def interleaved(parts: dict[str, tuple[Callable[[], object], int]], ratios: dict[str, Callable[[dict], float]],
                *, repeats: int, warmup: int = 1) -> Measurement:
    """Time every part once per repeat, in turn, and form the named ratios from each repeat's times.

    ``parts`` maps a name to ``(fn, number)``: ``fn`` is called ``number`` times back to back per
    repeat and its time per call recorded. ``ratios`` maps a name to a function of one repeat's times.
    """
    for fn, _ in parts.values():
        for _ in range(warmup):
            fn()
    per_repeat: list[dict] = []
    for _ in range(repeats):
        per_repeat.append({name: seconds(fn, number) for name, (fn, number) in parts.items()})
    out = Measurement()
    for name in parts:
        out.times[name] = statistics.median(r[name] for r in per_repeat)
        out.least[name] = min(r[name] for r in per_repeat)
    for name, ratio in ratios.items():
        out.ratios[name] = quartiles([ratio(r) for r in per_repeat])
        out.least_ratios[name] = ratio(out.least)
    return out


def verdict(ratio: tuple[float, float, float], target: Optional[float], floor: Optional[float] = None) -> str:
    """PASS when the median ratio meets the target, 'PASS (noise)' when only its lower quartile does.

    ``floor`` is the physical lower bound of the ratio (1.0 for a loop that cannot cost less than the network
    it calls). A median below it is not a better result but measurement noise: the verdict is 'NOISE', and the
    comparison says nothing until it is measured again on a quieter machine.
    """
    if target is None:
        return "info"
    median, q25, _ = ratio
    if floor is not None and median < floor:
        return "NOISE"
    if median <= target:
        return "PASS"
    return "PASS (noise)" if q25 <= target else "MISS"


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
