"""Norms and tokens the residual-stream tests (test_residual, test_lens) share; their models come
from tests/random_models.py."""

import torch

NORMS = ["LN", "LNPre", "RMS", None]


def random_tokens(d_vocab: int = 30) -> torch.Tensor:
    return torch.randint(0, d_vocab, (3, 14), generator=torch.Generator().manual_seed(1))
