"""lib.data: the seeded token generators and the ids they draw from, against slow per-row
references."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from lib import data, language
from lib.word_tokenizer import word_tokenizer


def tiny_model(tokenizer, d_vocab: int) -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=1, d_model=8, n_heads=1, d_head=8, n_ctx=8, d_vocab=d_vocab, attn_only=True
    )
    return HookedTransformer(cfg, tokenizer=tokenizer)


def test_ordinary_tokens_of_the_language_are_the_words_it_produces(tmp_path):
    """Slow reference: the words of every list the base language draws from, looked up one by one;
    every word a sampled corpus holds is among them."""
    lists = [
        language.PUNCTUATION,
        language.FUNCTION_WORDS,
        language.DETERMINERS,
        language.PREPOSITIONS,
        language.OPENERS,
        language.CONJUNCTIONS,
        language.COPULA,
        language.NAMES,
    ]
    for lexicon in (
        language.ANIMATE_NOUNS,
        language.THING_NOUNS,
        language.INTRANSITIVE_VERBS,
        language.TRANSITIVE_VERBS,
    ):
        lists += [[w for pair in pairs for w in pair] for pairs in lexicon.values()]
    lists += list(language.ADJECTIVES.values())
    words = {w for ws in lists for w in ws}
    model = tiny_model(language.tokenizer(tmp_path / "tok"), len(language.VOCAB))
    got = data.ordinary_tokens(model).tolist()
    assert got == sorted(language.ID[w] for w in words) == sorted(set(got))
    assert len(got) < len(language.VOCAB) - 3  # the reserved formats' own words are left out
    seen = set(language.sample_corpus(0, 16, 512).tokens.flatten().tolist()) - {language.BOS_ID}
    assert seen <= set(got)


@pytest.mark.parametrize("d_vocab", [2, 6, 10])
def test_ordinary_tokens_of_another_tokenizer_skip_specials_and_padding(tmp_path, d_vocab):
    """Slow reference: each id below ``d_vocab`` that the tokenizer defines, unless it is special."""
    tok = word_tokenizer(["a", "<bos>", "b", "<unk>", "c", "<pad>"], tmp_path / "tok")
    special = set(tok.all_special_tokens)
    want = [i for i in range(d_vocab) if i < len(tok) and tok.convert_ids_to_tokens(i) not in special]
    assert data.ordinary_tokens(tiny_model(tok, d_vocab)).tolist() == want
    assert want == {2: [0], 6: [0, 2, 4], 10: [0, 2, 4]}[d_vocab]


def test_repeated_tokens_shape_halves_and_seed():
    vocab = torch.arange(10, 60)
    tokens = data.repeated_tokens(vocab, bos_id=99, seq_len=7, batch=5, seed=1)
    assert tokens.shape == (5, 15)
    assert (tokens[:, 0] == 99).all()
    assert torch.equal(tokens[:, 1:8], tokens[:, 8:])
    assert torch.isin(tokens[:, 1:], vocab).all()
    assert all(len(set(row[1:8].tolist())) == 7 for row in tokens)
    assert torch.equal(tokens, data.repeated_tokens(vocab, 99, 7, 5, seed=1))
    assert not torch.equal(tokens, data.repeated_tokens(vocab, 99, 7, 5, seed=2))


def test_distinct_tokens_never_repeat_within_a_row():
    distinct = data.distinct_tokens(torch.arange(5, 50), 0, 30, 4, seed=0)
    assert distinct.shape == (4, 30) and (distinct[:, 0] == 0).all()
    assert all(len(set(row[1:].tolist())) == 29 and row[1:].min() >= 5 for row in distinct)
    assert torch.equal(distinct, data.distinct_tokens(torch.arange(5, 50), 0, 30, 4, seed=0))
    with pytest.raises(ValueError, match="distinct tokens"):
        data.distinct_tokens(torch.arange(10), 0, 30, 1, seed=0)


def copied_fraction(row: torch.Tensor, min_span: int) -> float:
    """Slow reference: the fraction of positions inside some run of >= min_span tokens that
    also occurs, token for token, entirely earlier in the row."""
    n, covered = len(row), torch.zeros(len(row), dtype=torch.bool)
    items = row.tolist()
    for start in range(1, n - min_span + 1):
        window = items[start : start + min_span]
        if any(items[s : s + min_span] == window for s in range(1, start - min_span + 1)):
            covered[start : start + min_span] = True
    return covered.float().mean().item()


def test_induction_batch_copies_spans_at_varying_offsets():
    g = torch.Generator().manual_seed(0)
    tokens = data.induction_batch(512, 512, batch=8, n_ctx=128, g=g)
    assert tokens.shape == (8, 128) and (tokens[:, 0] == 512).all() and (tokens[:, 1:] < 512).all()
    fractions = [copied_fraction(row, 4) for row in tokens]
    assert min(fractions) > 0.3, fractions  # a large part of every row is copied text
    # the offsets between a copy and its source vary: no fixed positional shortcut
    offsets = set()
    for row in tokens.tolist():
        for i in range(1, 125):
            for j in range(1, i - 3):
                if row[j : j + 4] == row[i : i + 4]:
                    offsets.add(i - j)
    assert len(offsets) > 20


def test_induction_batches_are_seeded():
    a, b = data.induction_batches(3, 50, 50, 4, 32), data.induction_batches(3, 50, 50, 4, 32)
    assert all(torch.equal(next(a), next(b)) for _ in range(3))
    other = data.induction_batches(4, 50, 50, 4, 32)
    assert not torch.equal(next(other), next(data.induction_batches(3, 50, 50, 4, 32)))


def test_skip_bigram_rule():
    """With p_skip, a good share of positions hold pi(token two back) for the one fixed
    permutation pi (made by the rule, or copied from where it was made); without it, almost none."""

    def rule_share(tokens: torch.Tensor, pi: list[int]) -> float:  # slow reference: a loop
        pairs = [row[i] == pi[row[i - 2]] for row in tokens.tolist() for i in range(3, len(row))]
        return sum(pairs) / len(pairs)

    pi = torch.randperm(512, generator=torch.Generator().manual_seed(7)).tolist()
    with_rule = data.induction_batch(
        512, 512, 16, 128, torch.Generator().manual_seed(0), p_skip=0.3, skip_seed=7
    )
    without = data.induction_batch(512, 512, 16, 128, torch.Generator().manual_seed(0))
    assert 0.15 < rule_share(with_rule, pi) < 0.45
    assert rule_share(without, pi) < 0.01
    assert data.skip_bigram_permutation(512, 7).tolist() == pi
