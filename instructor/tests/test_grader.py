"""Grading on the instructor's side (``python -m tutorial_pkg.grader``): a folder of submissions of assignment 2 is
graded into a gradebook. A correct submission scores full marks; a wrong one its hint and partial marks; an open
TODO zero; each way round the self-checks' in-process refusal (a fresh function object from the saved code, a
second copy of the module, restoring the code object inside the answer, exec of the copied source, package
functions that compute the same thing) is refused before it runs and scores zero on the task it cheats; an
answer hard-coded from a stored run scores zero, since the hidden inputs are new."""

import dataclasses
import inspect
import json
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
import torch

from tutorial_pkg import grader, grading

import grading_folders  # instructor/tests/grading_folders.py

ROOT = pathlib.Path(__file__).resolve().parents[2]
A2 = "a2_classifier_free_guidance"
TEMPLATE = json.loads((ROOT / "book" / "assignments" / f"{A2}.ipynb").read_text())
PACKAGE = grader._package_names(TEMPLATE)

DROP = """def drop_condition(cond, p_uncond, null, generator):
    drop = torch.rand(cond.shape[0], generator=generator) < p_uncond
    return torch.where(drop, torch.full_like(cond, null), cond)
"""
CFG = "def cfg(eps_cond, eps_uncond, gamma):\n    return gamma * eps_cond + (1 - gamma) * eps_uncond\n"
SAMPLER = """def cfg_ddim_sampler(eps_model, x_T, cond, gamma, schedule, num_steps):
    x = x_T
    steps = sampling.ddim_timesteps(schedule.T, num_steps)
    for t, t_prev in zip(steps, steps[1:] + [-1]):
        tt = torch.full((x.shape[0],), t)
        eps = cfg(eps_model(x, tt, cond), eps_model(x, tt, None), gamma)
        ab = schedule.alpha_bars[t]
        ab_prev = schedule.alpha_bars[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        x = ab_prev.sqrt() * (x - (1 - ab).sqrt() * eps) / ab.sqrt() + (1 - ab_prev).sqrt() * eps
    return x
"""
# each way round the in-process refusal, as an answer to "write the CFG combination" (or the sampler)
CHEATS = {
    "function object": "import types\n_cfg = types.FunctionType(guidance.cfg.__code__, guidance.cfg.__globals__)\n"
                       "def cfg(eps_cond, eps_uncond, gamma):\n    return _cfg(eps_cond, eps_uncond, gamma)\n",
    "module copy": "import importlib.util\n"
                   "spec = importlib.util.spec_from_file_location('copy', guidance.__file__)\n"
                   "copy = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(copy)\n"
                   "def cfg(eps_cond, eps_uncond, gamma):\n    return copy.cfg(eps_cond, eps_uncond, gamma)\n",
    "code restored": "_code = guidance.cfg.__code__\n"
                     "def cfg(eps_cond, eps_uncond, gamma):\n    refuser = guidance.cfg.__code__\n"
                     "    guidance.cfg.__code__ = _code\n    try:\n"
                     "        return guidance.cfg(eps_cond, eps_uncond, gamma)\n"
                     "    finally:\n        guidance.cfg.__code__ = refuser\n",
    "exec of the source": "import inspect\nnamespace = {}\nexec(inspect.getsource(guidance.cfg), namespace)\n"
                          "cfg = namespace['cfg']\n",
    "apg": "from tutorial_pkg import variants\n"
           "def cfg(eps_cond, eps_uncond, gamma):\n    return variants.apg(eps_cond, eps_uncond, gamma, eta=1.0)\n",
    "alias of the module": "g = guidance\ndef cfg(eps_cond, eps_uncond, gamma):\n"
                           "    return g.cfg(eps_cond, eps_uncond, gamma)\n",
    "through torch": "def cfg(eps_cond, eps_uncond, gamma):\n"
                     "    return torch.sys.modules['tutorial_pkg.guidance'].cfg(eps_cond, eps_uncond, gamma)\n",
    "through an argument": "def cfg(eps_cond, eps_uncond, gamma):\n    return eps_cond.__class__\n",
    "getattr": "def cfg(eps_cond, eps_uncond, gamma):\n    return getattr(guidance, 'cfg')(eps_cond, eps_uncond, gamma)\n",
    "a name built as a string": "import numpy as np\n_g = np._core.arrayprint.operator.attrgetter('__glo' + 'bals__')\n"
                                "def cfg(eps_cond, eps_uncond, gamma):\n"
                                "    return _g(cfg)['guidance'].cfg(eps_cond, eps_uncond, gamma)\n",
    "importlib of the set-up cell": "def cfg(eps_cond, eps_uncond, gamma):\n"
                                    "    return importlib.import_module('tut' + 'orial_pkg.guidance').cfg(eps_cond, "
                                    "eps_uncond, gamma)\n",
    "pickle through torch": "import torch\n"
                            "cfg = torch.multiprocessing.reducer.ForkingPickler.loads(b'ctutorial_pkg.guidance\\ncfg\\n.')\n",
    "the builtins through torch": "import torch\nb = torch.glob.re.enum.bltns\n"
                                  "def cfg(eps_cond, eps_uncond, gamma):\n"
                                  "    return b.getattr(b.globals()['guidance'], 'cfg')(eps_cond, eps_uncond, gamma)\n",
    "a built name, no underscore attribute": "import numpy as np\n_g = np.core.arrayprint.operator.attrgetter("
                                             "'_' * 2 + 'globals' + '_' * 2)\n"
                                             "def cfg(eps_cond, eps_uncond, gamma):\n"
                                             "    return _g(cfg)['guidance'].cfg(eps_cond, eps_uncond, gamma)\n",
}
# numpy's read_array with allow_pickle: a pickle, built in the cell from pieces, whose GLOBAL opcode imports any of
# the package's functions by name (no import, no getattr, no underscore attribute, no "tutorial" in a string)
PICKLE_LOADER = r'''
import numpy as np

class Buffer(dict):  # its state in its items: an answer may not set an attribute
    def read(self, n=-1):
        n = len(self["data"]) - self["pos"] if n is None or n < 0 else n
        out = self["data"][self["pos"]:self["pos"] + n]
        self["pos"] += len(out)
        return out
    def readline(self):
        data, pos = self["data"], self["pos"]
        end = data.index(b"\n", pos) + 1 if b"\n" in data[pos:] else len(data)
        self["pos"] = end
        return data[pos:end]

def fetch(module, name):
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    header = header + " " * (63 - (10 + len(header)) % 64) + "\n"
    payload = ("c" + "tut" + "orial_pkg." + module + "\n" + name + "\n.").encode()
    head = bytes([0x93]) + "NUMPY".encode() + bytes([1, 0, len(header) % 256, len(header) // 256]) + header.encode()
    return np.lib.format.read_array(Buffer(data=head + payload, pos=0), allow_pickle=True)
'''
PICKLE_CHEATS = {
    "pickle through numpy's read_array": PICKLE_LOADER + "\ndef cfg(eps_cond, eps_uncond, gamma):\n"
                                         "    return fetch('guidance', 'cfg')(eps_cond, eps_uncond, gamma)\n",
    # the function is fetched once, while a regenerated cell calls it, and kept for the graded calls
    "pickle, fetched when a regenerated cell calls": PICKLE_LOADER + "\nkept = []\n"
        "def cfg(eps_cond, eps_uncond, gamma):\n    if not kept:\n        kept.append(fetch('guidance', 'cfg'))\n"
        "    return kept[0](eps_cond, eps_uncond, gamma)\n",
    "the grader's reference through pickle": PICKLE_LOADER + "\ndef cfg(eps_cond, eps_uncond, gamma):\n"
        "    return fetch('grading', '_smc_reference') and gamma * eps_cond + (1 - gamma) * eps_uncond\n",
}
CHEATS.update(PICKLE_CHEATS)
# a reviewer's route: a class pattern reads attributes by the names of its keywords, which are no Attribute nodes
CHEATS["a match pattern that reads a dunder attribute"] = (
    "match print:\n    case object(__self__=bi):\n        pass\n"
    "def cfg(eps_cond, eps_uncond, gamma):\n    return eps_uncond + gamma * (eps_cond - eps_uncond)\n")
