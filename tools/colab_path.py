"""The Colab path, proved locally: each notebook runs beside nothing but an installed wheel.

Usage: python tools/colab_path.py   (make test-colab)

A notebook opened from the repository in Colab sees no checkout: only the notebook, and the package
that its first cell finds importable or installs. So this script builds a wheel of the project,
installs it (not editable) into a fresh virtual environment with nbval, copies every notebook of
book/ into an empty folder and executes them there with nbval. It fails if a notebook fails, if the
package imported is not the installed wheel, or if a notebook installed anything (its first cell must
find tutorial_pkg and do nothing). constraints.txt keeps torch to the local CPU build; pip's cache
is reused.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
# what executes the notebooks, besides the wheel (the same ranges as the test extra of pyproject.toml)
RUNNER = ["nbval>=0.11", "pytest-xdist>=3.5"]


def step(name, cmd, **kwargs):
    start = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], check=True, **kwargs)
    print(f"colab path: {name}: {time.perf_counter() - start:.1f} s", flush=True)
    return result


def main() -> int:
    notebooks = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not notebooks:
        sys.exit("colab path: book/ holds no notebook")
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

        venv = tmp / "venv"
        python = venv / "bin" / "python"
        step("fresh venv", [sys.executable, "-m", "venv", venv])
        step("install the wheel", [python, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", wheel, *RUNNER])

        work = tmp / "notebooks"
        for nb in notebooks:
            target = work / nb.relative_to(ROOT / "book")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(nb, target)

        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["OMP_NUM_THREADS"] = "1"  # two kernels on two cores, as in make test-notebooks
        where = step("import check", [python, "-c", "import tutorial_pkg; print(tutorial_pkg.__file__)"],
                     cwd=work, env=env, stdout=subprocess.PIPE, text=True).stdout.strip()
        if not pathlib.Path(where).is_relative_to(venv):
            sys.exit(f"colab path: tutorial_pkg was imported from {where}, not from the installed wheel")

        freeze = [python, "-m", "pip", "freeze", "--all"]
        before = subprocess.run(freeze, check=True, capture_output=True, text=True, env=env).stdout
        step(f"{len(notebooks)} notebooks", [python, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
                                             "--nbval-current-env", "-n", "2", "--dist", "loadscope", "."],
             cwd=work, env=env)
        after = subprocess.run(freeze, check=True, capture_output=True, text=True, env=env).stdout
        if after != before:
            new = sorted(set(after.splitlines()) - set(before.splitlines()))
            sys.exit(f"colab path: the notebooks installed packages: {new}")
    print(f"colab path: {len(notebooks)} notebooks ran against {wheel.name} in a fresh venv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
