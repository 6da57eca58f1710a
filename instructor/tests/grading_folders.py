"""What the grader tests share: a submission made from an assignment's template, and a folder graded into its
gradebook and feedback files, read back."""

import csv
import json
import pathlib

from tutorial_pkg import grader


def submission(template: dict, folder: pathlib.Path, name: str, answers: dict) -> None:
    """``folder/name.ipynb``: the student notebook ``template`` with the answer cells of ``answers`` (cell id ->
    source) filled in."""
    nb = json.loads(json.dumps(template))
    for cell in nb["cells"]:
        if cell.get("id") in answers:
            cell["source"] = answers[cell["id"]]
    (folder / f"{name}.ipynb").write_text(json.dumps(nb))


def grade(folder: pathlib.Path, out: pathlib.Path, seed: int = 2026):
    """Grade ``folder`` into the gradebook ``out`` (hidden inputs of ``seed``); return its rows by submission, the
    feedback texts by submission, and ``points(submission, column)``."""
    grader.grade_folder(folder, out=out, seed=seed, jobs=2)
    with open(out) as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    feedback = {p.stem: p.read_text() for p in out.with_suffix("").glob("*.md")}
    return rows, feedback, lambda name, task: float(column(rows[name], task))


def column(row: dict, task: str):
    """A row's column ``task``: a task's column is named by its assignment, ``A2 CFG combination (2)``."""
    return row[task] if task in row else row[f"{row['assignment'].split('_')[0].upper()} {task}"]
