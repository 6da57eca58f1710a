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
         4: "tutorial_pkg against diffusers", 5: "Guidance through x0_hat", 6: "CFG variants",
         7: "Sequential Monte Carlo", 8: "The molecule's force field"}


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
    colours = {"PASS": "tab:green", "not resolved": "tab:olive", "MISS": "tab:red", "NOISE": "tab:orange",
               "info": "tab:gray"}
    fig, ax = plt.subplots(figsize=(9, 0.36 * len(rows) + 1.6))
    y = range(len(rows))
    ax.barh(y, [r["ratio"] for r in rows], color=[colours[r["verdict"]] for r in rows], alpha=0.8,
            xerr=[[max(r["ratio"] - r["low"], 0) for r in rows], [max(r["high"] - r["ratio"], 0) for r in rows]],
            capsize=2)
    for i, r in enumerate(rows):
        if r["target"] is not None:
            ax.plot([r["target"]] * 2, [i - 0.42, i + 0.42], color="black", lw=2)
        if r.get("floor") is not None:
            ax.plot([r["floor"]] * 2, [i - 0.42, i + 0.42], color="black", lw=1, ls="--")
    ax.axvline(1.0, color="black", lw=0.6, ls=":")
    ax.set_yticks(list(y), [f"{r['part']}. {short(r['label'])}" for r in rows], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("ratio (log scale): median of the repeats, error bars the 95 % interval\n"
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
             "| | Measurement | Ratio [95 % interval] (repeats) | Target | Result | Times (median) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        target = bound_text(r)
        times = "; ".join(f"{k} {fmt_time(v)}" for k, v in r["times_s"].items())
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['part']} | {_cell(r['label'] + note)} | {ratio_text(r)} "
                     f"| {target} | {r['verdict']} | {_cell(times)} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def ratio_text(r: dict) -> str:
    """'1.05 [1.01, 1.09] (5)': the median ratio, its 95 % interval and the number of repeats."""
    return f"{r['ratio']:.2f} [{r['low']:.2f}, {r['high']:.2f}] ({r['repeats']})"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _verdicts(rows: list[dict]) -> str:
    counts = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    return ", ".join(f"{n} {v}" for v, n in counts.items())


def _r(r: dict) -> str:
    """A ratio as the reading quotes it: median and 95 % interval, and the verdict where there is a target."""
    verdict = f", {r['verdict']}" if r["verdict"] != "info" else ""
    return f"{r['ratio']:.2f} [{r['low']:.2f}, {r['high']:.2f}]{verdict}"


def _unresolved(rows: list[dict]) -> str:
    n = sum(r["verdict"] == "not resolved" for r in rows)
    return (f" {n} verdict(s) are not resolved: the 95 % interval still straddles the target after the most "
            "repeats the runner allows, so this run does not say on which side the ratio lies." if n else "")


def reading(results: list[dict]) -> str:
    """What the table says, written from the results themselves, so that the page's conclusions follow its table:
    which targets were met, missed or not resolved, and why a miss or a ratio below its floor happened."""
    by_key = {r["key"]: r for r in results}
    lines = []
    part1 = [r for r in results if r["part"] == 1]
    if part1:
        loop = [float(r["note"].rsplit("= ", 1)[1]) for r in part1 if "predicts" in r["note"]]
        below = [r for r in part1 if r["verdict"] == "NOISE"]
        predicted = (f"; the loop alone, timed with a model that returns a stored eps, predicts {min(loop):.3f} "
                     f"to {max(loop):.3f}" if loop else "")
        lines.append(f"* **Sampler overhead** ({_verdicts(part1)}): the ratios run from "
                     f"{min(r['ratio'] for r in part1):.2f} to {max(r['ratio'] for r in part1):.2f}{predicted}. "
                     + (f"{len(below)} interval(s) lie wholly below the physical floor of 1.0, which a loop cannot "
                        "beat: that is the noise of a shared machine, not a better loop. " if below else "")
                     + "Where a direct ratio and the loop's prediction disagree by more than the target's margin, the "
                     "machine's noise dominates the direct ratio; the loop alone is the steadier measurement."
                     + _unresolved(part1))
    for r in results:
        if r["key"].startswith("cfg/sampler/"):
            size = r["key"].split("/", 2)[2]
            lines.append(f"* **CFG over conditional sampling, {size}**: {_r(r)}. Its floor is this network's own "
                         f"pass at 2B rows over its pass at B, {r['floor']:.2f} in the same repeats (CFG evaluates "
                         "both branches in one pass of 2B rows); the target allows 5 % above it, for the guidance "
                         "arithmetic and the concatenation. The verdict is that of the ratio to its floor, repeat by "
                         f"repeat: {r['note'].rsplit('CFG over its floor ', 1)[-1]}.")
        if r["key"] == "cfg/interval":
            why = by_key.get("cfg/interval/scaling")
            full = r["note"].split("r = ", 1)[1].split(" ", 1)[0]
            because = ""
            if why:
                superlinear = why["low"] > 2.0
                because = (f" A CFG step costs r = {full} conditional steps here, and the network's own pass at twice "
                           f"the rows costs {_r(why)} times its pass at the batch, in the same repeats. "
                           + ("That interval lies above 2: a row costs more in the larger pass (its activations "
                              "outgrow the cache that the smaller pass fits), which is what lifts r above the 2.0 of "
                              "a compute-bound network. " if superlinear else
                              "That interval does not lie above 2, so the network's pass does not explain an r above "
                              "2; what remains is the CFG wrapper's own work on 2B rows (concatenating the inputs, "
                              "splitting and combining the branches), which the conditional step does not do. ")
                           + "The interval row's prediction uses the measured r, so it holds either way.")
            lines.append(f"* **CFG in a guidance interval**: {_r(r)} against a band of {r['floor']:.2f}-"
                         f"{r['target']:.2f} predicted from r, measured in the same repeats: a step outside the "
                         f"interval costs one conditional step.{because}")
    part3 = [r for r in results if r["part"] == 3 and "guided" in r["label"]]
    for r in part3:
        expected = r["note"].rsplit(": ", 1)[-1].rstrip(")")
        lines.append(f"* **Classifier guidance, {r['key'].rsplit('/', 1)[-1]}**: {_r(r)} times the unguided run, "
                     f"against {expected} expected from the parts: the predictor's backward pass is the price.")
    part4 = [r for r in results if r["part"] == 4]
    if part4:
        lines.append(f"* **Against diffusers** ({_verdicts(part4)}): ratios from {min(r['ratio'] for r in part4):.2f} to "
                     f"{max(r['ratio'] for r in part4):.2f}." + _unresolved(part4))
    part5 = [r for r in results if r["part"] == 5]
    if part5:
        rows = "; ".join(f"{r['key'].rsplit('/', 1)[-1]} ({r['label'].split(', ')[-2]}) {_r(r)}" for r in part5)
        lines.append(f"* **Guidance through x0_hat** (over unguided sampling): {rows}. Every method adds at least one "
                     "backward pass through the eps-network per step (the passes are counted in each row's note), so "
                     "none costs less than about twice an unguided run; TMPD adds a second vector-Jacobian product, "
                     "MMPS one per observed dimension. The force field's own cost is in part 8.")
    part6 = [r for r in results if r["part"] == 6]
    if part6:
        lines.append("* **CFG variants** (over plain CFG, the same two branches per step): "
                     + "; ".join(f"{r['key'].rsplit('/', 1)[-1]} {_r(r)}" for r in part6)
                     + ". A variant's extra arithmetic is per step and per row, small beside the network; CFG-Zero* "
                       "skips the network at its zeroed first step.")
    part7 = {r["key"]: r for r in results if r["part"] == 7}
    if part7:
        a, b = part7.get("smc/particle"), part7.get("smc/effective")
        lines.append("* **SMC** (chapter 10): "
                     + (f"per particle {_r(a)} times the same guided proposal without weights: the weights reuse the "
                        "two branches that CFG evaluates anyway. " if a else "")
                     + (f"Per effective sample {_r(b)}: {b['note']}; what SMC buys with it is a sample of the tilted "
                        "target, which the plain sampler does not draw (chapter 10)." if b else ""))
    for r in results:
        if r["key"] == "molecule/openmm":
            faster = "Reference" if r["ratio"] > 1 else "CPU"
            lines.append(f"* **The force field** (chapter 11): OpenMM's CPU platform costs {_r(r)} times its Reference "
                         f"platform per molecule, and {r['note']}. For 22 atoms, one frame at a time, the {faster} "
                         f"platform is the faster one here; the package uses "
                         f"{'Reference' if faster == 'Reference' else 'Reference (a switch to CPU is to be measured again)'}.")
    return "\n".join(lines) + "\n"


def write_all(results: list[dict], info: dict, *, out_dir: pathlib.Path, book_dir: pathlib.Path | None) -> None:
    write_json(out_dir / "cpu.json", info, results)
    plot(out_dir / "cpu.png", results, f"CPU, {info['date']}, torch {info['machine']['torch']}, "
                                       f"{info['machine']['torch_threads']} thread(s)")
    if book_dir is not None:
        table(book_dir / "costs_table.md", info, results)
        (book_dir / "costs_reading.md").write_text(f"From the run of {info['date']} (`{info['command']}`):\n\n"
                                                   + reading(results))
        book_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out_dir / "cpu.png", book_dir / "costs.png")
