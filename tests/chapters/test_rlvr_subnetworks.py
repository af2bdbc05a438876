"""The RLVR chapter on a random-weight chat model (tests/offline_hf.py: the sorting problem in its
chat template, the whole sweep rerun at the fewest steps; it runs and its values are in range,
nothing about RL can be asserted from random weights), and its checks at the edges of the allowed
parameter ranges on the organism: the shortest and the longest live runs, in float32 and with
bfloat16 master weights. A failing check stops the run with ``book.ChapterError`` naming the
claim. The longest runs are marked slow."""

import nbformat
import pytest
from offline_hf import glued

from lib import book


def run_edge(params: dict, tmp_path) -> dict:
    out = book.execute("rlvr_subnetworks", tmp_path / "edge.ipynb", params)
    values = glued(nbformat.read(out, as_version=4))
    assert values["live_steps"] == params["LIVE_STEPS"] and values["masked_frozen_identical"] is True
    return values


def test_every_check_holds_at_the_shortest_live_runs(tmp_path):
    """The representative edge, run by default."""
    run_edge({"LIVE_STEPS": 40, "SEED": 3}, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_every_check_holds_at_the_longest_live_runs(tmp_path, dtype):
    run_edge({"LIVE_STEPS": 300, "SEED": 7, "DTYPE": dtype}, tmp_path)


def test_the_chapter_runs_on_a_chat_model(offline_chat_model, tmp_path):
    params = {
        "MODEL_NAME": "gpt2-small",
        "DEVICE": "cpu",
        "STEPS": 4,
        "LIVE_STEPS": 40,
        "RATE_SCALE": 0.1,
    }
    values = glued(
        nbformat.read(book.execute("rlvr_subnetworks", tmp_path / "chat.ipynb", params), as_version=4)
    )
    assert values["steps"] == 4 and values["masked_frozen_identical"] is True
    for name in (
        "sft_acc",
        "rl_acc",
        "sparsity_fp32_tol0",
        "sparsity_bf16",
        "sparsity_sft_bf16",
        "random99_best_acc",
    ):
        assert 0 <= values[name] <= 1, name
    assert abs(values["jaccard_random"] - values["jaccard_chance"]) < 0.01
    assert values["full_best_lr"] in [lr * 0.1 for lr in (1e-5, 3e-5, 1e-4, 3e-4)]
