"""Fixtures shared by the test modules."""

from offline_hf import offline_gpt2  # noqa: F401  (a pytest fixture)
