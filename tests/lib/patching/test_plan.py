"""lib.patching.plan: how a sweep is split into chunks changes how many rows each matrix
multiply sees, never the results."""

import pytest
import torch
from patching_cases import get_model, runs

from lib import patching


@pytest.mark.parametrize(
    "site, by", [("resid_pre", "layer_pos"), ("mlp_out", "layer_pos"), ("z", "head_pos"), ("z", "head")]
)
def test_chunks_do_not_change_results(site, by):
    model = get_model("gpt2-arch")
    corrupted, cache, metric = runs(model, batch=4)
    whole_stats: dict = {}
    whole = patching.patch_sweep(model, corrupted, cache, site, by, metric, stats=whole_stats)
    split_stats: dict = {}
    split = patching.patch_sweep(
        model, corrupted, cache, site, by, metric, memory_budget=1, stats=split_stats
    )
    computed = split_stats["patches"] - split_stats["skipped"]
    assert split_stats["chunks"] == split_stats["unembeds"] == computed  # one patch at a time
    assert whole_stats["unembeds"] < computed and whole_stats["chunks"] <= computed
    # a chunk changes only how many rows each matrix multiply sees: equal up to BLAS rounding
    torch.testing.assert_close(split, whole, atol=1e-6, rtol=0)
