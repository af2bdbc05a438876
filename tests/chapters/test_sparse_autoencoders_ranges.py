"""The sparse-autoencoders chapter's checks hold at the edges of its allowed parameter range (issue
16): the fewest held-out rows with the weakest steering (on another seed than the book's), and
the most rows with the strongest. A failing check
stops the run with ``book.ChapterError`` naming the claim. The largest run is marked slow."""

import nbformat
import pytest
from offline_hf import glued

from lib import book


def run(params: dict, tmp_path) -> dict:
    out = book.execute("sparse_autoencoders", tmp_path / "edge.ipynb", params)
    values = glued(nbformat.read(out, as_version=4))
    assert values["sae_name"] == params.get("SAE_NAME", "topk-1024-k20")
    return values


def test_every_check_holds_at_the_fewest_rows(tmp_path):
    """The representative edge, run by default."""
    run({"N_ROWS": 128, "SEED": 3, "STEER": 0.5}, tmp_path)


@pytest.mark.slow
def test_every_check_holds_at_the_most_rows(tmp_path):
    run({"N_ROWS": 512, "SEED": 7, "STEER": 1.0}, tmp_path)
