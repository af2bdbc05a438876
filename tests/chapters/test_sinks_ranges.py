"""The attention-sinks chapter's checks hold at the edges of its allowed parameter ranges (issue
12): the smallest sizes (SEQ_LEN 20, BATCH 4, PLAIN_LEN 16, WINDOW_LEN 32 with WINDOW 2 and
N_SINK 1) and the largest (SEQ_LEN 63 and PLAIN_LEN 128, the organism's whole context, BATCH 64,
WINDOW 32 with N_SINK 8). A failing check stops the run with ``book.ChapterError`` naming the
claim. Slow: the largest run takes about a minute."""

import nbformat
import pytest
from offline_hf import glued

from lib import book

EDGES = [
    {"SEQ_LEN": 20, "BATCH": 4, "PLAIN_LEN": 16, "WINDOW_LEN": 32, "WINDOW": 2, "N_SINK": 1, "SEED": 3},
    {"SEQ_LEN": 63, "BATCH": 64, "PLAIN_LEN": 128, "WINDOW_LEN": 128, "WINDOW": 32, "N_SINK": 8, "SEED": 7},
]


@pytest.mark.slow
@pytest.mark.parametrize("params", EDGES, ids=["smallest", "largest"])
def test_every_check_holds_at_the_edges_of_the_ranges(params, tmp_path):
    out = book.execute("attention_sinks", tmp_path / "edge.ipynb", params)
    values = glued(nbformat.read(out, as_version=4))
    assert values["n_induction_heads"] >= 1 and values["sink1_step"] == 12.5
    assert 0 < values["uniform_first_plain"] < values["induction_first_attn_plain"] <= 1
    assert 0 < values["nosink_sink1_softmax1"] < values["nosink_sink1_softmax"]
    assert values["nosink_null_max_softmax1"] < values["uniform_null"]
