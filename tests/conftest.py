"""Fixtures shared by the test modules."""

import pytest
import torch
from offline_hf import checkpoints, offline_chat_model, offline_gpt2, word_list_checkpoints  # noqa: F401  (pytest fixtures)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models and problems run single-threaded: more threads only wait for each other (a fit
    ran ten times slower on two). Modules opt in with ``pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
