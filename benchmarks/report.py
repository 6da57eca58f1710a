"""The run's record: ``results/cpu.json``, the plot ``results/cpu.png``, and the book's table and figure.

The book page ``book/costs.md`` includes ``book/_generated/costs_table.md`` and shows
``book/_generated/costs.png``; both are written here from the results of one run, never by hand.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import shutil
from datetime import datetime, timezone

import torch

from common import bound_text
from timing import fmt_time

PARTS = {1: "Sampler overhead", 2: "Classifier-free guidance", 3: "Classifier guidance",
         4: "tutorial_pkg against diffusers"}


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int) -> dict:
    """What the numbers depend on: the CPU, the core count, the software, the threads, the load."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "system": f"{platform.system()} {platform.machine()}",
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": threads,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load_average_1min": load}


def describe(m: dict) -> str:
    load = f", load average {m['load_average_1min']:.1f} at the start" if m["load_average_1min"] is not None else ""
    return (f"{m['cpu']} ({m['cpu_count']} logical CPUs, {m['system']}), Python {m['python']}, "
            f"torch {m['torch']} with {m['torch_threads']} thread(s){load}")


def write_json(path: pathlib.Path, info: dict, results: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**info, "results": results}, indent=2, ensure_ascii=False) + "\n")


SHORT = {"book MLP (hidden 64, depth 2)": "MLP 64x2", "ch. 6 MLP (hidden 128, depth 3)": "MLP 128x3",
         "ch. 6 trained MLP": "trained MLP 128x3", "tutorial_pkg / diffusers": "package / diffusers",
         "NoiseAwareClassifier ": "classifier ", "NoiseAwareRegressor ": "regressor "}


def short(label: str) -> str:
    """The label of a result without its batch and with the nets' sizes abbreviated, for the plot."""
    label = label.rsplit(", batch", 1)[0]
    for long, brief in SHORT.items():
        label = label.replace(long, brief)
    return label


