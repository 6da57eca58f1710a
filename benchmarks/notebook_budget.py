"""Notebook budget: each notebook's execution time under ``make test-notebooks``' settings, against targets.

Runs ``pytest --nbval-lax --nbval-current-env -n 2 --dist loadscope book/ --durations=0`` with
``OMP_NUM_THREADS=1`` (as the Makefile does), or reads the log of such a run (``--log``), and sums the
durations pytest reports for each notebook's cells (setup, call and teardown; the first cell's setup
starts the kernel). Targets: each notebook <= 90 s, the whole run <= 6 minutes. Prints, never fails on
time; ``make bench-notebooks``. Writes ``benchmarks/results/notebooks.json`` and the log beside it.

    python benchmarks/notebook_budget.py [PATH ...] [--log FILE] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time
from collections import defaultdict

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOK_TARGET_S = 90.0
RUN_TARGET_S = 6 * 60.0

# "12.34s call     book/01_score_based_diffusion.ipynb::Cell 3"
DURATION = re.compile(r"^\s*([0-9.]+)s\s+(setup|call|teardown)\s+(\S+?\.ipynb)::")
# "==== 40 passed in 234.56s (0:03:54) ===="
SUMMARY = re.compile(r"=+ (.*) in ([0-9.]+)s")


def parse(log: str) -> tuple[dict[str, float], dict[str, int], float | None, str | None]:
    """Per-notebook seconds and cell counts from a ``--durations=0`` log, the run's seconds and outcome."""
    seconds: dict[str, float] = defaultdict(float)
    cells: dict[str, set] = defaultdict(set)
    total, outcome = None, None
    for line in log.splitlines():
        m = DURATION.match(line)
        if m:
            seconds[m.group(3)] += float(m.group(1))
            cells[m.group(3)].add(line.split("::", 1)[1].strip())
            continue
        m = SUMMARY.search(line)
        if m:
            outcome, total = m.group(1), float(m.group(2))
    return dict(seconds), {k: len(v) for k, v in cells.items()}, total, outcome


def run_pytest(paths: list[str], workers: int, log_path: pathlib.Path) -> tuple[str, float, int]:
    """Run nbval as ``make test-notebooks`` does, echoing and keeping its output; (log, wall seconds, code)."""
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-n", str(workers),
           "--dist", "loadscope", *paths, "--durations=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print("OMP_NUM_THREADS=1", " ".join(["python", *cmd[1:]]), flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    code = proc.wait()
    wall = time.perf_counter() - start
    log = "".join(lines)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(log)
    return log, wall, code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=["book/"], help="notebook folders (default book/)")
    parser.add_argument("--log", type=pathlib.Path, help="read this saved pytest log instead of running pytest")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (default 2, as make test)")
    args = parser.parse_args(argv)

    code, wall = 0, None
    if args.log is not None:
        log = args.log.read_text()
    else:
        log, wall, code = run_pytest(args.paths, args.workers, HERE / "results" / "notebooks.log")
    seconds, cells, total, outcome = parse(log)
    if not seconds:
        print("no notebook durations found: is this a log of pytest --nbval-lax ... --durations=0?")
        return 1
    run_s = wall if wall is not None else total

    print(f"\nNotebook execution time (sum of its cells' durations), target <= {NOTEBOOK_TARGET_S:.0f} s each")
    width = max(len(k) for k in seconds)
    rows = []
    for nb, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        verdict = "PASS" if s <= NOTEBOOK_TARGET_S else "MISS"
        rows.append({"notebook": nb, "seconds": round(s, 2), "cells": cells[nb], "verdict": verdict})
        print(f"  {nb:<{width}}  {s:7.1f} s  ({cells[nb]:3d} cells)  {verdict}")
    print(f"  {'sum over notebooks':<{width}}  {sum(seconds.values()):7.1f} s  (on {args.workers} workers at once)")
    if run_s is not None:
        verdict = "PASS" if run_s <= RUN_TARGET_S else "MISS"
        print(f"Whole run: {run_s:.1f} s, target <= {RUN_TARGET_S:.0f} s  {verdict}"
              + (f"  (pytest: {outcome})" if outcome else ""))
    else:
        verdict = "unknown"
        print("Whole run: the log holds no pytest summary line")
    out = {"notebooks": rows, "run_seconds": run_s, "run_verdict": verdict, "pytest_outcome": outcome,
           "targets_s": {"notebook": NOTEBOOK_TARGET_S, "run": RUN_TARGET_S}, "workers": args.workers}
    if args.log is None:
        (HERE / "results" / "notebooks.json").write_text(json.dumps(out, indent=2) + "\n")
    if code:
        print(f"pytest exited with {code}: a failing notebook makes these times incomplete")
    return code


if __name__ == "__main__":
    sys.exit(main())
