"""Seeded token generators: repeated random tokens and the induction organism's training data.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from jaxtyping import Int
from torch import Tensor


def repeated_tokens(
    vocab: Int[Tensor, " n_vocab"], bos_id: int, seq_len: int, batch: int, seed: int
) -> Int[Tensor, "batch 1+2*seq_len"]:
    """BOS followed by ``seq_len`` uniformly random tokens, repeated once.

    ``vocab`` lists the token ids to draw from (ordinary tokens, no special tokens). The first
    half is unpredictable; the second half is predictable only by looking back ``seq_len``
    tokens (chapter 'Induction heads').
    """
    g = torch.Generator().manual_seed(seed)
    half = vocab[torch.randint(len(vocab), (batch, seq_len), generator=g)]
    bos = torch.full((batch, 1), bos_id, dtype=torch.long)
    return torch.cat([bos, half, half], dim=1)


def induction_batch(
    n_vocab: int,
    bos_id: int,
    batch: int,
    n_ctx: int,
    g: torch.Generator,
    min_span: int = 8,
    max_span: int = 48,
    max_gap: int = 16,
) -> Int[Tensor, "batch n_ctx"]:
    """Training sequences for the induction organism: fresh random tokens interleaved with copies.

    Each row is BOS, then runs of 1 to ``max_gap`` *fresh* tokens (ids ``0 .. n_vocab-1`` drawn
    without replacement within the row), each followed, once enough history exists, by a span of
    random length in ``[min_span, max_span]`` copied from a random earlier position of the same
    row. Offsets and lengths are random, so a fixed positional offset cannot predict the copies:
    the model has to find the earlier occurrence of the current token and read what followed it
    (a previous-token head composed with an induction head). Fresh tokens never repeat by chance,
    so a repeated token always signals a copy (chapter 'Induction heads').
    """
    if n_ctx > n_vocab:
        raise ValueError(f"n_ctx={n_ctx} needs at least as many token ids; n_vocab={n_vocab}")
    tokens = torch.full((batch, n_ctx), bos_id, dtype=torch.long)

    def randint(low: int, high: int) -> int:  # inclusive bounds
        return int(torch.randint(low, high + 1, (), generator=g))

    for row in tokens:
        fresh = iter(torch.randperm(n_vocab, generator=g).tolist())
        pos = 1
        while pos < n_ctx:
            for _ in range(min(randint(1, max_gap), n_ctx - pos)):
                row[pos] = next(fresh)
                pos += 1
            n = min(randint(min_span, max_span), n_ctx - pos)
            if n > 0 and pos - 1 >= n:  # a source span [src, src + n) that ends before pos
                src = randint(1, pos - n)
                row[pos : pos + n] = row[src : src + n].clone()
                pos += n
    return tokens


def induction_batches(
    seed: int, n_vocab: int, bos_id: int, batch: int, n_ctx: int
) -> Iterator[Int[Tensor, "batch n_ctx"]]:
    """An endless, seeded stream of :func:`induction_batch` (chapter 'Induction heads')."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield induction_batch(n_vocab, bos_id, batch, n_ctx, g)