CHEATS["from-import of a module's dict"] = "from numpy import __dict__ as d\n" + CFG
# str.format and format_map read the attributes that their fields name, with no Attribute node: the reprs of the
# child's namespace and the package's module globals, through a constant string
CHEATS["a format field that reads a dunder attribute"] = 'seen = "{0.__globals__}".format(print)\n' + CFG
CHEATS["format_map with an underscore attribute"] = 'seen = "{x._parameters!r}".format_map({"x": abs})\n' + CFG
CHEATS["a dunder field nested in a format spec"] = 'seen = "{0:{1.__class__}}".format(1, 2)\n' + CFG
# typing's get_type_hints evaluates a string in a module's namespace: any expression, built at run time (a reviewer's
# route to the package's own functions past the screen's names)
EVAL_CHEAT = r'''
import torch

u = "_" * 2
hints = torch.fx.graph.typing.get_type_hints


def fetch(expr):
    holder = type("Holder", (), {u + "module" + u: "torch", u + "annotations" + u: {"f": expr}})
    return hints(holder)["f"]


def cfg(eps_cond, eps_uncond, gamma):
    return fetch("__import__('tutorial" + "_pkg.variants', fromlist=['apg']).apg")(eps_cond, eps_uncond, gamma, eta=1.0)
'''
SAMPLER_CHEAT = SAMPLER.replace("x = ab_prev.sqrt()", "c = sampling.ddim_coefficients(schedule, t, t_prev)\n        x = ab_prev.sqrt()")


def _stored_answer() -> str:
    """An answer hard-coded from a stored run: the output of a correct sampler on the self-check's inputs of seed 0."""
    stored = {}
    namespace = {"torch": torch, "sampling": grading.sampling}
    exec(CFG + SAMPLER, namespace)
    grading.check_cfg_sampler(lambda *args: stored.setdefault("x", namespace["cfg_ddim_sampler"](*args)), seed=0)
    return (f"STORED = {stored['x'].tolist()!r}\n"
            "def cfg_ddim_sampler(eps_model, x_T, cond, gamma, schedule, num_steps):\n"
            "    return torch.tensor(STORED, dtype=torch.float64)\n")


def _submission(folder: pathlib.Path, name: str, answers: dict) -> None:
    grading_folders.submission(TEMPLATE, folder, name, answers)


@pytest.mark.parametrize("cheat", list(CHEATS))
def test_each_way_round_the_refusal_is_refused_before_it_runs(cheat):
    assert grader.screen(CHEATS[cheat], PACKAGE) is not None
    assert grader.screen(CFG, PACKAGE) is None


def test_the_sampler_may_use_only_the_calls_its_task_names():
    allowed = ("sampling.ddim_timesteps",)
    assert grader.screen(SAMPLER, PACKAGE, allowed) is None
    assert "ddim_coefficients" not in (grader.screen(SAMPLER, PACKAGE, allowed) or "")
    assert "sampling" in grader.screen(SAMPLER_CHEAT, PACKAGE, allowed)
    assert grader.screen(SAMPLER, PACKAGE) is not None  # without the allowance
    assert grader.screen("def f(:\n", PACKAGE).startswith("the cell is not valid Python")


