"""The real-model path, offline: MODEL_NAME="gpt2-small" resolved through TransformerLens
``from_pretrained`` against a local Hugging Face cache holding a small randomly initialised
GPT-2-architecture checkpoint and a real byte-level BPE tokenizer. Random weights prove only that
the path runs and that outputs have the right shapes and ranges (DESIGN.md section 9)."""

import subprocess
import sys

import nbformat
from offline_hf import N_CTX, N_HEADS, N_LAYERS, glued

from lib import book


def test_load_model_reads_the_local_cache(offline_gpt2):
    """In a fresh process, since huggingface_hub reads HF_HOME and HF_HUB_OFFLINE on import."""
    script = (
        "from lib.models import load_model, model_config; m = load_model('gpt2-small', 'cpu'); "
        "print(m.cfg.n_layers, m.cfg.n_heads, m.cfg.n_ctx, m.cfg.d_vocab, model_config('gpt2-small').n_ctx)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=book.ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1].split() == [
        str(v) for v in (N_LAYERS, N_HEADS, N_CTX, offline_gpt2, N_CTX)
    ]


def test_induction_chapter_runs_on_gpt2_small(offline_gpt2, tmp_path):
    out = book.execute(
        "induction_heads",
        tmp_path / "gpt2.ipynb",
        {"MODEL_NAME": "gpt2-small", "DEVICE": "cpu", "SEQ_LEN": 12, "BATCH": 10},
    )
    values = glued(nbformat.read(out, as_version=4))
    for half in ("first", "second"):
        assert -20 < values[f"rep_logprob_{half}"] < 0
        assert 0 <= values[f"rep_acc_{half}"] <= 1
    assert 0 <= values["top_induction_score"] <= 1 and 0 <= values["top_prev_token_score"] <= 1
    assert 0 <= values["kcomp_top1_acc"] <= 1
    assert values["ind_head"].startswith("L") and values["prev_head"].startswith("L")
    assert values["onset_step"] is None and values["share_virtual"] is None  # no training log, MLPs
