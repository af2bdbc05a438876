"""The patching benchmark's smoke mode: it runs, lib agrees with TransformerLens, the ratios are
positive numbers, and it leaves benchmarks/RESULTS.md alone."""

import math

import torch

from benchmarks import patching as bench


def test_smoke_mode_runs_and_agrees(capsys):
    before = bench.RESULTS.read_text() if bench.RESULTS.exists() else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = bench.main(["--smoke"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert {r.sweep for r in rows} == set(bench.SWEEPS)
    for r in rows:
        assert r.max_diff <= 1e-4, r
        for ratio in (r.ratio, r.ideal, r.ratio_noskip, r.ideal_noskip):
            assert math.isfinite(ratio) and ratio > 0, r
    assert any(line.startswith("| model") and "max abs diff" in line for line in out.splitlines())
    assert out.strip().splitlines()[-1].startswith("head x position on ")
    assert (bench.RESULTS.read_text() if bench.RESULTS.exists() else None) == before
