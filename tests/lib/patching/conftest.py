"""The patching tests run single-threaded and without autograd (attribution patching turns it
on for itself)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_threaded_no_grad(one_thread):
    with torch.no_grad():
        yield
