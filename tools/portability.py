"""Do the stored outputs hold under other CPU kernels and thread counts? Run nbval under each.

Usage: python tools/portability.py [--configs native:1 default:1 native:2 default:2] [PATH ...]
(make test-portability; about four times the notebooks' run time, so not part of ``make test``)

Every notebook (default: book/ and instructor/) is executed with nbval once per configuration, a
configuration being PyTorch's CPU kernel set (``native``: the machine's own vectorised kernels;
``default``: the portable ones, ``ATEN_CPU_CAPABILITY=default``) and the number of threads per kernel.
With one thread two notebooks run at once, with two threads one at a time. A checked cell
(``# NBVAL_CHECK_OUTPUT``) must print the stored text under every configuration; the summary lists, per
configuration, the cells that did not. Exit code 1 if any configuration failed.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
OFFLINE = ROOT / "tools" / "offline"
FAILED = re.compile(r"^FAILED (\S+::Cell \d+)", re.M)
SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+,? ?)+) in ([0-9.]+)s", re.M)


def parse_config(text: str) -> tuple[str, int]:
    kernels, _, threads = text.partition(":")
    if kernels not in ("native", "default") or not threads.isdigit() or int(threads) < 1:
        raise argparse.ArgumentTypeError(f"a configuration is KERNELS:THREADS with KERNELS native or default, "
                                         f"got {text!r}")
    return kernels, int(threads)


def run(kernels: str, threads: int, paths: list[str]) -> tuple[int, list[str], str, float]:
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    env.update(OMP_NUM_THREADS=str(threads), PYTHONPATH=str(OFFLINE))
    if kernels == "default":
        env["ATEN_CPU_CAPABILITY"] = "default"
    workers = max(1, (os.cpu_count() or 2) // threads)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
           "-n", str(workers), "--dist", "loadscope", *paths, "-q", "-rf"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    summary = SUMMARY.findall(log)
    return proc.returncode, FAILED.findall(log), summary[-1][0] if summary else "no summary", time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["book", "instructor"])
    parser.add_argument("--configs", nargs="+", type=parse_config,
                        default=[("native", 1), ("default", 1), ("native", 2), ("default", 2)])
    args = parser.parse_args(argv)
    failed_any = False
    for kernels, threads in args.configs:
        code, failed, summary, seconds = run(kernels, threads, args.paths)
        failed_any |= code != 0
        print(f"{kernels:>7s} kernels, {threads} thread(s): {summary} ({seconds:.0f} s)", flush=True)
        for item in failed:
            print(f"    FAILED {item}", flush=True)
    print("portability: every configuration passed" if not failed_any else "portability: some configuration failed")
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
