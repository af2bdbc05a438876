"""lib.language.corpus: sampled rows and the training stream, deterministic from the seed."""

import pytest
import torch

from lib import language as g
from lib.word_tokenizer import word_tokenizer

N_CTX = 128  # the corpus fixture's row length


def test_sampling_is_deterministic_from_the_seed(corpus):
    again = g.sample_corpus(seed=7, batch=48, n_ctx=N_CTX)
    assert torch.equal(corpus.tokens, again.tokens)
    assert all(torch.equal(corpus.latents[k], again.latents[k]) for k in g.LATENTS)
    assert not torch.equal(corpus.tokens, g.sample_corpus(seed=8, batch=48, n_ctx=N_CTX).tokens)


def test_batches_are_packed_deterministic_and_check_the_tokenizer(tmp_path):
    first = next(g.batches(5, 6, N_CTX))
    assert first.shape == (6, N_CTX) and first.dtype == torch.long and (first[:, 0] == g.BOS_ID).all()
    assert torch.equal(first, g.sample_corpus(5, 6, N_CTX).tokens)
    a, b = g.batches(5, 6, N_CTX, g.tokenizer(tmp_path / "tok")), g.batches(5, 6, N_CTX)
    assert all(torch.equal(next(a), next(b)) for _ in range(3))
    wrong = word_tokenizer(["x", "<bos>", "<unk>", "<pad>"], tmp_path / "other")
    with pytest.raises(ValueError, match="not lib.language.VOCAB"):
        next(g.batches(5, 6, N_CTX, wrong))
