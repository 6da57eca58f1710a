"""Run every CPU benchmark of the book's cost page and write the results: ``make bench``.

Each benchmark measures within this one run and prints ratios with their 95 % intervals, and the absolute
times beside them; none asserts a time. Targets are printed with PASS (the interval lies at or below the
target), MISS (above it) or "not resolved" (it straddles the target). Writes ``benchmarks/results/cpu.json`` and ``cpu.png``, and the
table and figure that ``book/costs.md`` includes (``book/_generated/``).

    python benchmarks/run.py [--threads N] [--repeats R] [--only 1 2 3 4]

A run with ``--only`` prints its ratios and writes nothing, so the files always hold one whole run.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import classifier_cost  # noqa: E402
import methods_cost  # noqa: E402
import molecule_cost  # noqa: E402
import cfg_cost  # noqa: E402
import common  # noqa: E402
import overhead  # noqa: E402
import report  # noqa: E402
import vs_diffusers  # noqa: E402
from timing import set_threads  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1, as the notebooks)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per comparison (default 5)")
    parser.add_argument("--only", type=int, nargs="+", choices=sorted(report.PARTS),  # noqa: E501
                        help="run only these parts, print the ratios and write no file")
    args = parser.parse_args(argv)
    parts = args.only or sorted(report.PARTS)

    threads = set_threads(args.threads)
    # make exports MAKELEVEL to the commands it runs
    command = "make bench" if os.environ.get("MAKELEVEL") else " ".join(["python benchmarks/run.py", *sys.argv[1:]])
    info = {"date": report.now(), "command": command.strip(), "machine": report.machine(threads),
            "repeats": args.repeats}
    print(f"{info['date']}: {report.describe(info['machine'])}; OMP_NUM_THREADS={info['machine']['omp_num_threads']}")
    runners = {1: overhead.run, 2: cfg_cost.run, 3: classifier_cost.run, 4: vs_diffusers.run,
               5: lambda repeats: methods_cost.run(repeats=repeats, part=5),
               6: lambda repeats: methods_cost.run(repeats=repeats, part=6),
               7: lambda repeats: methods_cost.run(repeats=repeats, part=7), 8: molecule_cost.run}
    results = []
    start = time.perf_counter()
    for part in parts:
        print(f"\n{part}. {report.PARTS[part]}")
        if part == 4 and not vs_diffusers.available():
            print("  skipped: diffusers is not installed (pip install -e '.[bench]')")
            continue
        if part == 8 and not molecule_cost.available():
            print("  skipped: OpenMM is not installed")
            continue
        for r in runners[part](repeats=args.repeats):
            common.show(r)
            results.append(r)
    info["seconds"] = round(time.perf_counter() - start, 1)
    missed = [r["label"] for r in results if r["verdict"] == "MISS"]
    print(f"\n{len(results)} ratios in {info['seconds']:.0f} s; targets missed: {len(missed)}"
          + "".join(f"\n  MISS {m}" for m in missed))
    if not args.only:
        report.write_all(results, info, out_dir=HERE / "results", book_dir=ROOT / "book" / "_generated")
        print("wrote benchmarks/results/cpu.json and cpu.png, book/_generated/costs_table.md and costs.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
