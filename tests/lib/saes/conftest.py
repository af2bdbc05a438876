"""Fixtures of the lib.saes tests: a small random model, token rows with <bos> at their start and
inside them, and a random SAELens TopK SAE."""

import pytest
import torch
from random_models import random_model
from sae_cases import BOS, make_random_sae


@pytest.fixture(autouse=True, scope="module")
def single_threaded(one_thread):
    yield


@pytest.fixture(scope="module")
def model():
    return random_model()


@pytest.fixture(scope="module")
def tokens(model):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, model.cfg.d_vocab, (6, 12), generator=g)
    tokens[:, 0] = BOS
    tokens[2, 5] = tokens[4, 9] = BOS  # <bos> inside rows too, as in packed texts
    return tokens


@pytest.fixture(scope="module")
def random_sae(model):
    return make_random_sae(model.cfg.d_model)
