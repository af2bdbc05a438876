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
    min_span: int = 4,
    max_span: int = 48,
    copy_prob: float = 0.75,
) -> Int[Tensor, "batch n_ctx"]:
    """Training sequences for the induction organism: random tokens with copied spans.

    Each row is BOS then uniform random tokens (ids ``0 .. n_vocab-1``). Then, with probability
    ``copy_prob``, one span of random length in ``[min_span, max_span]`` starting at a random
    source position is copied to a random later destination; a second span is copied with the
    same probability. Offsets and lengths are random, so a fixed positional offset cannot
    predict the copies: the model has to find the earlier occurrence of the current token and
    read what followed it (a previous-token head composed with an induction head)
    (chapter 'Induction heads').
    """
    tokens = torch.randint(n_vocab, (batch, n_ctx), generator=g)
    tokens[:, 0] = bos_id
    for _ in range(2):
        copy = torch.rand(batch, generator=g) < copy_prob
        length = torch.randint(min_span, max_span + 1, (batch,), generator=g)
        # source span [src, src+length) and destination [dst, dst+length), dst >= src+length
        src_hi = n_ctx - 2 * length  # last source start that leaves room for the copy
        src = 1 + (torch.rand(batch, generator=g) * src_hi.clamp(min=1)).long()
        dst_lo = src + length
        dst = dst_lo + (torch.rand(batch, generator=g) * (n_ctx - length - dst_lo + 1)).long()
        for row in torch.nonzero(copy & (src_hi >= 1)).flatten().tolist():
            n = int(length[row])
            tokens[row, dst[row] : dst[row] + n] = tokens[row, src[row] : src[row] + n].clone()
    return tokens


def induction_batches(
    seed: int, n_vocab: int, bos_id: int, batch: int, n_ctx: int
) -> Iterator[Int[Tensor, "batch n_ctx"]]:
    """An endless, seeded stream of :func:`induction_batch` (chapter 'Induction heads')."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield induction_batch(n_vocab, bos_id, batch, n_ctx, g)
