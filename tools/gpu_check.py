"""The GPU check, as one prepared run: every notebook on CUDA, then the GPU benchmark.

Usage: python tools/gpu_check.py [--skip-notebooks] [--timeout 600]   (make test-gpu)

On a machine with an NVIDIA GPU and a CUDA build of torch:

1. executes every notebook of ``book/`` and ``instructor/`` with nbclient, each in a fresh kernel and
   from a copy (the stored outputs are not touched and not compared: another device prints other
   numbers). ``tutorial_pkg.default_device()`` picks CUDA there, so the chapters put their networks and
   samples on the GPU; every ``assert`` of the chapters must hold;
2. runs ``benchmarks/gpu.sh`` (samples per second of 50-step DDIM with CFG, ``benchmarks/gpu.py``);
3. writes what it measured to ``benchmarks/results/gpu.json`` and the table that the cost page
   (``book/costs.md``) includes, ``book/_generated/gpu_table.md``.

Without CUDA it says so and exits 2, writing nothing. Exit code 1 if a notebook failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "gpu.json"
TABLE = ROOT / "book" / "_generated" / "gpu_table.md"

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from execute_notebooks import notebooks  # noqa: E402  (the same notebook discovery as `make execute`)


def run_notebook(path: pathlib.Path, timeout: int) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:      # run beside nothing, as on Colab
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
            status, error = "passed", ""
        except CellExecutionError as err:
            status, error = "failed", str(err).strip().splitlines()[-1][:300]
    return {"notebook": str(path.relative_to(ROOT)), "status": status, "seconds": round(time.perf_counter() - start, 1),
            "error": error}


def write_table(info: dict) -> str:
    lines = [f"Measured {info['date']} with `make test-gpu` on {info['device']}, torch {info['torch']} "
             f"(CUDA {info['cuda']}).", ""]
    if info["notebooks"]:
        lines += ["| Notebook | On CUDA | Wall time |", "|---|---|---|"]
        lines += [f"| `{r['notebook']}` | {r['status']}{': ' + r['error'] if r['error'] else ''} | {r['seconds']:.0f} s |"
                  for r in info["notebooks"]]
        lines.append("")
    rows = info.get("throughput", {}).get("results", [])
    if rows:
        lines += [f"50-step DDIM with CFG ($\\gamma$ = {info['throughput']['gamma']:g}), batch "
                  f"{info['throughput']['batch']}:", "",
                  "| Network | Mode | CFG samples/s | CFG / conditional only |", "|---|---|---|---|"]
        lines += [f"| {r['net']} | {r['mode']} | {r['cfg_samples_per_s']:,.0f} | {r['cfg_over_cond']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-notebooks", action="store_true", help="only the benchmark")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(f"gpu check: no CUDA device visible to torch {torch.__version__}; nothing was run or written. "
              "Run `make test-gpu` on a machine with an NVIDIA GPU and a CUDA build of torch.")
        return 2
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
            "notebooks": []}
    if not args.skip_notebooks:
        for path in notebooks(["book", "instructor"]):
            row = run_notebook(path, args.timeout)
            info["notebooks"].append(row)
            print(f"gpu check: {row['notebook']}: {row['status']} in {row['seconds']:.0f} s {row['error']}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "throughput.json"
        env = {**os.environ, "PYTHON": sys.executable}
        subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--out", str(out)], check=True, cwd=ROOT, env=env)
        info["throughput"] = json.loads(out.read_text())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(info, indent=2) + "\n")
    TABLE.write_text(write_table(info))
    print(f"gpu check: wrote {RESULTS.relative_to(ROOT)} and {TABLE.relative_to(ROOT)}")
    failed = [r["notebook"] for r in info["notebooks"] if r["status"] != "passed"]
    if failed:
        print(f"gpu check: {len(failed)} notebook(s) failed on CUDA: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
