"""Seeded token generators: the ids random tokens are drawn from, repeated random tokens and the
induction organism's training data.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from lib import language


def ordinary_tokens(model: HookedTransformer) -> Int[Tensor, " n_ordinary"]:
    """The token ids random-token inputs draw from: every id the tokenizer defines (a padded
    ``d_vocab`` can be larger) except its special tokens; for a model of the book's language,
    the words the language uses, not the reserved ids it never saw."""
    if language.speaks_language(model):
        return language.WORD_IDS
    special = set(model.tokenizer.all_special_ids)
    n_defined = min(model.cfg.d_vocab, len(model.tokenizer))
    return torch.tensor([i for i in range(n_defined) if i not in special])


def distinct_tokens(
    vocab: Int[Tensor, " n_vocab"], bos_id: int, length: int, batch: int, seed: int
) -> Int[Tensor, "batch length"]:
    """BOS then ``length - 1`` tokens drawn uniformly from ``vocab`` without replacement within
    each row: random tokens in which no token recurs."""
    if length - 1 > len(vocab):
        raise ValueError(
            f"length={length} needs {length - 1} distinct tokens; the vocabulary has {len(vocab)}"
        )
    g = torch.Generator().manual_seed(seed)
    rows = torch.stack([vocab[torch.randperm(len(vocab), generator=g)[: length - 1]] for _ in range(batch)])
    return torch.cat([torch.full((batch, 1), bos_id, dtype=torch.long), rows], dim=1)


def repeated_tokens(
    vocab: Int[Tensor, " n_vocab"], bos_id: int, seq_len: int, batch: int, seed: int
) -> Int[Tensor, "batch 1+2*seq_len"]:
    """BOS followed by ``seq_len`` random distinct tokens, repeated once.

    ``vocab`` lists the token ids to draw from (ordinary tokens, no special tokens). The first
    half is unpredictable; the second half is predictable only by looking back ``seq_len``
    tokens. The first half has no token twice: drawn with replacement, a token that recurs by
    chance has two different successors, and no copying mechanism can tell which one comes
    next. On GPT-2's 50,257 tokens that happens in about 2% of 50-token rows; on a vocabulary
    of 512 in about 91% of them.
    """
    first = distinct_tokens(vocab, bos_id, seq_len + 1, batch, seed)
    return torch.cat([first, first[:, 1:]], dim=1)


def second_half_nll(
    logits: Float[Tensor, "batch 1+2*seq_len d_vocab"], tokens: Int[Tensor, "batch 1+2*seq_len"], seq_len: int
) -> Float[Tensor, "batch seq_len-1"]:
    """Per-token loss on the predictable part of :func:`repeated_tokens`: the second half but its
    first token, which nothing announces."""
    logprobs = logits[:, seq_len + 1 : -1].float().log_softmax(-1)
    return -logprobs.gather(-1, tokens[:, seq_len + 2 :, None].to(logprobs.device))[..., 0]


def skip_bigram_permutation(n_vocab: int, skip_seed: int) -> Int[Tensor, " n_vocab"]:
    """The fixed permutation ``pi`` of :func:`induction_batch`'s skip-bigram rule: a token of a
    fresh run is, with probability ``p_skip``, ``pi[token two positions back]``."""
    return torch.randperm(n_vocab, generator=torch.Generator().manual_seed(skip_seed))


def induction_batch(
    n_vocab: int,
    bos_id: int,
    batch: int,
    n_ctx: int,
    g: torch.Generator,
    min_span: int = 8,
    max_span: int = 48,
    max_gap: int = 16,
    p_skip: float = 0.0,
    skip_seed: int = 0,
) -> Int[Tensor, "batch n_ctx"]:
    """Training sequences for the induction organism: fresh random tokens interleaved with copies.

    Each row is BOS, then runs of 1 to ``max_gap`` *fresh* tokens (ids ``0 .. n_vocab-1`` drawn
    without replacement within the row), each followed, once enough history exists, by a span of
    random length in ``[min_span, max_span]`` copied from a random earlier position of the same
    row. Offsets and lengths are random, so a fixed positional offset cannot predict the copies:
    the model has to find the earlier occurrence of the current token and read what followed it
    (a previous-token head composed with an induction head).

    With probability ``p_skip`` a token of a run is not fresh but follows a *skip-bigram* rule:
    it is ``pi(token two positions back)`` for a fixed random permutation ``pi`` (seeded by
    ``skip_seed``), the way a word in language depends on the word before the previous one. So
    knowing the previous token pays at every position, as in real text, and not only where a
    copy later reads it; without the rule, the previous-token head only forms over the positions
    that copies tend to read. Otherwise fresh tokens never repeat within a row, and a repeated
    token (almost always) signals a copy.
    """
    if n_ctx > n_vocab:
        raise ValueError(f"n_ctx={n_ctx} needs at least as many token ids; n_vocab={n_vocab}")
    tokens = torch.full((batch, n_ctx), bos_id, dtype=torch.long)

    def randint(low: int, high: int) -> int:  # inclusive bounds
        return int(torch.randint(low, high + 1, (), generator=g))

    pi = skip_bigram_permutation(n_vocab, skip_seed)
    for row in tokens:
        fresh = iter(torch.randperm(n_vocab, generator=g).tolist())
        skip = (torch.rand(n_ctx, generator=g) < p_skip).tolist()
        pos = 1
        while pos < n_ctx:
            for _ in range(min(randint(1, max_gap), n_ctx - pos)):
                row[pos] = pi[row[pos - 2]] if pos >= 3 and skip[pos] else next(fresh)
                pos += 1
            n = min(randint(min_span, max_span), n_ctx - pos)
            if n > 0 and pos - 1 >= n:  # a source span [src, src + n) that ends before pos
                src = randint(1, pos - n)
                row[pos : pos + n] = row[src : src + n].clone()
                pos += n
    return tokens


def induction_batches(
    seed: int, n_vocab: int, bos_id: int, batch: int, n_ctx: int, **options
) -> Iterator[Int[Tensor, "batch n_ctx"]]:
    """An endless, seeded stream of :func:`induction_batch` (``options``: its keyword arguments)."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield induction_batch(n_vocab, bos_id, batch, n_ctx, g, **options)