def test_a_folder_of_submissions_is_graded_into_a_gradebook(tmp_path):
    """One test, so that the folder is graded once (under pytest-xdist too): a correct submission scores full marks;
    a wrong one its hint and partial marks; an open TODO zero; an answer hard-coded from a stored run zero; each
    cheating submission zero on the task it cheats (refused before it runs)."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    _submission(folder, "correct", {"a2-04": DROP, "a2-07": CFG, "a2-10": SAMPLER})
    written = tmp_path / "written.npy"
    # wrong: the w/gamma off-by-one in the combination, and a sampler hard-coded from a stored run (one submission,
    # so that the test starts one process fewer)
    _submission(folder, "wrong", {"a2-07": CFG.replace("gamma * eps_cond + (1 - gamma)", "(1 + gamma) * eps_cond - gamma"),
                                  "a2-04": f"import numpy as np\nnp.ones(3).dump({str(written)!r})\n" + DROP,
                                  "a2-10": _stored_answer()})
    _submission(folder, "todo", {})
    for k, source in enumerate(CHEATS.values()):
        _submission(folder, f"cheat_{k}", {"a2-07": source})
    # with a padded dropout draw (right in distribution, one that chooses among seed sets): the child sends the
    # generator back as the function left it, so the check sees the extra draws, a named slip
    padded = DROP.replace("torch.rand(cond.shape[0], generator", "torch.rand(cond.shape[0] + 3, generator") \
        .replace("generator) < p_uncond", "generator)[:cond.shape[0]] < p_uncond")
    _submission(folder, "cheat_sampler", {"a2-10": SAMPLER_CHEAT, "a2-04": padded})
    out = tmp_path / "gradebook.csv"
    rows, feedback, points = grading_folders.grade(folder, out)  # hidden inputs: not the seed 0 of the stored run

    # the dropout experiment (a2-15) is left open here: test_grader_a2.py grades it
    assert points("correct", "auto_points") == 8 and points("correct", "auto_max") == 13
    # the feedback counts its points in words: one point, not "1 points"
    assert "## CFG combination (2 points)\n" in feedback["correct"] and "## condition dropout (1 point)" in feedback["correct"]
    assert "\n1 point (" in feedback["wrong"] and "\n2 points (" in feedback["correct"] and "1 points" not in feedback["wrong"]
    # wrong: the named off-by-one earns half, with its hint; the hard-coded sampler zero, since the inputs are new
    # the dropout cell of the wrong submission writes a file outside the child's folder, past the screen: the
    # child's audit hook refuses it, the cell raises, and its task scores zero
    assert points("wrong", "CFG combination (2)") == 1 and points("wrong", "condition dropout (1)") == 0
    assert points("wrong", "CFG DDIM sampler (5)") == 0 and points("wrong", "auto_points") == 1
    assert "off by one" in feedback["wrong"] and "the values differ" in feedback["wrong"]
    assert points("todo", "auto_points") == 0 and "TODO is still open" in feedback["todo"]
    for k, cheat in enumerate(CHEATS):
        assert points(f"cheat_{k}", "CFG combination (2)") == 0, cheat
        assert "refused" in feedback[f"cheat_{k}"], cheat
    assert points("cheat_sampler", "CFG DDIM sampler (5)") == 0 and "refused" in feedback["cheat_sampler"]
    assert points("cheat_sampler", "condition dropout (1)") == 0.5 and \
        "leaves the generator elsewhere than the notebook's draw" in feedback["cheat_sampler"]
    assert grader.screen(f"import numpy as np\nnp.ones(3).dump({str(written)!r})\n", PACKAGE) is None
    assert not written.exists()
    # the written Think! answer is graded by hand, its rubric in the feedback; an unanswered one scores zero
    assert points("correct", "written_max") == 5 and points("todo", "Think! what the dropout rate buys (5)") == 0
    assert "3 eps_c - 2 eps_u" in feedback["todo"]


# a reviewer's route: string.Formatter.get_field reads any attribute by a name built at run time, and numpy's f2py holds
# the string module; from numpy's builtins, __import__ reaches the grader's own reference solutions
FORMATTER_CHEAT = (
    "import numpy as np\n"
    "F = np.f2py.crackfortran.string.Formatter()\n"
    "u = '_' * 2\n"
    "bi = F.get_field('0.' + u + 'built' + 'ins' + u, (np,), {})[0]\n"
    "ref = bi[u + 'imp' + 'ort' + u]('tutorial' + '_pkg.grader', None, None, ['x'])\n"
    "def cfg(eps_cond, eps_uncond, gamma):\n"
    "    return F.get_field('0._REFER' + 'ENCES', (ref,), {})[0]['cfg'](eps_cond, eps_uncond, gamma)\n")


def test_an_answer_sees_its_modules_without_the_modules_they_import():
    """torch and numpy, as an answer sees them: their functions and classes, and the submodules of _SUBMODULES, but
    no other module (no walk from numpy to the string module through f2py); an import gives the same views."""
    import numpy
    grader._import_submodules()  # as the child does before its lock-down
    view = grader._view(numpy)
    assert view.sum is numpy.sum and view.linalg.solve is numpy.linalg.solve and not hasattr(view, "f2py")
    assert not hasattr(view, "lib") and not hasattr(view.random, "mtrand")
    view = grader._view(torch)
    assert view.nn.functional.softplus is torch.nn.functional.softplus and view.Tensor is torch.Tensor
    assert not hasattr(view, "utils") and not hasattr(view, "serialization") and not hasattr(view.nn, "modules")
    assert grader._answer_import("torch.nn.functional", fromlist=None) is grader._view_of("torch")
    assert grader._answer_import("torch.nn", fromlist=("functional",)) is grader._view_of("torch").nn
    for name in ("numpy.f2py", "threading", "torch.utils", "numpy._core._methods"):
        with pytest.raises(ImportError, match="grading: an answer may"):
            grader._answer_import(name)


def test_the_lock_down_refuses_code_and_code_swaps_from_other_threads(tmp_path):
    """A thread that an answer starts has no answer's code on its stack: there, the child refuses compiling or running
    code and swapping a function's code, even with the grader's trusted flag set in that thread. Unpickling is
    refused unless the grader itself loads."""
    code = (f"import threading\nfrom tutorial_pkg import grader\ngrader._lock_down({str(tmp_path)!r})\n"
            "results = []\n"
            "def attempt(action):\n"
            "    try:\n        action()\n        results.append('ran')\n"
            "    except PermissionError:\n        results.append('refused')\n"
            "def run():\n"
            "    attempt(lambda: exec('1'))\n"
            "    grader._TRUSTED.on = True\n"
            "    attempt(lambda: setattr(attempt, '__code__', attempt.__code__))\n"
            "thread = threading.Thread(target=run)\nthread.start()\nthread.join()\n"
            "import pickle\nattempt(lambda: pickle.loads(b'cos\\nsystem\\n.'))\n"
            "attempt(eval(compile('lambda: eval(\\'1\\')', '<answer a0-01>', 'eval')))\n"
            "saved = grader._TRUSTED\n"
            "grader._answer_runs_code = lambda: False\ngrader._WRITE_FLAGS = 0\ngrader._TRUSTED = None\n"
            "import os\nattempt(eval(compile('lambda: eval(\\'1\\')', '<answer a0-02>', 'eval')))\n"
            "attempt(lambda: os.open('/tmp/x-' + str(os.getpid()), os.O_WRONLY | os.O_CREAT))\n"
            "saved.on = True\n"
            "attempt(lambda: setattr(attempt, '__code__', attempt.__code__))\n"
            "print(results)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    # in the thread: both refused; in the main thread, untrusted: unpickling refused; an answer's code that evaluates
    # a string: refused; trusted and with no answer on the stack: the grader's own swap
    # then, with the module's rules rebound (as an answer that reached the module could): still refused, since the
    # hook bound them when the child locked down
    assert out.stdout.strip() == "['refused', 'refused', 'refused', 'refused', 'refused', 'refused', 'ran']", out.stderr


def test_the_childs_refusals_hold_where_the_screen_lets_an_answer_through(tmp_path, monkeypatch):
    """The run-time lines of defence, with the screen's rules on attributes and keywords relaxed: the child refuses
    unpickling, and compiling or running code from strings, while an answer's code is on the stack (so the pickle
    cheats and the string evaluated through typing score zero), and it installs the
    self-check's own refusals around each graded call (so a sampler handed sampling.ddim_sample cannot call it)."""
    monkeypatch.setattr(grader, "_ATTRIBUTES", grader._ATTRIBUTES - {"read_array", "fx", "typing", "get_type_hints", "f2py",
                                                                      "crackfortran", "string", "Formatter", "get_field"})
    monkeypatch.setattr(grader, "_KEYWORDS", set())
    monkeypatch.setattr(grader, "_FORMAT_METHODS", set())  # np.lib.format.read_array
    tasks = [dataclasses.replace(t, allowed=t.allowed + ("sampling.ddim_sample",)) if t.cell == "a2-10" else t
             for t in grader.ASSIGNMENTS[A2]]
    monkeypatch.setitem(grader.ASSIGNMENTS, A2, tasks)
    folder = tmp_path / "submissions"
    folder.mkdir()
    for k, source in enumerate(PICKLE_CHEATS.values()):
        assert grader.screen(source, PACKAGE) is None  # relaxed: only the child stands in the way
        _submission(folder, f"pickle_{k}", {"a2-04": DROP, "a2-07": source, "a2-10": SAMPLER})
    assert grader.screen(EVAL_CHEAT, PACKAGE) is None
    # one child for two lines of defence: cfg evaluates a string through typing, the sampler is handed ddim_sample
    _submission(folder, "handed", {"a2-07": EVAL_CHEAT, "a2-10": "def cfg_ddim_sampler(eps_model, x_T, cond, gamma, "
                                   "schedule, num_steps):\n    return sampling.ddim_sample(eps_model, tuple(x_T.shape), "
                                   "schedule, num_steps=num_steps, cond=cond, x_T=x_T)\n"})
    # a getattr by a name built at run time, through the string module that numpy's f2py holds, to the grader's own
    # references: the answer's numpy shows no f2py, so the cell raises before it defines cfg
    assert grader.screen(FORMATTER_CHEAT, PACKAGE) is None
    _submission(folder, "formatter", {"a2-04": DROP, "a2-07": FORMATTER_CHEAT})
    rows, feedback, points = grading_folders.grade(folder, tmp_path / "gradebook.csv")
    assert points("formatter", "CFG combination (2)") == 0 and points("formatter", "condition dropout (1)") == 1
    assert "has no attribute 'f2py'" in feedback["formatter"], feedback["formatter"]
    for k, cheat in enumerate(PICKLE_CHEATS):
        assert points(f"pickle_{k}", "CFG combination (2)") == 0, cheat
        # the answer's numpy shows no lib, so read_array is out of reach (were it reached: numpy parses the array's
        # header with ast.literal_eval first, which the child refuses, as it refuses the unpickling itself: the
        # lock-down's test below)
        assert "has no attribute 'lib'" in feedback[f"pickle_{k}"], cheat
        assert points(f"pickle_{k}", "condition dropout (1)") == 1, cheat  # the honest tasks still score
    assert points("handed", "CFG DDIM sampler (5)") == 0 and points("handed", "CFG combination (2)") == 0
    # the answer's torch shows no fx, so typing's get_type_hints is out of reach (were it reached, the child refuses
    # the compile that evaluates the string: the lock-down's test below)
    assert "has no attribute 'fx'" in feedback["handed"], feedback["handed"]
    assert "does not accept a call of tutorial_pkg.sampling.ddim_sample" in feedback["handed"]


