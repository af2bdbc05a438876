"""The task-vectors chapter's checks hold at the edges of its allowed parameter ranges (issue 15):
the smallest sizes (two demonstrations, one dummy query, one head in the function vector, the
fewest prompts) and the largest. A failing check stops the run with ``book.ChapterError`` naming
the claim. The largest run is marked slow."""

import nbformat
import pytest
from offline_hf import glued

from lib import book

SMALLEST = {"N_SHOTS": 2, "N_DUMMY": 1, "N_DEV": 4, "N_MEAN": 16, "N_CIE": 5, "FV_HEADS": 1, "SEED": 3}
LARGEST = {"N_SHOTS": 8, "N_DUMMY": 4, "N_DEV": 64, "N_MEAN": 256, "N_CIE": 100, "FV_HEADS": 16, "SEED": 7}


def run_edge(params: dict, tmp_path) -> dict:
    out = book.execute("task_vectors", tmp_path / "edge.ipynb", params)
    values = glued(nbformat.read(out, as_version=4))
    assert values["n_tasks"] == 12 and values["fv_heads"] == params["FV_HEADS"]
    return values


def test_every_check_holds_at_the_smallest_sizes(tmp_path):
    """The representative edge, run by default."""
    run_edge(SMALLEST, tmp_path)


@pytest.mark.slow
def test_every_check_holds_at_the_largest_sizes(tmp_path):
    run_edge(LARGEST, tmp_path)
