"""The induction chapter's checks hold at the edges of its allowed parameter ranges (issue 12):
the smallest sizes (SEQ_LEN 12, the shortest copy gap allowed, and BATCH 10: few predictable
tokens) and the largest (SEQ_LEN 63, the organism's whole context, and BATCH 200). A failing check
stops the run with ``book.ChapterError`` naming the claim. The largest run is marked slow."""

import nbformat
import pytest
from offline_hf import glued

from lib import book

SMALLEST = {"SEQ_LEN": 12, "BATCH": 10, "SEED": 3}
LARGEST = {"SEQ_LEN": 63, "BATCH": 200, "SEED": 7}


def run_edge(params: dict, tmp_path) -> None:
    out = book.execute("induction_heads", tmp_path / "edge.ipynb", params)
    values = glued(nbformat.read(out, as_version=4))
    assert values["n_predictable"] == params["BATCH"] * (params["SEQ_LEN"] - 1)
    assert values["prev_head"] == "L0H0" and values["ind_head"].startswith("L1")


def test_every_check_holds_at_the_smallest_sizes(tmp_path):
    """About 20 seconds: the representative edge, run by default."""
    run_edge(SMALLEST, tmp_path)


@pytest.mark.slow
def test_every_check_holds_at_the_largest_sizes(tmp_path):
    run_edge(LARGEST, tmp_path)