def test_an_honest_docstring_or_import_is_not_refused_and_dependants_say_why(tmp_path):
    """Words in strings are the student's: only a string that is a module's or a dunder's name is refused. A cell
    that calls a refused cell's function is graded on its own logic, with the reference in the refused one's place,
    and told so, not to fill in its TODO."""
    docstring = ('def cfg(eps_cond, eps_uncond, gamma):\n    """The important part: as in the tutorial, it imports '
                 'nothing and uses no __dunder__."""\n    return eps_uncond + gamma * (eps_cond - eps_uncond)\n')
    assert grader.screen(docstring, PACKAGE) is None
    assert grader.screen("import itertools\n" + DROP, PACKAGE) is None
    for name in ("tutorial_pkg.guidance", "__globals__", "builtins", " sys "):
        assert "names a module" in grader.screen(f"x = {name!r}\n", PACKAGE), name
    assert "allow_pickle" in grader.screen("import numpy as np\nnp.zeros(1, allow_pickle=True)\n", PACKAGE)
    # a format field that reads an underscore attribute is refused with its reason; ordinary fields are the student's
    assert "format field that reads an underscore attribute" in grader.screen('s = "{0.__class__}".format(1)\n',
                                                                              PACKAGE)
    assert grader.screen('s = "{0:.3f} {x.real} {{._}} {}".format(1.0, 2, x=3)\nt = f"{s!r:>10}"\n', PACKAGE) is None
    # a format string built at run time may name any attribute: .format and .format_map only on a string constant
    for built in ('u = "_" * 2\ns = ("{0." + u + "globals" + u + "}").format(abs)\n',
                  's = "{0.%sglobals%s}" % ("_" * 2, "_" * 2)\nt = s.format(abs)\n',
                  's = "".join(["{0.", "_" * 2, "class", "_" * 2, "}"]).format_map({"0": 1})\n',
                  'f = "{0:.3f}"\ns = f.format(1.0)\n', 's = str.format("{0.real}", 1)\n'):
        assert "accepted only on a string constant" in grader.screen(built, PACKAGE), built
    assert grader.screen('s = "{x:.3f}".format_map({"x": 1.0})\nt = f"{s:>10} {2.0:.1f}"\n', PACKAGE) is None
    folder = tmp_path / "submissions"
    folder.mkdir()
    _submission(folder, "refused", {"a2-07": "import os\n" + CFG, "a2-10": SAMPLER})
    rows, feedback, points = grading_folders.grade(folder, tmp_path / "gradebook.csv")
    assert points("refused", "CFG combination (2)") == 0 and "import os" in feedback["refused"]
    assert points("refused", "CFG DDIM sampler (5)") == 5
    assert "graded with the reference `cfg` in place of yours" in feedback["refused"]
    assert "fill in the TODO" not in feedback["refused"]
    assert "A2 CFG DDIM sampler (5)" in rows["refused"]


