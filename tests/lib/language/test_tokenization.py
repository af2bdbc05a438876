"""lib.language.tokenization: the language's tokenizer and whether a model speaks it."""

import pytest
import torch
from offline_hf import language_tokenizer
from transformer_lens import HookedTransformer, HookedTransformerConfig

from lib import language as g
from lib.word_tokenizer import word_tokenizer


def words(row):
    return [g.VOCAB[t] for t in row.tolist()]


def test_tokenizer_round_trips(tmp_path, corpus):
    tok = g.tokenizer(tmp_path / "tok")
    assert tok.get_vocab() == g.ID and tok.bos_token_id == g.BOS_ID
    for row in corpus.tokens[:4]:
        text = " ".join(words(row)[1:])
        assert tok(text)["input_ids"] == row.tolist()
        assert tok.decode(row[1:].tolist()) == text
    assert tok("<user> how do i sort : c a b = ?")["input_ids"][1:] == [
        g.ID[w] for w in "<user> how do i sort : c a b = ?".split()
    ]


def tiny_model(tokenizer, d_vocab: int) -> HookedTransformer:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=1, d_model=8, n_heads=1, d_head=8, n_ctx=8, d_vocab=d_vocab, attn_only=True
    )
    return HookedTransformer(cfg, tokenizer=tokenizer)


def test_speaks_language_only_with_the_languages_tokenizer(tmp_path):
    assert g.speaks_language(tiny_model(g.tokenizer(tmp_path / "tok"), len(g.VOCAB)))
    other = word_tokenizer(["a", "b", "<bos>", "<unk>", "<pad>"], tmp_path / "other")
    assert not g.speaks_language(tiny_model(other, 5))
    assert not g.speaks_language(tiny_model(None, len(g.VOCAB)))


def test_retokenize_gives_another_tokenizer_the_rows_words_after_its_bos(corpus):
    """Through a byte-level BPE tokenizer: every row becomes its words, texts joined by a space,
    after the BOS and cut to the length (decoding gives a prefix of the text); a row too short is
    refused, and so is a tokenizer without a BOS token."""
    rows = corpus.tokens[:3]
    other = language_tokenizer()
    got = g.retokenize(rows, other, 40)
    assert got.shape == (3, 40) and (got[:, 0] == other.bos_token_id).all()
    for row, ids in zip(rows, got):
        text = " ".join(g.VOCAB[t] for t in row.tolist() if t != g.BOS_ID)
        prefix = other.decode(ids[1:].tolist())
        assert len(prefix) > 40 and text.startswith(prefix)
    with pytest.raises(ValueError, match="under 100000"):
        g.retokenize(rows, other, 100000)
    with pytest.raises(ValueError, match="no BOS token"):
        g.retokenize(rows, language_tokenizer(with_bos=False), 40)
