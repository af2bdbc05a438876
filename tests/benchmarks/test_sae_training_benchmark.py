"""The SAE-training benchmark's smoke mode: both paths train the requested tokens, the throughput
ratio is what the table reports, both SAEs learn, and it leaves its results file alone."""

import math

from bench_cases import run_smoke

from benchmarks import sae_training as bench
from lib import language
from lib.saes import artifacts

# explained variance on the held-out rows at smoke size (40 steps): measured 0.41 (book) and 0.37
# (SAELens); the book's SAE before training has 0.01
VARIANCE_FLOOR = 0.3


def test_smoke_mode_trains_both_paths_comparably(capsys):
    out = run_smoke(bench)
    spec, n_rows = bench.SMOKE
    book, lens = out["book"], out["saelens"]
    assert out["requested_tokens"] == spec.steps * spec.batch_size
    assert book["tokens"] == lens["tokens"] == out["requested_tokens"]
    # the book runs the model once over the rows; SAELens runs it again for every epoch
    assert book["rows"] == n_rows and lens["rows"] > n_rows
    speeds = [m["tokens"] / m["s"] for m in (book, lens)]
    assert all(math.isfinite(v) and v > 0 for v in speeds)
    assert math.isclose(out["ratio"], speeds[0] / speeds[1])
    tokens = language.sample_corpus(artifacts.TRAIN_SEED, n_rows, 128).tokens
    assert out["cache_bytes"] == int((tokens != language.BOS_ID).sum()) * 128 * 4  # float32, d_model 128
    assert book["variance"] > VARIANCE_FLOOR and lens["variance"] > VARIANCE_FLOOR
    assert "| path" in capsys.readouterr().out