def test_the_grader_refuses_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="folder"):
        grader.grade_folder(tmp_path / "none")
    with pytest.raises(ValueError, match="jobs"):
        grader.grade_folder(tmp_path, jobs=0)


def test_every_answer_cell_of_the_grader_is_in_its_template():
    for assignment, tasks in grader.ASSIGNMENTS.items():
        template = json.loads((ROOT / "book" / "assignments" / f"{assignment}.ipynb").read_text())
        ids = {c.get("id"): c for c in template["cells"]}
        source = ROOT / "instructor" / "solutions" / f"{assignment}.ipynb"
        solved = {c.get("id"): "".join(c["source"]) for c in json.loads(source.read_text())["cells"]} \
            if source.exists() else None
        for task in tasks:
            assert task.cell in ids, (assignment, task)
            text = "".join(ids[task.cell]["source"])
            if solved is not None:  # the answer cell holds a solution block in the instructor's notebook
                assert "BEGIN SOLUTION" in solved[task.cell], (assignment, task)
            else:  # a students' copy: the cell holds the generator's TODO or stub
                assert grader.TODO_MARK in text or grader.ANSWER_MARK in text or "None" in text, (assignment, task)


def test_every_written_task_has_its_rubric_with_the_instructors_solutions(tmp_path):
    if not grader.RUBRICS.is_dir():
        pytest.skip("no instructor/ in this copy of the course")
    for assignment, tasks in grader.ASSIGNMENTS.items():
        found = grader.rubrics(assignment)
        for task in tasks:
            if task.kind == "written":
                assert "point" in found.get(task.name, ""), f"{assignment}: no rubric for {task.name!r}"
    # a copy without the rubrics (the students') grades the same, and says where the rubric is kept
    folder = tmp_path / "submissions"
    folder.mkdir()
    nb = json.loads((ROOT / "book" / "assignments" / "a3_energy_target.ipynb").read_text())
    for cell in nb["cells"]:
        if cell.get("id") == "a3-11":
            cell["source"] = "**Answer.** The error falls and the distance grows."
    (folder / "s.ipynb").write_text(json.dumps(nb))
    graded = grader.grade_notebook(folder / "s.ipynb", rubric_folder=tmp_path / "none", seed=1)
    assert "The error falls" in graded["feedback"] and "rubrics stay with the instructor's solutions" in graded["feedback"]
    assert grading_folders.column(graded["row"], "Think! error against distance (6)") == ""
    with_rubric = grader.grade_notebook(folder / "s.ipynb", seed=1)
    assert grader.rubrics("a3_energy_target")["Think! error against distance"] in with_rubric["feedback"]