def plot(path: pathlib.Path, results: list[dict], title: str) -> None:
    """Each ratio as a bar with its quartiles; its target as a black tick; green meets it, red misses it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results[::-1]
    colours = {"PASS": "tab:green", "PASS (noise)": "tab:olive", "MISS": "tab:red", "NOISE": "tab:orange",
               "info": "tab:gray"}
    fig, ax = plt.subplots(figsize=(9, 0.36 * len(rows) + 1.6))
    y = range(len(rows))
    ax.barh(y, [r["ratio"] for r in rows], color=[colours[r["verdict"]] for r in rows], alpha=0.8,
            xerr=[[r["ratio"] - r["q25"] for r in rows], [r["q75"] - r["ratio"] for r in rows]], capsize=2)
    for i, r in enumerate(rows):
        if r["target"] is not None:
            ax.plot([r["target"]] * 2, [i - 0.42, i + 0.42], color="black", lw=2)
        if r.get("floor") is not None:
            ax.plot([r["floor"]] * 2, [i - 0.42, i + 0.42], color="black", lw=1, ls="--")
    ax.axvline(1.0, color="black", lw=0.6, ls=":")
    ax.set_yticks(list(y), [f"{r['part']}. {short(r['label'])}" for r in rows], fontsize=8)
    ax.set_xlabel("ratio: median of the repeats, error bars the quartiles\n"
                  "black tick: the target, which the ratio should not exceed; dashed: the physical floor", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(path: pathlib.Path, info: dict, results: list[dict]) -> None:
    """A MyST table of every ratio, headed by the date, the machine and the command that made it."""
    lines = [f"Measured {info['date']} with `{info['command']}` on {describe(info['machine'])}.", "",
             "| | Measurement | Ratio (quartiles) | Target | Result | Times (median) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        target = bound_text(r)
        times = "; ".join(f"{k} {fmt_time(v)}" for k, v in r["times_s"].items())
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['part']} | {_cell(r['label'] + note)} | {r['ratio']:.2f} ({r['q25']:.2f}–{r['q75']:.2f}) "
                     f"| {target} | {r['verdict']} | {_cell(times)} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _verdicts(rows: list[dict]) -> str:
    counts = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return ", ".join(f"{n} {v}" for v, n in counts.items())


def reading(results: list[dict]) -> str:
    """What the table says, written from the results themselves, so that the page's conclusions follow its table:
    which targets were met and which missed, and why a miss or a ratio below its floor happened."""
    lines = []
    part1 = [r for r in results if r["part"] == 1]
    if part1:
        loop = [float(r["note"].rsplit("= ", 1)[1]) for r in part1 if "predicts" in r["note"]]
        below = [r for r in part1 if r["verdict"] == "NOISE"]
        predicted = (f", while the loop alone, timed with a model that returns a stored eps, predicts {min(loop):.3f} "
                     f"to {max(loop):.3f}" if loop else "")
        lines.append(f"* **Sampler overhead** ({_verdicts(part1)}): the measured ratios run from "
                     f"{min(r['ratio'] for r in part1):.2f} to {max(r['ratio'] for r in part1):.2f}{predicted}. "
                     + (f"{len(below)} ratio(s) lie below the physical floor of 1.0, which a loop cannot beat: that is "
                        "the noise of a shared machine, not a better loop. " if below else "")
                     + "Where a direct ratio and the loop's prediction disagree by more than the target's margin, the "
                     "machine's noise dominates the direct ratio; the loop alone is the steadier measurement.")
    cfg = [r for r in results if r["key"].startswith("cfg/sampler")]
    scaling = {r["key"].split("/", 2)[2]: r["ratio"] for r in results if r["key"].startswith("cfg/scaling")}
    for r in cfg:
        size = r["key"].split("/", 2)[2]
        lines.append(f"* **CFG over conditional sampling, {size}**: {r['ratio']:.2f} ({r['verdict']}). One forward "
                     f"pass at 2B rows costs {scaling.get(size, float('nan')):.2f} times one at B here; CFG cannot cost "
                     "less than that, so the target of 1.6 can only be met by a network that is closer to latency-bound "
                     "(" + ("met" if r["verdict"].startswith("PASS") else "missed: this network is compute-bound at this batch")
                     + ").")
    for r in results:
        if r["key"] == "cfg/interval":
            lines.append(f"* **CFG in a guidance interval**: {r['ratio']:.2f} ({r['verdict']}) for a band of "
                         f"{r['floor']:.2f}-{r['target']:.2f}: a step outside the interval costs one conditional step.")
    part3 = [r for r in results if r["part"] == 3 and "guided" in r["label"]]
    for r in part3:
        expected = r["note"].rsplit(": ", 1)[-1].rstrip(")")
        lines.append(f"* **Classifier guidance, {r['key'].rsplit('/', 1)[-1]}**: {r['ratio']:.2f} times the unguided run, "
                     f"against {expected} expected from the parts: the predictor's backward pass is the price.")
    part4 = [r for r in results if r["part"] == 4]
    if part4:
        lines.append(f"* **Against diffusers** ({_verdicts(part4)}): ratios from {min(r['ratio'] for r in part4):.2f} to "
                     f"{max(r['ratio'] for r in part4):.2f}, the package's loops being the faster ones here.")
    return "\n".join(lines) + "\n"


def write_all(results: list[dict], info: dict, *, out_dir: pathlib.Path, book_dir: pathlib.Path | None) -> None:
    write_json(out_dir / "cpu.json", info, results)
    plot(out_dir / "cpu.png", results, f"CPU, {info['date']}, torch {info['machine']['torch']}, "
                                       f"{info['machine']['torch_threads']} thread(s)")
    if book_dir is not None:
        table(book_dir / "costs_table.md", info, results)
        (book_dir / "costs_reading.md").write_text(reading(results))
        book_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out_dir / "cpu.png", book_dir / "costs.png")
