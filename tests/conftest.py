"""Fixtures shared by the test modules."""

from offline_hf import checkpoints, offline_gpt2, word_list_checkpoints  # noqa: F401  (pytest fixtures)
