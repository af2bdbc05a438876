"""The GRPO benchmark's smoke mode: the cached and recomputed rollouts sample the same tokens, the
throughput ratio is finite, the optimizer-state sizes are what the mask's count says, and it
leaves its results file alone."""

import math

from bench_cases import run_smoke

from benchmarks import grpo as bench
from lib.rl.masks import random_mask


def test_smoke_mode_runs_and_agrees(capsys):
    out = run_smoke(bench)
    assert out["same tokens"] and out["tokens"] > 0
    assert math.isfinite(out["nocache_s"] / out["cache_s"]) and out["cache_s"] > 0
    # the mask, rebuilt: every tensor keeps int(numel * 1%) entries
    params = dict(bench.tiny_model("cpu").named_parameters())
    mask = random_mask({n: p.shape for n, p in params.items()}, bench.KEEP, bench.SEED)
    entries = sum(int(m.sum()) for m in mask.values())
    assert out["entries"] == entries == sum(int(p.numel() * bench.KEEP) for p in params.values())
    n = sum(p.numel() for p in params.values())
    assert out["adamw_bytes"] == out["torch_adamw_bytes"] == 2 * 4 * n
    # two float32 moments and an int32 index per masked entry
    assert out["masked_bytes"] == entries * (4 + 4 + 4)
    # 1 / keep = 100x for the moments alone, less where a small tensor's 1% rounds down; the
    # index takes a third of the masked state
    assert 100 <= 2 * 4 * n / (8 * entries) <= 110
    assert math.isclose(out["adamw_bytes"] / out["masked_bytes"], 2 * n / (3 * entries))
    assert "| model" in capsys.readouterr().out
