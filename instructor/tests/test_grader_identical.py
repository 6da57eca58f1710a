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
    # dave's answer is alice's with a sentence added: not the same, but similar
    assert rows["alice"]["identical"] == "a3-11 same as bob; a3-11 0.80 like dave; a3-16 same as the model answer, bob"
    assert rows["bob"]["identical"] == "a3-11 same as alice; a3-11 0.80 like dave; a3-16 same as the model answer, alice"
    assert rows["carol"]["identical"] == "a3-11 same as the model answer"
    assert rows["dave"]["identical"] == "a3-11 0.80 like alice, 0.80 like bob"
    assert rows["erin"]["identical"] == ""
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


def test_a_lightly_edited_copy_of_a_written_answer_is_flagged_with_its_similarity_and_honest_answers_are_not():
    """A copy of the model answer with a letter or a few words changed, or of a classmate's, is flagged with its
    similarity; two honest answers to the same task, which share phrases such as "the error falls", are not."""
    model = _model("a3-11")
    one_letter = model.replace("My table", "my table", 1)
    assert one_letter != model
    words = model.replace("we ", "I ").replace("our ", "my ").replace("the noise floor", "the floor of noise")
    honest = ("Guidance at gamma = 3 gives the smallest energy error in my table, about a third of the unguided one, "
              "but the sliced distance to the reference keeps growing with gamma: fidelity is bought with diversity.")
    other = ("My error falls from gamma = 1 to 2 and then flattens, while the distance rises at every scale; the "
             "paired intervals separate 1 from 2 but not 3 from 5, so I cannot rank the two largest scales.")
    graded = [{"row": {"submission": name, "assignment": A3}, "answers": {"a3-11": text}}
              for name, text in (("eve", one_letter), ("frank", words), ("gina", honest), ("hal", other))]
    grader._identical(graded)
    rows = {g["row"]["submission"]: g["row"]["identical"] for g in graded}
    assert rows["eve"].startswith("a3-11 1.00 like the model answer, ") and " like frank" in rows["eve"]
    similarity = float(rows["frank"].split()[1])
    assert grader._SIMILAR <= similarity < 1 and rows["frank"].startswith(f"a3-11 {similarity:.2f} like the model")
    assert rows["gina"] == rows["hal"] == ""
    assert grader._similarity(grader._shingles(honest), grader._shingles(other)) < grader._SIMILAR / 2


def test_the_numbers_are_shown_when_the_samples_repeat_although_the_intervals_use_1_96(tmp_path):
    """A named slip in the report (1.96 for t) costs half of its task, but the blocks were regenerated from the
    seed: the written answer still gets the grader's numbers from those samples, labelled as such."""
    nb = json.loads((ROOT / "instructor" / "solutions" / f"{A3}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c.get("id") == "a3-06")
    source = "".join(cell["source"])
    assert "stats.t_quantile(blocks - 1)" in source
    cell["source"] = source.replace("stats.t_quantile(blocks - 1)", "1.96")
    (tmp_path / "slip.ipynb").write_text(json.dumps(nb))
    graded = grader.grade_notebook(tmp_path / "slip.ipynb", seed=778)
    assert grading_folders.column(graded["row"], "energy report (2)") == 1
    section = graded["feedback"].split(grader.NUMBERS_HEADING)[1].split("Rubric:")[0]
    assert "did not pass in full (half: a named mistake), but its samples repeat from the student's seed" in section
    assert "energy_error: gamma = 3 - gamma = 2" in section and "No re-run numbers" not in section


def test_a_template_output_is_no_stored_output():
    template = {"cell_type": "code", "outputs": [{"output_type": "stream", "text": "fill in the report above first\n"}]}
    lines = grader._stored_output(json.loads(json.dumps(template)), "1.0 [0.9, 1.1]", template)
    assert lines[0].startswith("No stored output") and not any("differ" in line for line in lines)
    mine = {"cell_type": "code", "outputs": [{"output_type": "stream", "text": "2.0 [1.9, 2.1]\n"}]}
    assert any("differ" in line for line in grader._stored_output(mine, "1.0 [0.9, 1.1]", template))


def test_swapping_common_words_does_not_hide_a_copied_written_answer():
    """A copy of the model answer with its common words swapped throughout ("the" -> "this", "is" -> "was", ...) is
    still similar: the comparison is on content words only."""
    import re

    from tutorial_pkg import grader

    model = grader._model_answers("a6_sampling_the_guided_target")["a6-17"]
    swaps = {"the": "this", "is": "was", "and": "plus", "of": "for", "a": "one", "to": "towards", "in": "within"}
    copy = re.sub(r"\b(the|is|and|of|a|to|in)\b", lambda m: swaps[m.group(1)], model)
    assert grader._similarity(grader._shingles(copy), grader._shingles(model)) >= grader._SIMILAR
