"""Execute notebooks in place, store their outputs, and print each one's wall time.

Usage: python tools/execute_notebooks.py book [more paths ...]

Authors run this (``make execute``) after changing a chapter; the book is built from the stored
outputs and CI checks them with nbval.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient


def notebooks(paths):
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        else:
            yield p


def main(paths) -> int:
    # one thread per kernel, as under `make test` (two notebooks at once on two cores): the same
    # thread count gives the same floating-point sums, so the stored outputs are those nbval recomputes
    os.environ["OMP_NUM_THREADS"] = "1"
    for path in notebooks(paths):
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        elapsed = time.perf_counter() - start
        nbformat.write(nb, path)
        print(f"{path}: {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["book"]))
