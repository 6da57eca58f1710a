"""The students' copy of the course: the committed tree without the instructor's folder.

Usage: python tools/student_release.py DEST [--ref REF]   (make student-release DEST=folder)

This repository is the instructors' copy: ``instructor/`` holds the solved notebooks, from which ``make
assignments`` makes the student notebooks, and the rubrics of the written answers, which the grader reads. A
course publishes the students' copy instead (a public repository, or a folder on its site). This script writes it:

1. every file of the commit ``REF`` (default ``HEAD``: what is committed, not what is in the working tree), as
   ``git archive`` gives it, except those under ``instructor/``;
2. then it checks the copy: no ``instructor/`` folder (which also holds the tests that grade right answers), no
   line of a solution (a line between ``# BEGIN SOLUTION`` and ``# END SOLUTION``, or of a written model answer)
   in the student notebook made from it (``book/assignments/``), and no three solution lines of 30 characters or
   more in any other file outside the package and the chapters (tests, tools, benchmarks, pages); it exits 1 and
   names the file otherwise. (The package and the chapters share lines with the solutions by design: a chapter's sampler and
   a student's are written alike.)

The copy builds the book and passes ``make test``: the tests that need the instructor's folder skip, and the
assignments' notebooks run with their TODOs open. The grader (``tutorial_pkg.grader``) ships in both copies, since
students import the package it is part of; its hidden tests are hidden by their inputs, drawn from a seed the
student never sees, not by their code. Its rubrics stay in ``instructor/rubrics/``.
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import subprocess
import sys
import tarfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_assignments  # noqa: E402

PRIVATE = "instructor/"


def _solution_lines(ref: str) -> dict[str, list[str]]:
    """The solution lines of each instructor notebook at ``ref``."""
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref, "--", PRIVATE], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    lines = {}
    for name in names:
        if name.endswith(".ipynb"):
            text = subprocess.run(["git", "show", f"{ref}:{name}"], cwd=ROOT, check=True, capture_output=True,
                                  text=True).stdout
            lines[name] = make_assignments.solution_lines(json.loads(text))
    return lines


# where the copy may share lines with the solutions by design: the package and the chapters (a chapter's sampler and
# a student's are written alike); everywhere else (tests, tools, benchmarks, pages), a solution line is a leak
SHARED = ("tutorial_pkg/", "book/")
SHORTEST = 30  # characters: shorter solution lines (a return, a loop header) are anybody's
FEWEST = 3  # lines: one shared line (a package test's reference, alpha_bar at t) is no answer


def _text(path: pathlib.Path) -> str:
    """A file's text; a notebook's, the sources of its cells."""
    text = path.read_text(errors="replace")
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text).get("cells", [])
        except (json.JSONDecodeError, AttributeError):
            return text
        return "\n".join("".join(c.get("source", "")) for c in cells if isinstance(c, dict))
    return text


def leaks(dest: pathlib.Path, solutions: dict[str, list[str]]) -> list[str]:
    """What of the instructor's folder a student could read in the copy at ``dest``."""
    found = [f"{PRIVATE} is in the copy"] if (dest / PRIVATE).exists() else []
    distinctive = {line for lines in solutions.values() for line in lines
                   if len(line) >= SHORTEST and not line.startswith("#")}
    for path in sorted(p for p in dest.rglob("*") if p.is_file() and p.suffix in (".py", ".ipynb", ".md", ".txt")):
        relative = path.relative_to(dest).as_posix()
        if relative.startswith(SHARED):
            continue
        text_lines = {line.strip() for line in _text(path).splitlines()}
        shown = sorted(distinctive & text_lines)
        if len(shown) >= FEWEST:
            found.append(f"{relative} holds {len(shown)} line(s) of the solutions, e.g. {shown[0]!r}")
    for source, lines in solutions.items():
        path = dest / "book" / "assignments" / pathlib.PurePath(source).name
        if not path.exists():
            found.append(f"the student notebook of {source} is not in the copy")
            continue
        text = "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                         for c in json.loads(path.read_text())["cells"])
        text_lines = {line.strip() for line in text.splitlines()}
        shown = [line for line in lines if line in text_lines]
        if shown:
            found.append(f"{path.relative_to(dest)} shows {len(shown)} line(s) of its solution, e.g. {shown[0]!r}")
    return found


def release(dest, ref: str = "HEAD") -> list[str]:
    """Write the students' copy of commit ``ref`` to ``dest`` (a new or empty folder); return its leaks (none)."""
    dest = pathlib.Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"dest must be a new or empty folder, got {str(dest)!r}, which is not")
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True)
    if archive.returncode:
        raise ValueError(f"ref must name a commit of this repository, got {ref!r} "
                         f"({archive.stderr.decode().strip()})")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        members = [m for m in tar.getmembers() if not (m.name + "/").startswith(PRIVATE)]
        tar.extractall(dest, members=members, filter="data")
    return leaks(dest, _solution_lines(ref))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", help="a new or empty folder")
    parser.add_argument("--ref", default="HEAD", help="the commit to copy (default HEAD)")
    args = parser.parse_args(argv)
    found = release(args.dest, args.ref)
    for line in found:
        print(f"LEAK: {line}")
    if not found:
        print(f"{args.dest}: the students' copy of {args.ref}, without {PRIVATE}; no solution line in its assignments")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
