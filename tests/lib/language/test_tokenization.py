"""lib.language.tokenization: the language's tokenizer and whether a model speaks it."""

import torch
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
