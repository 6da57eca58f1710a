"""The notebooks of ``make test``, executed once: the Colab path, under two CPU kernel sets.

Usage: python tools/colab_path.py [--portable-all]   (make test-colab)

A notebook opened from the repository in Colab sees no checkout: only the notebook, and the package
that its first cell finds importable or installs. So this script

1. builds a wheel of the project from a clean copy of what the wheel is made of;
2. makes a fresh virtual environment and installs the wheel into it, not editable and without its
   dependencies. The dependencies (with the ``molecules`` extra, OpenMM, that ``make setup`` installs)
   come from the project's ``.venv`` through a path file, so that the
   gigabyte of torch and its company is not installed a second time; ``tutorial_pkg`` itself must come
   from the wheel, which is checked;
3. copies every notebook of ``book/`` and ``instructor/`` alone into an empty folder and executes them
   there with nbval, two at a time, one thread each, with the offline guard of ``tools/offline``, the longest
   first (by the run times stored in their cells' metadata), so that neither worker waits long at the end;
4. fails if a notebook fails, if the package imported is not the installed wheel, or if a notebook
   installed anything (its first cell must find tutorial_pkg and do nothing).

The stored outputs come from ``make execute``, on the machine's own (vectorised) CPU kernels. The
notebooks named in ``PORTABLE`` run here under PyTorch's portable kernels (``ATEN_CPU_CAPABILITY=default``,
no SIMD), the others under the native ones, so that one run checks the stored outputs against two kernel
sets at the cost of one. Portable kernels are about twice as slow for training small networks and about 1.6
times for sampling with them, so the portable share is the notebooks whose time goes elsewhere (exact
models, small batches): the reading-numbers page and assignments 1, 3, 5, 6 and 7 (every chapter runs
natively, within make test's ten minutes); ``--portable-all`` runs
every notebook under them, and ``make test-portability`` runs every notebook under both sets and one and
two threads.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ("book", "instructor")
OFFLINE = ROOT / "tools" / "offline"

# Executed under the portable kernels in `make test`: they spend little of their time in network passes, so the
# slower kernels cost least there (see the module docstring). Every other notebook runs natively.
PORTABLE = (
    "reading_numbers.ipynb",
    "a1_classifier_guidance.ipynb",
    "a3_energy_target.ipynb",
    "a5_guidance_through_x0.ipynb",
    "a6_sampling_the_guided_target.ipynb",
    "a7_alanine_dipeptide.ipynb",
)

# The conftest of the folder the notebooks run in: it sets each notebook's CPU kernel set in the
# environment before nbval starts that notebook's kernel (the kernel inherits the environment).
CONFTEST = '''
import os
import pytest

PORTABLE = {portable!r}


ORDER = {order!r}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.path.name in PORTABLE:
        os.environ["ATEN_CPU_CAPABILITY"] = "default"
    else:
        os.environ.pop("ATEN_CPU_CAPABILITY", None)


def pytest_collection_modifyitems(items):
    # the longest notebooks first, each one's cells in their order (a stable sort), so that the last notebooks
    # handed to the two workers are short ones and neither waits long for the other at the end
    items.sort(key=lambda item: ORDER.get(item.path.relative_to(item.session.path).as_posix(), len(ORDER)))
'''


def stored_seconds(path: pathlib.Path) -> float:
    """The seconds a notebook's cells took when its outputs were stored (nbclient records each cell's start and end
    in its metadata), 0 where it recorded none."""
    import datetime
    import json
    total = 0.0
    for cell in json.loads(path.read_text()).get("cells", []):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if start and end:
            total += (datetime.datetime.fromisoformat(end.replace("Z", "+00:00"))
                      - datetime.datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
    return total


def step(name, cmd, **kwargs):
    start = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], check=True, **kwargs)
    print(f"colab path: {name}: {time.perf_counter() - start:.1f} s", flush=True)
    return result


def notebooks() -> list[pathlib.Path]:
    found = [p for folder in FOLDERS for p in sorted((ROOT / folder).rglob("*.ipynb"))
             if ".ipynb_checkpoints" not in p.parts]
    if not found:
        sys.exit("colab path: book/ holds no notebook")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--portable-all", action="store_true", help="run every notebook under the portable kernels")
    args = parser.parse_args(argv)
    paths = notebooks()
    names = [p.name for p in paths]
    portable = tuple(names) if args.portable_all else tuple(n for n in names if n in PORTABLE)
    unknown = sorted(set(PORTABLE) - set(names))
    if unknown:
        sys.exit(f"colab path: PORTABLE names notebooks that do not exist: {unknown}")

    with tempfile.TemporaryDirectory(prefix="colab-path-") as tmp:
        tmp = pathlib.Path(tmp)
        # build from a copy of what the wheel is made of, so stale files in build/ cannot slip in
        src = tmp / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(ROOT / "tutorial_pkg", src / "tutorial_pkg",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        step("wheel", [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp / "dist", src])
        (wheel,) = (tmp / "dist").glob("tutorial_pkg-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            stray = [n for n in archive.namelist() if not n.startswith(("tutorial_pkg/", "tutorial_pkg-"))
                     or n.endswith(".ipynb")]
        if stray:  # the instructor's solutions, or any notebook, must not ship with the package
            sys.exit(f"colab path: the wheel holds files outside the package: {stray[:5]}")

        venv = tmp / "venv"
        python = venv / "bin" / "python"
        # without pip of its own: this interpreter's pip installs into it (pip --python), a second or so instead of
        # the few seconds that ensurepip takes
        step("fresh venv", [sys.executable, "-m", "venv", "--without-pip", venv])
        # the dependencies, from this interpreter's site-packages (a path file adds the folder to sys.path
        # without running its .pth files, so the editable install of tutorial_pkg stays out of sight)
        site = pathlib.Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                           check=True, capture_output=True, text=True).stdout.strip())
        (site / "project-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
        pip = [sys.executable, "-m", "pip", "--python", python]
        step("install the wheel", [*pip, "install", "--quiet", "--no-deps", wheel])

        work = tmp / "notebooks"
        for nb in paths:
            target = work / nb.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(nb, target)
        # the notebooks by their stored run times, longest first (what --no-loadscope-reorder keeps: pytest-xdist
        # would otherwise hand them out by their number of cells)
        order = {nb.relative_to(ROOT).as_posix(): k
                 for k, nb in enumerate(sorted(paths, key=lambda nb: -stored_seconds(nb)))}
        (work / "conftest.py").write_text(CONFTEST.format(portable=portable, order=order))

        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "ATEN_CPU_CAPABILITY")}
        env["OMP_NUM_THREADS"] = "1"          # two kernels on two cores, as when the outputs were stored
        env["PYTHONPATH"] = str(OFFLINE)      # every kernel refuses network connections but the loopback
        # where tutorial_pkg would be imported from, found without importing it (torch's import takes seconds; every
        # notebook imports it anyway)
        where = step("import check", [python, "-c", "import importlib.util; print(importlib.util.find_spec('tutorial_pkg').origin)"],
                     cwd=work, env=env, stdout=subprocess.PIPE, text=True).stdout.strip()
        if not pathlib.Path(where).is_relative_to(venv):
            sys.exit(f"colab path: tutorial_pkg was imported from {where}, not from the installed wheel")
        # the molecules extra (OpenMM, chapter 11) must be importable there too, as the set-up installs it
        step("molecules extra", [python, "-c", "import openmm"], cwd=work, env=env)

        freeze = [*pip, "freeze", "--all", "--path", site]
        before = subprocess.run(freeze, check=True, capture_output=True, text=True, env=env).stdout
        print(f"colab path: portable kernels for {len(portable)} of {len(paths)} notebooks: {', '.join(portable)}")
        step(f"{len(paths)} notebooks", [python, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
                                         "--nbval-current-env", "-n", "2", "--dist", "loadscope", "--no-loadscope-reorder", ".",
                                         "--durations=0"],
             cwd=work, env=env)
        after = subprocess.run(freeze, check=True, capture_output=True, text=True, env=env).stdout
        if after != before:
            new = sorted(set(after.splitlines()) - set(before.splitlines()))
            sys.exit(f"colab path: the notebooks installed packages: {new}")
    print(f"colab path: {len(paths)} notebooks ran against {wheel.name} in a fresh venv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
