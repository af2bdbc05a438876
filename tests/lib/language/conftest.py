"""The corpus the tests of lib.language read."""

import pytest

from lib import language


@pytest.fixture(scope="session")
def corpus() -> language.Corpus:
    """48 rows of 128 tokens (seed 7)."""
    return language.sample_corpus(seed=7, batch=48, n_ctx=128)
