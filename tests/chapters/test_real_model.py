"""The real-model path, offline: MODEL_NAME="gpt2-small" resolved through TransformerLens
``from_pretrained`` against a local Hugging Face cache, and MODEL_NAME a local checkpoint folder,
for three architectures (GPT-2; GPT-NeoX with rotary and parallel attention; Qwen2 with RMSNorm, a
gated MLP and grouped-query attention), in float32, bfloat16 and float16 (which PyTorch runs on
the CPU too). The checkpoints are small and randomly initialised (tests/offline_hf.py), which
proves only that every section runs and that values are in range (DESIGN.md section 9): the
chapters assert their science of the organisms alone.

Every chapter on every architecture in every dtype is slow (``-m slow``); the default run keeps
one case per chapter, covering each architecture and both float32 and bfloat16 (with gpt2-small
from the cache in float32, which each chapter's own tests run)."""

import math
import subprocess
import sys

import nbformat
import pytest
from offline_hf import ARCHITECTURES, N_CTX, N_HEADS, N_LAYERS, glued, save_random_sae

from lib import book

SIZES = {  # the smallest sizes each chapter allows on a 64-token context
    "residual_stream": {"BATCH": 8, "N_CTX": 64, "N_PROMPTS": 32, "SEQ_LEN": 10, "REP_BATCH": 4},
    "induction_heads": {"SEQ_LEN": 12, "BATCH": 10},
    "attention_sinks": {"SEQ_LEN": 20, "BATCH": 4, "PLAIN_LEN": 32, "WINDOW": 8},
    "task_vectors": {"N_SHOTS": 2, "N_DUMMY": 1, "N_DEV": 4, "N_MEAN": 16, "N_CIE": 5, "FV_HEADS": 1},
    "sparse_autoencoders": {"N_ROWS": 128},  # and SAE_ID, a random SAE saved in a folder
}
# (low, high) of glued values; every other glued number must be finite (None: NaN, or skipped)
RANGES = {
    "residual_stream": {
        **dict.fromkeys(["rep_second_top1", "top_induction_score", "prev_token_score"], (0, 1)),
        **dict.fromkeys(
            ["agreement_prompt_acc", "lens_agreement_by_layer", "tuned_accuracy_by_layer"], (0, 1)
        ),
        **dict.fromkeys(["direct_total_corr", "attrib_corr"], (-1, 1)),
        **dict.fromkeys(["heldout_loss", "rep_first_loss", "rep_second_loss"], (0, 20)),
        **dict.fromkeys(["pos0_norm_ratio", "resid_norm_by_layer", "massive_ratio"], (0, math.inf)),
    },
    "induction_heads": {
        **dict.fromkeys(["rep_acc_first", "rep_acc_second", "top_induction_score", "kcomp_top1_acc"], (0, 1)),
        **dict.fromkeys(["top_prev_token_score", "ind_head_positive", "seen_mass"], (0, 1)),
        **dict.fromkeys(["rep_logprob_first", "rep_logprob_second", "rep_logprob_first_repeat"], (-20, 0)),
        "ind_head_eigen": (-1, 1),
    },
    "attention_sinks": {
        **dict.fromkeys(["induction_first_attn_repeated", "induction_first_attn_plain"], (0, 1)),
        **dict.fromkeys(["uniform_first_plain", "first_attn_bos_replaced", "spread_plain"], (0, 1)),
        "sink1_pct": (0, 100),
        **dict.fromkeys(["first_value_norm_ratio", "dormant_output_ratio", "massive_ratio"], (0, math.inf)),
        **dict.fromkeys(["loss_full", "loss_window_no_sink", "loss_window_with_sink"], (0, 20)),
        **dict.fromkeys(["removal_loss_plain", "removal_value_plain", "removal_attention_repeated"], (0, 20)),
    },
    "task_vectors": {
        **dict.fromkeys(["icl_acc", "baseline_acc", "tv_acc", "override_rate", "probe_acc"], (0, 1)),
        **dict.fromkeys(["fv_zero_shot_acc", "fv_shuffled_acc", "fv_random_heads_acc"], (0, 1)),
        **dict.fromkeys(["tv_best_layer", "fv_best_layer", "task_probe_layer"], (0, N_LAYERS - 1)),
        "n_tasks": (8, 8),  # every word list keeps enough single-token pairs
    },
    "sparse_autoencoders": {
        "sae_l0": (8, 8),  # the random TopK SAE's k
        "sae_dead_frac": (0, 1),
        "n_dashboard_unmatched": (5, 5),
        **dict.fromkeys(["sae_explained_variance", "sae_kl_recovered"], (-math.inf, 1)),
        "layer": (1, 1),
    },
}
DEFAULT_RUN = {
    ("residual_stream", "qwen2", "bfloat16"),  # RMSNorm, grouped-query attention, no BOS token
    ("induction_heads", "neox", "bfloat16"),  # rotary, parallel attention, run without a BOS
    ("attention_sinks", "qwen2", "float32"),  # the value norms of grouped-query attention
    ("task_vectors", "qwen2", "float16"),  # W_O per query head under grouped-query attention, half precision
    ("sparse_autoencoders", "gpt2", "bfloat16"),  # a float32 SAE spliced into a bfloat16 model
}
NOISE = ("Moving model to device", "Loaded pretrained model", "Loading weights", "it/s]")


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


def _numbers(value: object) -> list[float | None]:
    return [
        v for v in (value if isinstance(value, list) else [value]) if v is None or isinstance(v, float | int)
    ]


@pytest.mark.parametrize(
    "chapter, arch, dtype",
    [
        pytest.param(*case, marks=() if case in DEFAULT_RUN else pytest.mark.slow)
        for case in [
            (c, a, d) for c in SIZES for a in ARCHITECTURES for d in ("float32", "bfloat16", "float16")
        ]
    ],
)
def test_chapter_runs_on_a_local_checkpoint(request, tmp_path, monkeypatch, chapter, arch, dtype):
    """Through the runner, offline, MODEL_NAME a checkpoint folder: every code cell ran without an
    error, quietly (no loading messages or progress bars), the load cell says what position 0
    holds, and the glued values are in range. The task-vectors chapter's checkpoints have
    tokenizers that know its word lists (as GPT-2's knows English words)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fixture = "word_list_checkpoints" if chapter == "task_vectors" else "checkpoints"
    checkpoints = request.getfixturevalue(fixture)
    params = {"MODEL_NAME": str(checkpoints[arch]), "DEVICE": "cpu", "DTYPE": dtype} | SIZES[chapter]
    if chapter == "sparse_autoencoders":
        params["SAE_ID"] = str(save_random_sae(tmp_path / "sae"))
    nb = nbformat.read(book.execute(chapter, tmp_path / "out.ipynb", params), as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    outputs = [out for cell in code for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    streams = "".join(out.text for out in outputs if out.output_type == "stream")
    assert not [noise for noise in NOISE if noise in streams]
    assert f"{checkpoints[arch]}: 2 layers x 4 heads" in streams and "; position 0 is " in streams
    values = glued(nb)
    for name, value in values.items():
        assert all(v is None or math.isfinite(v) for v in _numbers(value)), (name, value)
    for name, (low, high) in RANGES[chapter].items():
        assert _numbers(values[name]) and all(low <= v <= high for v in _numbers(values[name])), (
            name,
            values[name],
        )
