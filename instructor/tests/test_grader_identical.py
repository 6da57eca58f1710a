"""What the grader adds beside the written answers: the numbers it computed itself from a value task's re-run values
(none when the task did not pass), and the gradebook's ``identical`` column, which names the answers that are the
same, after whitespace normalisation, as another submission's in the graded folder or as the model answer."""

import json
import pathlib

from tutorial_pkg import grader

import grading_folders  # instructor/tests/grading_folders.py

ROOT = pathlib.Path(__file__).resolve().parents[2]
A3 = "a3_energy_target"
TEMPLATE = json.loads((ROOT / "book" / "assignments" / f"{A3}.ipynb").read_text())
SOLUTION = {c.get("id"): "".join(c["source"]) for c in
            json.loads((ROOT / "instructor" / "solutions" / f"{A3}.ipynb").read_text())["cells"]}


def _model(cell: str) -> str:
    """The instructor's answer in cell ``cell``, as a student who copied it would hand it in."""
    text = SOLUTION[cell].replace("<!-- BEGIN SOLUTION -->", "").replace("<!-- END SOLUTION -->", "")
    return "\n".join(line for line in text.split("\n") if "# BEGIN SOLUTION" not in line and "# END SOLUTION" not in line)


def test_identical_answers_are_flagged_across_the_folder_and_against_the_model_answer(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    shared = "The error falls from gamma = 1 to 3 and rises at 5,\nwhile the distance grows throughout."
    code = _model("a3-16")
    assert len(grader._normalised(code)) - len(grader._normalised("".join(
        next(c for c in TEMPLATE["cells"] if c.get("id") == "a3-16")["source"]))) >= grader._IDENTICAL_CODE
    grading_folders.submission(TEMPLATE, folder, "alice", {"a3-11": shared, "a3-16": code})
    grading_folders.submission(TEMPLATE, folder, "bob", {"a3-11": "  " + shared.replace(" ", "   ").replace("\n", " \n\n"),
                                                         "a3-16": code.replace("    ", "\t")})
    grading_folders.submission(TEMPLATE, folder, "carol", {"a3-11": _model("a3-11")})
    grading_folders.submission(TEMPLATE, folder, "dave", {"a3-11": shared + " Mine differs here."})
    grading_folders.submission(TEMPLATE, folder, "erin", {})  # nothing written: nothing to compare
    rows, feedback, points = grading_folders.grade(folder, tmp_path / "gradebook.csv")
    assert rows["alice"]["identical"] == "a3-11 same as bob; a3-16 same as the model answer, bob"
    assert rows["bob"]["identical"] == "a3-11 same as alice; a3-16 same as the model answer, alice"
    assert rows["carol"]["identical"] == "a3-11 same as the model answer"
    assert rows["dave"]["identical"] == rows["erin"]["identical"] == ""
    assert points("alice", "paired difference (2)") == 2  # flagged, not marked down
    # the energy report did not run: the written answer has no re-run numbers to be graded on, and says so
    for name in ("alice", "erin"):
        section = feedback[name].split(grader.NUMBERS_HEADING)[1].split("Rubric:")[0]
        assert "No re-run numbers exist: the value task 'energy report' did not pass" in section


def test_written_answers_are_compared_at_any_length_and_a_one_line_function_is_not():
    """Two honest students often write the same one-line function: answer code is compared only when the student
    wrote at least _IDENTICAL_CODE characters of it."""
    graded = [{"row": {"submission": name, "assignment": "a2_classifier_free_guidance"}, "answers": answers}
              for name, answers in (("alice", {"a2-18": "same"}), ("bob", {"a2-18": "same "}), ("carol", {}))]
    grader._identical(graded, solutions=ROOT / "nowhere")
    assert [g["row"]["identical"] for g in graded] == ["a2-18 same as bob", "a2-18 same as alice", ""]
    template = next(c for c in json.loads((ROOT / "book" / "assignments" / "a2_classifier_free_guidance.ipynb")
                                          .read_text())["cells"] if c.get("id") == "a2-07")
    cfg = "".join(template["source"]).replace("raise NotImplementedError  # TODO: your code here",
                                              "return gamma * eps_cond + (1 - gamma) * eps_uncond")
    assert cfg != "".join(template["source"])
    assert len(grader._normalised(cfg)) - len(grader._normalised("".join(template["source"]))) < grader._IDENTICAL_CODE
