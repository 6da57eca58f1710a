"""The students' copy of the course (``make student-release DEST=folder``, ``tools/student_release.py``): the
committed tree without ``instructor/``, checked for solution lines in its assignments and in every file outside
the package and the chapters (a test that grades a right answer holds one)."""

import importlib.util
import json
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("student_release", ROOT / "tools" / "student_release.py")
student_release = importlib.util.module_from_spec(spec)
spec.loader.exec_module(student_release)

in_git = pytest.mark.skipif(shutil.which("git") is None or subprocess.run(
    ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0, reason="not a git checkout")


@in_git
def test_the_students_copy_has_no_instructor_folder_and_no_solution(tmp_path):
    dest = tmp_path / "course"
    assert student_release.release(dest) == []
    assert not (dest / "instructor").exists()
    assert (dest / "tutorial_pkg" / "grader.py").exists() and (dest / "Makefile").exists()
    committed = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD", "book/assignments"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.split()
    assert committed and all((dest / name).exists() for name in committed)


@in_git
def test_a_solution_line_in_a_students_notebook_is_found(tmp_path):
    solutions = student_release._solution_lines("HEAD")
    if not solutions:
        pytest.skip("no instructor/ in this copy of the course")
    source, lines = next((s, l) for s, l in solutions.items() if l)
    dest = tmp_path / "course"
    student = dest / "book" / "assignments" / pathlib.PurePath(source).name
    student.parent.mkdir(parents=True)
    nb = {"cells": [{"cell_type": "code", "source": ["def f():\n", f"    {lines[0]}\n"]}]}
    student.write_text(json.dumps(nb))
    found = student_release.leaks(dest, {source: lines})
    assert len(found) == 1 and lines[0] in found[0]
    (dest / "instructor").mkdir()
    assert any("instructor/ is in the copy" in f for f in student_release.leaks(dest, {source: lines}))


@in_git
def test_solution_lines_in_a_test_file_are_found_but_not_in_the_package(tmp_path):
    solutions = student_release._solution_lines("HEAD")
    if not solutions:
        pytest.skip("no instructor/ in this copy of the course")
    source = next(s for s, l in solutions.items() if len([x for x in l if len(x) >= 30]) >= 3)
    long = [line for line in solutions[source] if len(line) >= 30][:3]
    dest = tmp_path / "course"
    student = dest / "book" / "assignments" / pathlib.PurePath(source).name
    student.parent.mkdir(parents=True)
    student.write_text(json.dumps({"cells": []}))
    answer = "ANSWER = (\n" + "\n".join(long) + "\n)\n"
    for folder in ("tests", "tutorial_pkg"):
        (dest / folder).mkdir()
        (dest / folder / "test_answers.py").write_text(answer)
    found = student_release.leaks(dest, {source: solutions[source]})
    assert len(found) == 1 and found[0].startswith("tests/test_answers.py holds 3 line(s)"), found
    (dest / "tests" / "test_answers.py").write_text("\n".join(long[:2]))  # two shared lines are no answer
    assert student_release.leaks(dest, {source: solutions[source]}) == []


def test_the_copy_goes_to_a_new_or_empty_folder(tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(ValueError, match="dest must be a new or empty folder"):
        student_release.release(tmp_path)
