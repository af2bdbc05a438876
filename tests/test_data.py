"""lib.data: the seeded token generators, against slow per-row references."""

import pytest
import torch

from lib import data


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
    assert not torch.equal(next(data.induction_batches(4, 50, 50, 4, 32)), next(data.induction_batches(3, 50, 50, 4, 32)))


def test_skip_bigram_rule():
    """With p_skip, a good share of positions hold pi(token two back) for the one fixed
    permutation pi (made by the rule, or copied from where it was made); without it, almost none."""
    def rule_share(tokens: torch.Tensor, pi: list[int]) -> float:  # slow reference: a loop
        pairs = [row[i] == pi[row[i - 2]] for row in tokens.tolist() for i in range(3, len(row))]
        return sum(pairs) / len(pairs)

    pi = torch.randperm(512, generator=torch.Generator().manual_seed(7)).tolist()
    with_rule = data.induction_batch(512, 512, 16, 128, torch.Generator().manual_seed(0), p_skip=0.3, skip_seed=7)
    without = data.induction_batch(512, 512, 16, 128, torch.Generator().manual_seed(0))
    assert 0.15 < rule_share(with_rule, pi) < 0.45
    assert rule_share(without, pi) < 0.01
