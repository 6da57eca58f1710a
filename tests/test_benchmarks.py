"""The benchmark scripts' own logic (benchmarks/): log parsing, verdicts, the generated table, and the
diffusers loops that the cost comparison times. No timing is asserted anywhere."""

import pathlib
import sys

import numpy as np
import pytest
import torch

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import notebook_budget  # noqa: E402
import report  # noqa: E402
import timing  # noqa: E402

LOG = """\
============================= slowest durations ==============================
40.12s call     book/06_energy_conditioned_generation.ipynb::Cell 12
3.10s setup    book/01_score_based_diffusion.ipynb::Cell 0
10.00s call     book/01_score_based_diffusion.ipynb::Cell 3
0.01s teardown book/01_score_based_diffusion.ipynb::Cell 3
(120 durations < 0.005s hidden.  Use -vv to show these durations.)
======================= 95 passed in 160.23s (0:02:40) ========================
"""


def test_notebook_budget_sums_each_notebooks_cells():
    seconds, cells, total, outcome = notebook_budget.parse(LOG)
    assert seconds == pytest.approx({"book/06_energy_conditioned_generation.ipynb": 40.12,
                                     "book/01_score_based_diffusion.ipynb": 13.11})
    assert cells == {"book/06_energy_conditioned_generation.ipynb": 1, "book/01_score_based_diffusion.ipynb": 2}
    assert total == 160.23 and outcome == "95 passed"


@pytest.mark.parametrize("interval, target, floor, expected", [
    ((1.05, 1.0, 1.1), 1.1, None, "PASS"), ((1.12, 1.08, 1.2), 1.1, None, "not resolved"),
    ((1.2, 1.15, 1.3), 1.1, None, "MISS"), ((3.0, 2.9, 3.1), None, None, "info"),
    ((0.95, 0.9, 0.98), 1.05, 1.0, "NOISE"), ((0.99, 0.95, 1.02), 1.05, 1.0, "PASS")])
def test_verdict_comes_from_the_interval(interval, target, floor, expected):
    assert timing.verdict(interval, target, floor) == expected


def test_log_interval_is_the_t_interval_of_the_log_ratios():
    from scipy import stats as sps
    values = [1.1, 1.3, 1.2, 1.25, 1.15]
    mean, low, high = timing.log_interval(values)
    logs = np.log(values)
    lo, hi = sps.t.interval(0.95, len(logs) - 1, loc=logs.mean(), scale=sps.sem(logs))
    assert (mean, low, high) == pytest.approx((np.exp(logs.mean()), np.exp(lo), np.exp(hi)))


def test_interleaved_adds_repeats_until_the_target_is_resolved():
    calls = []

    def slow():
        calls.append(1)
        sum(range(3000))

    m = timing.interleaved({"a": (lambda: None, 1), "b": (slow, 1)}, {"b/a": lambda r: r["b"] / r["a"]}, repeats=3,
                           targets={"b/a": 1e12}, max_repeats=9)
    assert m.repeats == 3                          # resolved at once: far below the target
    m = timing.interleaved({"a": (lambda: sum(range(3000)), 1), "b": (lambda: sum(range(3000)), 1)},
                           {"b/a": lambda r: r["b"] / r["a"]}, repeats=3, targets={"b/a": 1.0}, max_repeats=7)
    assert 3 <= m.repeats <= 7 and (m.repeats == 7 or not timing.straddles(m.intervals["b/a"], 1.0))


def test_interleaved_ratios_are_medians_of_per_repeat_ratios():
    m = timing.interleaved({"a": (lambda: None, 1), "b": (lambda: sum(range(2000)), 1)},
                           {"b/a": lambda r: r["b"] / r["a"]}, repeats=5)
    median, q25, q75 = m.ratios["b/a"]
    assert q25 <= median <= q75 and set(m.times) == {"a", "b"}


