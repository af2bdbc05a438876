"""The indirect-effect benchmark's smoke mode: it runs, the batched sweep agrees with the
reference's loop on every head and prompt, and it leaves its results file alone."""

import math

from bench_cases import run_smoke

from benchmarks import task_vectors as bench


def test_smoke_mode_runs_and_agrees(capsys):
    row = run_smoke(bench)
    assert row["same top head"] and row["diff"] <= 1e-5
    assert math.isfinite(row["loop_s"] / row["lib_s"]) and row["loop passes"] == 4 * (1 + 3 * 4)
    assert "| model" in capsys.readouterr().out
