"""Assignment 2's dropout experiment (cell a2-15), graded: the grader takes every network that the submission's run
trained with the student's dropout, samples it again from the student's seed with the package's CFG sampler against
the exact mixture, and recomputes each network's error and wrong-mode share. The instructor's experiment scores its
points; one whose error is a root-mean-square instead of the mean |x - x_exact| scores zero, and so do numbers
typed in from a stored run with no network behind them, and so do numbers from a network that train_net did not
make, when it is one of those that the grader trains again (a few of each rate, drawn from the hidden seed); one
that is not among them passes, which is the limit of that check. When the experiment passes, the feedback shows
cell a2-16's comparisons as the grader computed them from the re-run networks, whatever the stored output of that
cell says. A submission with the w/gamma off-by-one in its cfg and a
right sampler (the reviewer's case) earns the sampler's marks, graded with the reference cfg in its place, and zero
on the experiment, whose numbers must come from functions that pass. A dropout drawn as u > 1 - p_uncond (a named
slip, half of its task) leaves the experiment on its networks its full points; a padded draw leaves it half."""

import json
import pathlib

from tutorial_pkg import grader

import grading_folders  # instructor/tests/grading_folders.py
from test_grader import CFG, DROP, SAMPLER

ROOT = pathlib.Path(__file__).resolve().parents[2]
A2 = "a2_classifier_free_guidance"
TEMPLATE = json.loads((ROOT / "book" / "assignments" / f"{A2}.ipynb").read_text())
SEED = 2026  # the hidden inputs' seed of the graded folder


def _experiment() -> str:
    """The instructor's answer cell a2-15, without its solution markers."""
    nb = json.loads((ROOT / "instructor" / "solutions" / f"{A2}.ipynb").read_text())
    source = "".join(next(c for c in nb["cells"] if c.get("id") == "a2-15")["source"])
    return "\n".join(line for line in source.split("\n") if "SOLUTION" not in line)


FABRICATED = ("gamma = 1, error: p = 0.02 - p = 0.5 = -0.012 ± 0.003 (paired, 95 % interval [-0.018, -0.006]): "
              "p = 0.02 lower\n")


def _true_comparisons(experiment: str) -> list[str]:
    """The gamma = 1 error comparison of the rates, the gamma = 3 - gamma = 1 one at p = 0.02, and the p = 0.5
    networks against the exact sampler on the same x_T at gamma = 1, that cell a2-16 prints, made here (in this
    process, not the grader's) by running cells a2-14 and the experiment ``experiment`` with the right functions."""
    import torch
    from tutorial_pkg import sampling, stats
    nb = json.loads((ROOT / "instructor" / "solutions" / f"{A2}.ipynb").read_text())
    setup = "".join(next(c for c in nb["cells"] if c.get("id") == "a2-14")["source"])
    namespace = {"torch": torch, "sampling": sampling}
    for source in (DROP, CFG, SAMPLER, setup, experiment):
        exec(source, namespace)
    results = namespace["results"]
    return [f"gamma = 1, error: " + str(stats.paired(results[0.02][1.0]["error"], results[0.5][1.0]["error"],
                                                     names=("p = 0.02", "p = 0.5"))),
            f"p_uncond = 0.02, error: " + str(stats.paired(results[0.02][3.0]["error"], results[0.02][1.0]["error"],
                                                           names=("gamma 3", "gamma 1"))),
            "gamma = 1, wrong: " + str(stats.paired(results[0.5][1.0]["wrong"], namespace["exact_wrong"][1.0],
                                                    names=("p = 0.5 networks", "exact sampler")))]


