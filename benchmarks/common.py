"""What every benchmark shares: the book's networks, the schedule, and the record of one result."""

from __future__ import annotations

from typing import Optional

import torch

from tutorial_pkg import nets
from tutorial_pkg.schedules import linear_schedule

from timing import Measurement, fmt_time, verdict

T = 1000                # the schedule of every chapter: linear, T = 1000
DDIM_STEPS = 50


def schedule():
    return linear_schedule(T)


# name -> keyword arguments of MLPEpsModel: the default of chapters 1-5, and the size of chapter 6
NET_SIZES = {
    "book MLP (hidden 64, depth 2)": {},
    "ch. 6 MLP (hidden 128, depth 3)": {"hidden": 128, "depth": 3},
}


def eps_net(size: str, **kwargs) -> torch.nn.Module:
    """A freshly initialised MLPEpsModel(2) of one of the book's sizes, in eval mode (timing needs no training)."""
    torch.manual_seed(0)
    return nets.MLPEpsModel(2, **NET_SIZES[size], **kwargs).eval()


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def result(part: int, key: str, label: str, m: Measurement, ratio: str, *, target: Optional[float] = None,
           floor: Optional[float] = None, note: str = "", times: Optional[dict] = None) -> dict:
    """One row of the report: a ratio (median and quartiles over repeats, and the 95 % interval of its
    geometric mean), its target (an upper bound) and its physical floor (a lower bound, below which a ratio is
    noise), the verdict from the interval, the number of repeats, and the times."""
    median, q25, q75 = m.ratios[ratio]
    _, low, high = m.intervals[ratio]
    return {"part": part, "key": key, "label": label, "ratio": median, "q25": q25, "q75": q75,
            "low": low, "high": high, "repeats": m.repeats,
            "target": target, "floor": floor, "verdict": verdict(m.intervals[ratio], target, floor),
            "times_s": dict(times if times is not None else m.times), "note": note}


def bound_text(r: dict) -> str:
    """The target column: '≤ 1.05', or '1.44–1.60' with a floor."""
    if r["target"] is None:
        return ""
    return f"{r['floor']:.2f}–{r['target']:.2f}" if r.get("floor") is not None else f"≤ {r['target']:.2f}"


def show(r: dict) -> None:
    """Print one result: ratio with quartiles, target and verdict, then the absolute times."""
    target = f"target {bound_text(r)}  {r['verdict']}" if r["target"] is not None else ""
    print(f"  {r['label']}: ratio {r['ratio']:.3f} (95 % interval {r['low']:.3f}-{r['high']:.3f}, "
          f"{r['repeats']} repeats)  {target}")
    print("      " + ", ".join(f"{k} {fmt_time(v)}" for k, v in r["times_s"].items()))
    if r["note"]:
        print("      " + r["note"])
