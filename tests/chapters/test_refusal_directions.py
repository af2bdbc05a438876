"""The refusal-directions chapter off the default organism: on a random-weight chat model in a
local Hugging Face cache (a GPT-2-architecture checkpoint whose tokenizer has a chat template and
end-of-turn tokens, as real chat models' do, from tests/offline_hf.py; it runs, nothing about
refusal can be asserted from random weights), and at the edges of its parameter ranges on the
organism (slow)."""

import nbformat
import pytest
from offline_hf import glued

from lib import book


def test_the_chapter_runs_on_a_chat_model_with_its_template(offline_chat_model, tmp_path):
    out = book.execute(
        "refusal_directions",
        tmp_path / "chat.ipynb",
        {
            "MODEL_NAME": "gpt2-small",
            "DEVICE": "cpu",
            "N_TRAIN": 16,
            "N_VAL": 8,
            "N_EVAL": 16,
            "GEN_TOKENS": 6,
        },
    )
    values = glued(nbformat.read(out, as_version=4))
    # one of the template's post-instruction tokens (<|end|> \n <|assistant|> \n); which one, random
    # weights decide
    assert -4 <= values["direction_pos"] <= -1
    assert 0 <= values["direction_layer"] < 3
    for name in ("refusal_harmful_baseline", "refusal_harmless_actadd", "refusal_harmful_ablated"):
        assert 0 <= values[name] <= 1
    assert values["ortho_max_logit_diff"] <= 1e-3 and values["ortho_max_logit_diff_bf16"] is None
    assert values["kl_harmless_ablated"] >= 0 and values["ce_baseline"] > 0


EDGES = [
    {
        "N_TRAIN": 16,
        "N_VAL": 8,
        "N_EVAL": 16,
        "N_POSITIONS": 1,
        "GEN_TOKENS": 4,
        "KL_THRESHOLD": 0.1,
        "SEED": 3,
    },
    {
        "N_TRAIN": 512,
        "N_VAL": 128,
        "N_EVAL": 256,
        "N_POSITIONS": 8,
        "GEN_TOKENS": 64,
        "KL_THRESHOLD": 10.0,
        "HEAD_THRESHOLD": 1.0,
        "SEED": 7,
    },
]


@pytest.mark.slow
@pytest.mark.parametrize("params", EDGES, ids=["smallest", "largest"])
def test_every_check_holds_at_the_edges_of_the_ranges(params, tmp_path):
    """On the organism every check cell holds at the smallest and largest sizes (a failing check
    stops the run with ``book.ChapterError`` naming the claim). Slow: minutes."""
    out = book.execute("refusal_directions", tmp_path / "edge.ipynb", params)
    values = glued(nbformat.read(out, as_version=4))
    assert values["refusal_harmful_ablated"] <= 0.1 and values["refusal_harmless_actadd"] >= 0.9