def test_the_dropout_experiment_is_graded_from_the_students_networks_and_seed(tmp_path, monkeypatch):
    """Graded on 3 networks per rate instead of the notebook's 12, one of them trained again, to keep the test
    short: the answer cell sets n_nets = 3 and the grader is told so; the grading is the same for any number of
    networks."""
    monkeypatch.setattr(grader, "_A2_NETS", 3)
    monkeypatch.setattr(grader, "_A2_RETRAINED", 1)
    folder = tmp_path / "submissions"
    folder.mkdir()
    functions = {"a2-04": DROP, "a2-07": CFG, "a2-10": SAMPLER}
    correct = "n_nets = 3\n" + _experiment()
    rms = correct.replace("(x - exact).abs().mean().item()", "(x - exact).pow(2).mean().sqrt().item()")
    assert rms != correct
    stored = ("results = {p: {g: {'error': [0.05] * n_nets, 'wrong': [0.03 if g == 1.0 else 0.0] * n_nets} "
              "for g in gammas} for p in rates}\nexact_wrong = {g: [0.03] * n_nets for g in gammas}\n")
    # a manufactured network: network j of p = 0.02 trained for 60 steps instead of 400, stored under its key, and
    # the experiment run on it; caught when the grader trains network j of that rate again, and not otherwise
    retrained = grader._a2_retrained(SEED, (0.02, 0.5), 3)[0.02]
    assert len(retrained) == 1

    def fabricated(j: int) -> str:
        source = ("n_nets = 3\n"
                  "def fabricate(p, s):\n"
                  f"    return train_net(p, s, steps=60) if (p, s) == (0.02, seed + {j}) else train_net(p, s)\n"
                  + _experiment().replace("train_net(p, seed + i)", "fabricate(p, seed + i)"))
        assert "fabricate(p, seed + i)" in source
        return source
    unchecked = next(j for j in range(3) if j not in retrained)
    grading_folders.submission(TEMPLATE, folder, "fabricated", {**functions, "a2-15": fabricated(retrained[0])})
    grading_folders.submission(TEMPLATE, folder, "unchecked", {**functions, "a2-15": fabricated(unchecked)})
    grading_folders.submission(TEMPLATE, folder, "correct", {**functions, "a2-15": correct})
    grading_folders.submission(TEMPLATE, folder, "rms", {**functions, "a2-15": rms})
    # dropouts right in distribution but drawn otherwise, each a named slip (half of its task), with the model's
    # experiment: u > 1 - p_uncond consumes the generator as the notebook's draw does, so the experiment on its
    # networks earns its full points; a padded draw, whose length chooses among sets of networks, half
    above = DROP.replace("< p_uncond", "> 1 - p_uncond")
    padded = DROP.replace("torch.rand(cond.shape[0], generator", "torch.rand(cond.shape[0] + 3, generator") \
        .replace("generator) < p_uncond", "generator)[:cond.shape[0]] < p_uncond")
    # the notebook's draw, then three numbers more only at train_net's batch of 256 rows: its own task (which calls it
    # on other sizes) passes, and the training tie finds the generator left elsewhere
    sneaky = DROP.replace("    return torch.where", "    if cond.shape[0] == 256:\n        torch.rand(3, generator=generator)\n"
                                                     "    return torch.where")
    assert above != DROP and padded != DROP and sneaky != DROP
    grading_folders.submission(TEMPLATE, folder, "sneaky", {**functions, "a2-15": correct, "a2-04": sneaky})
    grading_folders.submission(TEMPLATE, folder, "above", {**functions, "a2-04": above, "a2-15": correct})
    grading_folders.submission(TEMPLATE, folder, "padded", {**functions, "a2-04": padded, "a2-15": correct})
    # stored numbers, with the dropout flipped and cfg in Ho & Salimans' w convention, and a right sampler
    grading_folders.submission(TEMPLATE, folder, "stored", {
        "a2-04": DROP.replace("< p_uncond", "> p_uncond"), "a2-10": SAMPLER, "a2-15": stored,
        "a2-07": CFG.replace("gamma * eps_cond + (1 - gamma)", "(1 + gamma) * eps_cond - gamma")})
    # the correct submission with its stored comparisons (cell a2-16, which the grader does not take from it) edited
    # to fabricated, resolved intervals
    nb = json.loads((folder / "correct.ipynb").read_text())
    cell = next(c for c in nb["cells"] if c.get("id") == "a2-16")
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": [FABRICATED]}]
    (folder / "correct.ipynb").write_text(json.dumps(nb))
    rows, feedback, points = grading_folders.grade(folder, tmp_path / "gradebook.csv", seed=SEED)
    assert points("correct", "dropout experiment (5)") == 5 and "run again on network" in feedback["correct"]
    # the feedback shows the comparisons as the grader computed them from the re-run networks, beside the written
    # answer: the true intervals and verdicts, which the fabricated ones are not
    numbers = feedback["correct"].split(grader.NUMBERS_HEADING)[1].split("Rubric:")[0]
    truth = _true_comparisons(correct)
    for line in truth:
        assert line in numbers, (line, numbers)
    assert FABRICATED.strip() not in numbers and FABRICATED.strip() != truth[0]
    for name in ("rms", "fabricated", "stored"):  # a value task that did not pass: no re-run numbers
        assert "No re-run numbers exist" in feedback[name].split(grader.NUMBERS_HEADING)[1]
    assert points("correct", "auto_points") == points("correct", "auto_max") == 13
    assert f"network {retrained[0]} at p = 0.02" in feedback["correct"] and "are what train_net makes" in feedback["correct"]
    assert points("fabricated", "dropout experiment (5)") == 0 and \
        f"is not what train_net(0.02, {retrained[0]})" in feedback["fabricated"]
    # the limit: a network trained otherwise that the grader does not train again is not found (with 4 of 16
    # trained again per rate, one such network is found with probability 1/4)
    assert points("unchecked", "dropout experiment (5)") == 5
    assert points("rms", "dropout experiment (5)") == 0 and "mean |x - x_exact|" in feedback["rms"]
    # its functions' failures are named mistakes, so its numbers are compared with those of its own functions
    # (sampled again in the child): typed in, they are not those, and score zero
    assert points("stored", "dropout experiment (5)") == 0 and "have named mistakes, and these numbers are not what " \
        "your own functions give either" in feedback["stored"]
    assert points("stored", "CFG combination (2)") == 1 and points("stored", "condition dropout (1)") == 0.5
    # the draw slips: half of the dropout each; the experiment in full after u > 1 - p_uncond, half after a padded
    # draw, both on the student's own networks, whose numbers are printed under the written answer
    assert points("above", "condition dropout (1)") == points("padded", "condition dropout (1)") == 0.5
    assert "consumes the generator as the notebook's draw does" in feedback["above"]
    assert "leaves the generator elsewhere" in feedback["padded"]
    assert points("above", "dropout experiment (5)") == 5 and "earn the full points" in feedback["above"]
    assert points("padded", "dropout experiment (5)") == 2.5 and "half the points" in feedback["padded"]
    assert points("above", "auto_points") == 12.5 and points("padded", "auto_points") == 10
    assert points("sneaky", "condition dropout (1)") == 1 and points("sneaky", "dropout experiment (5)") == 0
    assert "left the generator elsewhere than the notebook's draw does" in feedback["sneaky"]
    for name, label in (("above", "passed in full on the student's own functions"), ("padded", "did not pass in full")):
        numbers = feedback[name].split(grader.NUMBERS_HEADING)[1].split("Rubric:")[0]
        assert label in numbers and "gamma = 1, error:" in numbers, numbers
    assert points("stored", "CFG DDIM sampler (5)") == 5 and "reference `cfg` in place of yours" in feedback["stored"]