def test_an_answer_runs_where_no_package_name_can_be_found():
    """The second line of defence, for a way round the screen that nobody has found yet: an answer cell runs in a
    namespace without the package's modules, functions and classes (its own functions' globals), save the calls its
    task names, behind a stand-in that holds only those; what it binds reaches the notebook's namespace."""
    namespace = {"__name__": "__main__", "guidance": grading.guidance, "sampling": grading.sampling,
                 "check": grading.check_cfg, "torch": torch, "x": 3}
    source = ("found = sorted(k for k in globals() if not k.startswith('__'))\n"
              "steps = sampling.ddim_timesteps(10, 2)\n"
              "def f():\n    return sorted(globals())\n")
    grader._run_answer(source, "a2-10", ["sampling.ddim_timesteps"], namespace)
    assert namespace["found"] == ["sampling", "torch", "x"]
    assert not hasattr(namespace["f"].__globals__["sampling"], "ddim_sample")
    assert "guidance" not in namespace["f"]() and namespace["steps"] == grading.sampling.ddim_timesteps(10, 2)
    assert namespace["sampling"] is grading.sampling and namespace["guidance"] is grading.guidance


def _renamed(fn, renames):
    source = textwrap.dedent(inspect.getsource(fn))
    for old, new in renames.items():
        source = re.sub(rf"\b{old}\b", new, source)
    return source


def test_code_copied_from_the_package_is_flagged_for_the_instructor_names_aside():
    """An answer that copies a package function, or a self-check's reference code, with its variables renamed and its
    docstring cut, is named in the gradebook's ``copied`` column; the instructors' own answers to all seven
    assignments, written as the chapters teach, are not (the code that the template's cell prescribes is not
    counted)."""
    from tutorial_pkg import smc
    copy = _renamed(smc._systematic, {"log_w": "logw", "u": "offsets", "cdf": "c", "K": "n"})
    assert copy != textwrap.dedent(inspect.getsource(smc._systematic))
    assert any("tutorial_pkg.smc._systematic" in where for where in grader.copied(copy))
    # a copy that runs in a notebook, where `Tensor` is not defined: its annotations gone, or written otherwise,
    # or a decorator added; flagged all the same
    runnable = re.sub(r": Tensor|: Optional\[torch\.Generator\]| -> Tensor", "", copy)
    assert "Tensor" not in runnable.split(":\n")[0]
    namespace = {"torch": torch}
    exec(runnable, namespace)
    assert namespace["_systematic"](torch.zeros(2, 4), torch.Generator().manual_seed(0)).shape == (2, 4)
    for variant in (runnable, copy.replace("-> Tensor", "-> torch.Tensor"), "@torch.no_grad()\n" + runnable):
        assert any("tutorial_pkg.smc._systematic" in where for where in grader.copied(variant)), variant
    reference = _renamed(grading._window_recursion, {"rows": "out", "steps": "grid", "pairs": "ps", "rule": "r"})
    assert any("tutorial_pkg.grading._window_recursion" in where for where in grader.copied(reference))
    assert grader.copied(CFG) == grader.copied(SAMPLER) == grader.copied(DROP) == []
    for path in sorted((ROOT / "instructor" / "solutions").glob("a[1-7]_*.ipynb")):
        answers = {t.cell for t in grader.ASSIGNMENTS[path.stem] if t.kind != "written"}
        template = {c.get("id"): "".join(c["source"]) for c in
                    json.loads((ROOT / "book" / "assignments" / path.name).read_text())["cells"]}
        for cell in json.loads(path.read_text())["cells"]:
            if cell.get("id") in answers:
                assert grader.copied("".join(cell["source"]), template[cell["id"]]) == [], (path.stem, cell["id"])


_WINDOWS_EDITED = """def window_moments(mean_c, var_c, mean_u, var_u, gamma, windows, schedule):
    ab = schedule.alpha_bars.double()
    steps = sampling.ddim_timesteps(schedule.T, 50)

    def eps(mean, var, t):
        a = (1 - ab[t]).sqrt() / (ab[t] * var + 1 - ab[t])
        return a, -a * ab[t].sqrt() * mean

    rows = []
    for lo, hi in windows:
        M, V = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
        pairs = list(zip(steps, steps[1:] + [-1]))
        for t, t_prev in pairs:
            g = gamma if lo <= t <= hi else 1.0
            (a_c, c_c), (a_u, c_u) = eps(mean_c, var_c, t), eps(mean_u, var_u, t)
            a, c = g * a_c + (1 - g) * a_u, g * c_c + (1 - g) * c_u
            ab_prev = ab[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
            k = (1 - ab_prev).sqrt() - (ab_prev / ab[t]).sqrt() * (1 - ab[t]).sqrt()
            A, B = (ab_prev / ab[t]).sqrt() + k * a, k * c
            M, V = A * M + B, A ** 2 * V
        rows.append(torch.stack([M, V]))
    return torch.stack(rows)
"""


