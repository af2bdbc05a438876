"""The patching benchmark's smoke mode: it runs, lib agrees with TransformerLens, the ratios are
positive numbers, and it leaves benchmarks/RESULTS.md alone."""

import math

from bench_cases import run_smoke

from benchmarks import patching as bench


def test_smoke_mode_runs_and_agrees(capsys):
    rows = run_smoke(bench)
    out = capsys.readouterr().out
    assert {r.sweep for r in rows} == set(bench.SWEEPS)
    for r in rows:
        assert r.max_diff <= 1e-4, r
        for ratio in (r.ratio, r.ideal, r.ratio_noskip, r.ideal_noskip):
            assert math.isfinite(ratio) and ratio > 0, r
    assert any(line.startswith("| model") and "max abs diff" in line for line in out.splitlines())
    assert out.strip().splitlines()[-1].startswith("head x position on ")


def test_write_results_gives_title_command_machine_text_and_notes(tmp_path):
    path = tmp_path / "RESULTS-x.md"
    bench.write_results(path, "X benchmark results", "benchmarks.x", "cpu", "| a |", "Columns: a.")
    lines = path.read_text().splitlines()
    assert lines[0] == "# X benchmark results"
    assert lines[2] == "Written by `python -m benchmarks.x`; do not edit by hand."
    assert lines[4].startswith("- CPU: ") and lines[-2:] == ["| a |", "Columns: a."]
