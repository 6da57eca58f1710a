"""Make the student notebooks of the assignments from the instructor's, the only hand-written source.

Usage: python tools/make_assignments.py [--check]   (make assignments)

Every ``instructor/solutions/NAME.ipynb`` becomes ``book/assignments/NAME.ipynb``:

* in a code cell, the lines from ``# BEGIN SOLUTION`` to ``# END SOLUTION`` are replaced, at the marker's
  indentation, by ``raise NotImplementedError  # TODO: your code here``, or by the code that the marker
  names after a colon (``# BEGIN SOLUTION: samples, report, seed = None, None, None``), so that a cell
  that is not a function still runs with its TODO open;
* in a markdown cell, the text between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` becomes
  ``*Your answer here.*``;
* a cell tagged ``instructor-only`` (cell metadata ``tags``) is left out;
* outputs are cleared; ``make execute`` then runs the student notebook and stores what a student sees first.

The markers follow otter-grader's (``# BEGIN SOLUTION`` / ``# END SOLUTION``), but the tool is not otter
assign: otter's student notebooks call ``otter.Notebook`` at run time, so every student, on Colab too, would
install otter-grader and its dependencies (nbconvert[webpdf] among them), and its tests are separate
files; here the checks are ``tutorial_pkg.grading``, which the notebooks already install, and the student
notebook stays one self-contained file that nbval and Jupyter Book run like any chapter.

``--check`` writes nothing and exits 1 if a committed student notebook's cells differ from what would be made
(sources, cell types and tags; outputs are not compared). ``tests/test_assignments.py`` runs the same check.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ROOT / "instructor" / "solutions"
TARGET = ROOT / "book" / "assignments"
BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?::\s*(?P<stub>.+))?\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
MD_SOLUTION = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->", re.S)
TODO = "raise NotImplementedError  # TODO: your code here"


def _lines(cell) -> list[str]:
    source = cell["source"]
    return ("".join(source) if isinstance(source, list) else source).splitlines()


def student_code(text: str, where: str) -> str:
    """A code cell's source with its solution blocks replaced by a TODO (or the marker's stub)."""
    out, inside = [], False
    for number, line in enumerate(text.splitlines(), 1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ValueError(f"{where}, line {number}: a BEGIN SOLUTION inside another")
            inside = True
            out.append(begin["indent"] + (begin["stub"].strip() if begin["stub"] else TODO))
        elif END.match(line):
            if not inside:
                raise ValueError(f"{where}, line {number}: END SOLUTION without BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return "\n".join(out)


def student_markdown(text: str) -> str:
    return MD_SOLUTION.sub("*Your answer here.*", text)


def make(source: pathlib.Path) -> dict:
    """The student notebook of one instructor notebook, with empty outputs."""
    nb = json.loads(source.read_text())
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if "instructor-only" in cell.get("metadata", {}).get("tags", []):
            continue
        cell = copy.deepcopy(cell)
        text = "\n".join(_lines(cell))
        if cell["cell_type"] == "code":
            text = student_code(text, f"{source.name}, cell {index}")
            cell["outputs"], cell["execution_count"] = [], None
        elif cell["cell_type"] == "markdown":
            text = student_markdown(text)
        cell["source"] = [line + "\n" for line in text.split("\n")]
        cell["source"][-1] = cell["source"][-1].rstrip("\n")
        cells.append(cell)
    return {**nb, "cells": cells}


def solution_lines(nb: dict) -> list[str]:
    """The lines of an instructor notebook's solutions (code blocks and markdown answers) that the student's
    version does not also show (the prompt may give a call that the solution then makes), found here without
    :func:`make`'s help; lines shorter than 13 characters are too common to tell. ``tests/test_assignments.py`` and
    ``tools/student_release.py`` look for them in the notebooks a student may read."""
    inside_lines, outside_lines = set(), set()
    for cell in nb["cells"]:
        text = "\n".join(_lines(cell))
        if "instructor-only" in cell.get("metadata", {}).get("tags", []):
            continue
        text = re.sub(r"<!-- BEGIN SOLUTION -->(.*?)<!-- END SOLUTION -->",
                      lambda m: inside_lines.update(line.strip() for line in m[1].splitlines()) or "", text, flags=re.S)
        inside = False
        for line in text.splitlines():
            if BEGIN.match(line) or END.match(line):
                inside = bool(BEGIN.match(line))
            else:
                (inside_lines if inside else outside_lines).add(line.strip())
    return sorted(line for line in inside_lines - outside_lines if len(line) > 12)


def comparable(nb: dict) -> list:
    """What must agree between a generated and a committed student notebook: each cell's type, source and tags."""
    return [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"],
             tuple(c.get("metadata", {}).get("tags", []))) for c in nb["cells"]]


def sources() -> list[pathlib.Path]:
    return sorted(SOURCES.glob("*.ipynb"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed notebooks, write nothing")
    args = parser.parse_args(argv)
    if not sources():
        print(f"no instructor notebook in {SOURCES.relative_to(ROOT)}: nothing to make")
        return 0
    stale = []
    for source in sources():
        target = TARGET / source.name
        made = make(source)
        if args.check:
            if not target.exists() or comparable(json.loads(target.read_text())) != comparable(made):
                stale.append(target.relative_to(ROOT))
            continue
        if target.exists() and comparable(json.loads(target.read_text())) == comparable(made):
            print(f"{target.relative_to(ROOT)}: unchanged")
            continue
        target.write_text(json.dumps(made, indent=1, ensure_ascii=False) + "\n")
        print(f"{target.relative_to(ROOT)}: made from {source.relative_to(ROOT)} (run make execute to store its outputs)")
    if stale:
        print("out of date, run `make assignments` and `make execute`: " + ", ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