def test_a_copy_of_a_self_check_reference_is_flagged_whole_or_lightly_edited():
    """The self-checks' references start with a relative import (``from . import stats``) that an answer cannot
    hold: imports and docstrings are left out of the comparison, so a verbatim copy of ``_band_share_reference`` is
    flagged as a whole copy. A copy with one statement added (band share), or with the scale callable written
    inline (window recursion), is flagged by the statement-level match. An honest answer (the instructor's) is not
    (see the test above)."""
    source = textwrap.dedent(inspect.getsource(grading._band_share_reference))
    body = source.split('"""')[2].replace("    from . import stats\n", "")
    verbatim = "def band_share(core, band):" + body
    assert "import" not in verbatim and "statistical_inefficiency" in verbatim
    assert grader.copied(verbatim) == ["line 1: as in tutorial_pkg.grading._band_share_reference"]
    edited = verbatim.replace("    n_band = band.sum().item()\n",
                              "    n_band = band.sum().item()\n    n_all = len(z := band)\n")
    edited = edited.replace("* len(z)) / n_band", "* n_all) / n_band")
    assert edited.count("\n") == verbatim.count("\n") + 1
    assert grader.copied(edited) == [
        "line 1: 5 of its 7 statements as in tutorial_pkg.grading._band_share_reference"]
    found = grader.copied(_WINDOWS_EDITED)
    assert len(found) == 1 and found[0].startswith("line 1: ") and \
        found[0].endswith("statements as in tutorial_pkg.grading._window_recursion"), found
    # three statements of a reference are below the statement-level minimum: a textbook formula is anybody's
    assert grader.copied(textwrap.dedent('''
        def f(core, band):
            core, band = core.double(), band.double()
            n_band = band.sum().item()
            return (band * core).sum().item() / n_band
        ''')) == []


def test_the_child_refuses_writes_outside_its_folder_processes_and_sockets(tmp_path):
    """The audit hook of the submission's process (grader._lock_down), in a process of its own: writes inside the
    child's folder pass; a write elsewhere, a rename out of it, a new process, a socket and ctypes raise."""
    import subprocess
    import sys
    inside, outside = tmp_path / "child", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    script = f"""
import os, sys
from tutorial_pkg import grader
grader._lock_down({str(inside)!r})
open(os.path.join({str(inside)!r}, "ok.txt"), "w").write("fine")
refused = []
for name, attempt in [
        ("write", lambda: open(os.path.join({str(outside)!r}, "no.txt"), "w")),
        ("os.open", lambda: os.open(os.path.join({str(outside)!r}, "no.txt"), os.O_CREAT | os.O_WRONLY)),
        ("rename", lambda: os.rename(os.path.join({str(inside)!r}, "ok.txt"), os.path.join({str(outside)!r}, "x"))),
        ("process", lambda: __import__("subprocess").run(["true"])),
        ("system", lambda: os.system("true")),
        ("socket", lambda: __import__("socket").socket()),
        ("ctypes", lambda: __import__("ctypes").CDLL(None))]:
    try:
        attempt()
    except PermissionError:
        refused.append(name)
print(",".join(refused))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["write,os.open,rename,process,system,socket,ctypes"]
    assert (inside / "ok.txt").read_text() == "fine" and list(outside.iterdir()) == []


HONEST = {  # right answers whose names happen to be those of package modules: the student's own, not refused
    "a local named guidance": "def cfg(eps_cond, eps_uncond, gamma):\n    guidance = eps_cond - eps_uncond\n"
                              "    return eps_uncond + gamma * guidance\n",
    "an argument named device": "def cfg(eps_cond, eps_uncond, gamma, device=None):\n"
                                "    return gamma * eps_cond + (1 - gamma) * eps_uncond\n",
    "a local named signal": "def cfg(eps_cond, eps_uncond, gamma):\n    signal = eps_cond - eps_uncond\n"
                            "    return eps_uncond + gamma * signal\n",
    "a loop variable named models": "def cfg(eps_cond, eps_uncond, gamma):\n    out = 0\n"
                                    "    for models, w in ((eps_cond, gamma), (eps_uncond, 1 - gamma)):\n"
                                    "        out = out + w * models\n    return out\n",
}


@pytest.mark.parametrize("answer", list(HONEST))
def test_an_honest_answer_that_binds_a_package_name_itself_is_screened_in(answer):
    assert grader.screen(HONEST[answer], PACKAGE) is None
    namespace = {"torch": torch}
    exec(HONEST[answer], namespace)
    assert grading.check_cfg(namespace["cfg"], seed=1).passed


def test_an_answer_finds_no_module_but_torch_math_numpy_and_pyplot():
    """The set-up cell binds importlib, subprocess and sys in the notebook: the answer's namespace holds none."""
    import importlib
    import math
    import subprocess
    import sys
    namespace = {"importlib": importlib, "subprocess": subprocess, "sys": sys, "math": math, "torch": torch}
    grader._run_answer("found = sorted(k for k in dir() if not k.startswith('_'))\n", "test", (), namespace)
    assert namespace["found"] == ["math", "torch"]


def test_the_child_warms_up_training_only_where_a_cell_trains():
    assert grader._trains([("a2-14", "def train_net(p, seed):\n    ...", None)])
    assert grader._trains([("x", "opt = torch.optim.Adam(net.parameters())", ["cfg"])])
    assert not grader._trains([("a1-04", "def guided_eps(eps, grad, s, alpha_bar):\n    return eps", ["x"])])


def _with_added_cell(template: dict, answers: dict, after: str, cell: dict) -> dict:
    """``template`` with ``answers`` (cell id -> source) filled in and ``cell`` added after the cell ``after``."""
    nb = json.loads(json.dumps(template))
    for c in nb["cells"]:
        if c.get("id") in answers:
            c["source"] = answers[c["id"]]
    k = next(i for i, c in enumerate(nb["cells"]) if c.get("id") == after)
    nb["cells"].insert(k + 1, cell)
    return nb