def test_report_writes_json_plot_table_and_book_copy(tmp_path):
    info = {"date": "2026-01-01 00:00 UTC", "command": "make bench", "machine": report.machine(1), "seconds": 1.0}
    results = [{"part": 1, "key": "k", "label": "DDIM 50 steps, book MLP (hidden 64, depth 2), batch 8", "ratio": 1.05,
                "q25": 1.0, "q75": 1.1, "low": 1.01, "high": 1.09, "repeats": 5, "target": 1.1, "floor": 1.0,
                "verdict": "PASS", "times_s": {"forward": 1e-3}, "note": "a | b; predicts 1 + loop / forward = 1.020"},
               {"part": 1, "key": "k2", "label": "DDPM 1000 steps, book MLP (hidden 64, depth 2), batch 8",
                "ratio": 0.97, "q25": 0.95, "q75": 1.0, "low": 0.95, "high": 0.99, "repeats": 5, "target": 1.1,
                "floor": 1.0, "verdict": "NOISE", "times_s": {"forward": 1e-3},
                "note": "predicts 1 + loop / forward = 1.030"}]
    report.write_all(results, info, out_dir=tmp_path / "results", book_dir=tmp_path / "book")
    table = (tmp_path / "book" / "costs_table.md").read_text().splitlines()
    assert "`make bench`" in table[0] and "2026-01-01" in table[0]
    assert table[-2].startswith("| 1 | DDIM 50 steps") and "a \\| b" in table[-2] and "1.00 ms" in table[-2]
    assert "| 0.97 [0.95, 0.99] (5) | 1.00–1.10 | NOISE |" in table[-1]
    reading = (tmp_path / "book" / "costs_reading.md").read_text()
    # the conclusions follow the table: the ratio below its floor is called noise, with the loop's prediction
    assert reading.startswith("From the run of 2026-01-01 00:00 UTC")
    assert "1 PASS, 1 NOISE" in reading and "below the physical floor" in reading and "1.020 to 1.030" in reading
    assert (tmp_path / "results" / "cpu.json").exists()
    assert (tmp_path / "book" / "costs.png").read_bytes() == (tmp_path / "results" / "cpu.png").read_bytes()


@pytest.fixture
def one_thread():
    """Tiny batches on a busy machine: one thread, as the benchmarks use, avoids waiting on the others."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_the_timed_diffusers_loops_give_the_packages_samples(sampler, one_thread):
    pytest.importorskip("diffusers")
    import common
    import vs_diffusers
    from tutorial_pkg import sampling

    ddpm, ddim = vs_diffusers._schedulers()
    net = common.eps_net("book MLP (hidden 64, depth 2)")

    def model(x, t, cond):  # a contraction towards 0, so that the samples stay data-sized
        return 0.5 * x + 0.01 * net(x, t, None)

    s, shape = common.schedule(), (16, 2)
    if sampler == "ddpm":
        ours = sampling.ddpm_sample(model, shape, s, generator=common.generator())
        theirs = vs_diffusers.diffusers_ddpm(ddpm, model, shape, common.generator())
    else:
        ours = sampling.ddim_sample(model, shape, s, num_steps=common.DDIM_STEPS, generator=common.generator())
        theirs = vs_diffusers.diffusers_ddim(ddim, model, shape, common.generator())
    assert torch.allclose(ours, theirs, rtol=vs_diffusers.RTOL, atol=vs_diffusers.ATOL)


def test_the_costs_page_shows_one_run():
    """The table, the reading and the raw record that book/costs.md shows were written by the same `make bench`
    run: the same date, and every ratio of the record in the table, with its interval and verdict."""
    import json
    root = BENCH.parent
    record = json.loads((root / "benchmarks" / "results" / "cpu.json").read_text())
    table = (root / "book" / "_generated" / "costs_table.md").read_text()
    reading = (root / "book" / "_generated" / "costs_reading.md").read_text()
    assert table.startswith(f"Measured {record['date']} ") and reading.startswith(f"From the run of {record['date']} ")
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(record["results"])
    for row, r in zip(rows, record["results"]):
        assert f"| {report.ratio_text(r)} |" in row and f"| {r['verdict']} |" in row, (row, r)
    assert reading == f"From the run of {record['date']} (`{record['command']}`):\n\n" + report.reading(record["results"])
