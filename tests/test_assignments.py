"""One source per assignment: the student notebooks are made from the instructor's, and nothing of the
solutions reaches the student notebook, the book or the wheel.

The instructor's notebooks (``instructor/solutions/``) are the only hand-written files; ``make assignments``
(``tools/make_assignments.py``) makes ``book/assignments/*.ipynb`` from them. A clone without the instructor's
folder (a public copy of the course) skips the tests that need it.
"""

import importlib.util
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_assignments", ROOT / "tools" / "make_assignments.py")
make_assignments = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_assignments)

SOURCES = sorted((ROOT / "instructor" / "solutions").glob("*.ipynb"))
STUDENT = sorted((ROOT / "book" / "assignments").glob("*.ipynb"))
needs_sources = pytest.mark.skipif(not SOURCES, reason="no instructor/solutions in this copy of the course")


def _text(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@needs_sources
def test_the_committed_student_notebooks_are_what_the_generator_makes(capsys):
    assert make_assignments.main(["--check"]) == 0, capsys.readouterr().out


@needs_sources
def test_every_student_notebook_has_an_instructor_source():
    assert [p.name for p in STUDENT] == [p.name for p in SOURCES]


@needs_sources
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_solution_reaches_the_student_notebook(source):
    instructor = json.loads(source.read_text())
    student = json.loads((ROOT / "book" / "assignments" / source.name).read_text())
    solution = make_assignments.solution_lines(instructor)
    assert solution, f"{source.name} marks no solution"
    everything = "\n".join(_text(c) for c in student["cells"]) + json.dumps([c.get("outputs", []) for c in student["cells"]])
    leaked = [line for line in solution if line in everything]
    assert not leaked, f"{source.name}: solution lines in the student notebook: {leaked[:3]}"
    assert "SOLUTION" not in everything
    assert not any("instructor-only" in c.get("metadata", {}).get("tags", []) for c in student["cells"])
    todos = sum(_text(c).count(make_assignments.TODO) for c in student["cells"])
    stubs = sum(_text(c).count("*Your answer here.*") for c in student["cells"])
    assert todos + stubs > 0


@needs_sources
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_each_check_of_the_instructor_notebook_is_in_the_student_notebook(source):
    calls = lambda nb: sorted(re.findall(r"grading\.check_\w+", "\n".join(
        _text(c) for c in nb["cells"] if "instructor-only" not in c.get("metadata", {}).get("tags", []))))
    student = json.loads((ROOT / "book" / "assignments" / source.name).read_text())
    assert calls(student) == calls(json.loads(source.read_text())) != []


def test_the_solutions_stay_out_of_the_book_and_the_wheel():
    toc = (ROOT / "_toc.yml").read_text()
    config = (ROOT / "_config.yml").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "instructor" not in toc
    assert "only_build_toc_files: true" in config  # so a notebook outside the toc is never built
    assert 'include = ["tutorial_pkg*"]' in pyproject  # the wheel holds the package alone (checked in test-colab)
    for student in STUDENT:
        assert f"book/assignments/{student.stem}" in toc, f"{student.name} is not in the book"


def test_the_generator_replaces_code_markdown_and_drops_instructor_cells(tmp_path):
    def cell(kind, text, tags=()):
        return {"cell_type": kind, "metadata": {"tags": list(tags)}, "source": text,
                **({"outputs": [{"output_type": "stream", "name": "stdout", "text": "42\n"}], "execution_count": 1}
                   if kind == "code" else {})}

    nb = {"cells": [cell("markdown", "Question?\n\n<!-- BEGIN SOLUTION -->\nThe answer.\n<!-- END SOLUTION -->"),
                    cell("code", "def f(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n"),
                    cell("code", "# BEGIN SOLUTION: y = None\ny = f(3)\n# END SOLUTION\nprint(y)"),
                    cell("code", "assert y == 6", tags=["instructor-only"])],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    source = tmp_path / "a9.ipynb"
    source.write_text(json.dumps(nb))
    made = make_assignments.make(source)
    texts = [_text(c) for c in made["cells"]]
    assert texts == ["Question?\n\n*Your answer here.*", f"def f(x):\n    {make_assignments.TODO}", "y = None\nprint(y)"]
    assert all(c.get("outputs", []) == [] for c in made["cells"])


@pytest.mark.parametrize("text, error", [
    ("# BEGIN SOLUTION\nx = 1", "without END SOLUTION"),
    ("x = 1\n# END SOLUTION", "END SOLUTION without BEGIN"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "inside another"),
])
def test_the_generator_refuses_unbalanced_markers(text, error):
    with pytest.raises(ValueError, match=error):
        make_assignments.student_code(text, "a9.ipynb, cell 0")