def test_a_name_defined_in_an_added_cell_is_named_in_the_feedback(tmp_path):
    """Only the answer cells are graded: a correct answer that calls a helper of a cell the student added raises
    NameError, and the feedback says where that name was defined and what to do."""
    helper = {"cell_type": "code", "id": "my-helper", "metadata": {}, "outputs": [], "execution_count": None,
              "source": "def combine(c, u, g):\n    return g * c + (1 - g) * u\n"}
    nb = _with_added_cell(TEMPLATE, {"a2-07": "def cfg(eps_cond, eps_uncond, gamma):\n"
                                              "    return combine(eps_cond, eps_uncond, gamma)\n"}, "a2-06", helper)
    (tmp_path / "s.ipynb").write_text(json.dumps(nb))
    graded = grader.grade_notebook(tmp_path / "s.ipynb", seed=3)
    assert grading_folders.column(graded["row"], "CFG combination (2)") == 0
    assert ("NameError: name 'combine' is not defined. `combine` is defined in cell my-helper (added after a2-06), "
            "a cell that the student added: only the answer cells are graded") in graded["feedback"]
    # a NameError on a name that no added cell defines gets no such sentence
    (tmp_path / "s.ipynb").write_text(json.dumps(_with_added_cell(TEMPLATE, {"a2-07": "def cfg(eps_cond, eps_uncond, gamma):\n"
                                                                   "    return other(eps_cond)\n"}, "a2-06", helper)))
    graded = grader.grade_notebook(tmp_path / "s.ipynb", seed=3)
    assert "NameError: name 'other'" in graded["feedback"] and "a cell that the student added" not in graded["feedback"]


def test_a_written_answer_in_an_added_markdown_cell_is_left_to_grade_with_its_text(tmp_path):
    """A written answer put in markdown cells added after the answer cell, which still holds "*Your answer here.*":
    the column is left blank (to grade, not 0) and the added cells' text is in the feedback under that task, with
    where it came from. Added cells after another cell do not count for it."""
    nb = json.loads((ROOT / "book" / "assignments" / "a3_energy_target.ipynb").read_text())
    first = {"cell_type": "markdown", "id": "added-1", "metadata": {}, "source": "**Answer.** The error falls"}
    second = {"cell_type": "markdown", "id": "added-2", "metadata": {}, "source": "and the distance grows."}
    nb = _with_added_cell(_with_added_cell(nb, {}, "a3-11", second), {}, "a3-11", first)
    (tmp_path / "s.ipynb").write_text(json.dumps(nb))
    graded = grader.grade_notebook(tmp_path / "s.ipynb", seed=1)
    assert grading_folders.column(graded["row"], "Think! error against distance (6)") == ""
    section = graded["feedback"].split("## Think! error against distance")[1]
    assert "the answer cell a3-11 holds no answer, but the student added markdown cell(s) next to it" in section
    assert section.index("From cell added-1 (added below a3-11)") < section.index("The error falls") < \
        section.index("From cell added-2 (added below a3-11)") < section.index("and the distance grows.")
    # a markdown cell added elsewhere is not taken as this answer
    nb = _with_added_cell(json.loads((ROOT / "book" / "assignments" / "a3_energy_target.ipynb").read_text()), {},
                          "a3-10", first)
    (tmp_path / "s.ipynb").write_text(json.dumps(nb))
    graded = grader.grade_notebook(tmp_path / "s.ipynb", seed=1)
    assert grading_folders.column(graded["row"], "Think! error against distance (6)") == 0


def test_a_written_answer_beside_the_placeholder_or_in_a_cell_added_above_is_left_to_grade(tmp_path):
    """Two ordinary layouts of an honest answer: the placeholder kept with the answer typed below it in the same cell,
    and the answer in a markdown cell inserted above the answer cell (which still holds the placeholder). Both are
    left blank to grade, never 0, and the text is in the feedback under that task."""
    base = json.loads((ROOT / "book" / "assignments" / "a3_energy_target.ipynb").read_text())
    task = "Think! error against distance (6)"
    kept = _with_added_cell(base, {"a3-11": grader.ANSWER_MARK + "\n\nMy error falls from 1 to 3."}, "a3-11",
                            {"cell_type": "code", "id": "scratch", "metadata": {}, "outputs": [],
                             "execution_count": None, "source": "x = 1"})
    (tmp_path / "kept.ipynb").write_text(json.dumps(kept))
    graded = grader.grade_notebook(tmp_path / "kept.ipynb", seed=1)
    section = graded["feedback"].split("## Think! error against distance")[1]
    assert grading_folders.column(graded["row"], task) == ""
    assert section.startswith(" (6 points)\nwritten answer, graded by hand\n") and "My error falls" in section
    assert graded["answers"]["a3-11"] == "My error falls from 1 to 3."
    previous = base["cells"][[c.get("id") for c in base["cells"]].index("a3-11") - 1]["id"]
    above = _with_added_cell(base, {}, previous, {"cell_type": "markdown", "id": "mine", "metadata": {},
                                                  "source": "My answer: the distance grows."})
    (tmp_path / "above.ipynb").write_text(json.dumps(above))
    graded = grader.grade_notebook(tmp_path / "above.ipynb", seed=1)
    section = graded["feedback"].split("## Think! error against distance")[1]
    assert grading_folders.column(graded["row"], task) == ""
    assert "From cell mine (added above a3-11)" in section and "My answer: the distance grows." in section
    # an added markdown cell that holds only the placeholder, or nothing, is no answer
    empty = _with_added_cell(base, {}, previous, {"cell_type": "markdown", "id": "mine", "metadata": {},
                                                  "source": grader.ANSWER_MARK})
    (tmp_path / "empty.ipynb").write_text(json.dumps(empty))
    assert grading_folders.column(grader.grade_notebook(tmp_path / "empty.ipynb", seed=1)["row"], task) == 0
