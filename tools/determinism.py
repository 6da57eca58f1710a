"""Do the notebooks print the same numbers every time? Execute each one several times and compare.

Usage: python tools/determinism.py [--runs N] [book | notebook.ipynb ...]   (make determinism)

Every notebook is executed ``--runs`` times (default 3) with nbclient, one thread per kernel as under
``make test-notebooks``, in memory: the notebook files are not written. For every cell marked
``# NBVAL_CHECK_OUTPUT`` (the cells whose printed output nbval compares), the text output of each run is
compared with the first run and with the output stored in the notebook. Every difference is printed with
the notebook, the cell index and a short diff. The exit code is 1 if any cell differs (or a notebook
fails to execute), 0 otherwise. It takes about ``--runs`` times the notebooks' run time, so it is not part
of ``make test``.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from execute_notebooks import notebooks  # noqa: E402  (the same notebook discovery as `make execute`)

MARK = "# NBVAL_CHECK_OUTPUT"
DIFF_LINES = 12


def text_output(cell) -> str:
    """The text a code cell shows: its streams, plain-text results and errors (images are left out).

    Consecutive pieces of one stream are joined, as a stored notebook holds them (a live kernel may send
    one print in several messages)."""
    parts = []                                   # [label, text]
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            label, text = f"[{out.get('name', 'stdout')}]\n", out.get("text", "")
        elif kind in ("execute_result", "display_data") and "text/plain" in out.get("data", {}):
            label, text = "[result]\n", out["data"]["text/plain"]
        elif kind == "error":
            label, text = "[error]\n", f"{out.get('ename')}: {out.get('evalue')}\n"
        else:
            continue
        text = text if isinstance(text, str) else "".join(text)
        if kind == "stream" and parts and parts[-1][0] == label:
            parts[-1][1] += text
        else:
            parts.append([label, text])
    return "".join(label + text for label, text in parts)


def checked_cells(nb) -> list[int]:
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and MARK in cell.source]


def execute(nb, path: pathlib.Path):
    """A copy of ``nb`` executed in a fresh kernel, from the notebook's folder; ``nb`` itself is untouched."""
    run = copy.deepcopy(nb)
    NotebookClient(run, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return run


def short_diff(a: str, b: str, name_a: str, name_b: str) -> str:
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), name_a, name_b, lineterm="", n=1))
    if len(lines) > DIFF_LINES:
        lines = lines[:DIFF_LINES] + [f"... ({len(lines) - DIFF_LINES} more diff lines)"]
    return "\n".join("    " + line for line in lines)


def check(path: pathlib.Path, runs: int) -> int:
    """Execute one notebook ``runs`` times; print and count the checked cells that differ."""
    nb = nbformat.read(path, as_version=4)
    cells = checked_cells(nb)
    if not cells:
        print(f"{path}: no {MARK} cell, not executed", flush=True)
        return 0
    outputs = []
    for k in range(1, runs + 1):
        start = time.perf_counter()
        try:
            executed = execute(nb, path)
        except CellExecutionError as err:
            print(f"{path}: run {k} failed to execute:\n{str(err)[-2000:]}", flush=True)
            return 1
        outputs.append({i: text_output(executed.cells[i]) for i in cells})
        print(f"{path}: run {k} of {runs}: {time.perf_counter() - start:.1f} s", flush=True)
    differing = 0
    for i in cells:
        stored = text_output(nb.cells[i])
        first = outputs[0][i]
        problems = []
        for k in range(1, runs):
            if outputs[k][i] != first:
                problems.append(short_diff(first, outputs[k][i], "run 1", f"run {k + 1}"))
        if first != stored:
            problems.append(short_diff(stored, first, "stored", "run 1"))
        if problems:
            differing += 1
            print(f"DIFFERS {path} cell {i}:", flush=True)
            print("\n".join(problems), flush=True)
    same = len(cells) - differing
    print(f"{path}: {same} of {len(cells)} checked cells identical in {runs} runs and equal to the stored output",
          flush=True)
    return differing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["book"], help="notebooks or folders (default: book)")
    parser.add_argument("--runs", type=int, default=3, help="executions per notebook (default: 3)")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2 to compare runs")
    # one thread per kernel, as under `make test-notebooks` and `make execute` (kernels inherit it)
    os.environ["OMP_NUM_THREADS"] = "1"
    paths = list(notebooks(args.paths))
    if not paths:
        print("determinism: no notebook found", file=sys.stderr)
        return 1
    differing = sum(check(path, args.runs) for path in paths)
    print(f"determinism: {len(paths)} notebook(s), {differing} differing cell(s) or failed run(s)")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
