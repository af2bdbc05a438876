"""The direction-selection benchmark's smoke mode: it runs, the batched selection agrees with the
reference's loop on every score and on the winner, and it leaves its results file alone."""

import math

from bench_cases import run_smoke

from benchmarks import directions as bench


def test_smoke_mode_runs_and_agrees(capsys):
    row = run_smoke(bench)
    assert row["same candidate"] and row["diff"] <= 1e-5
    assert math.isfinite(row["loop_s"] / row["lib_s"]) and row["loop passes"] == 3 * 2 * 3
    assert "| model" in capsys.readouterr().out
