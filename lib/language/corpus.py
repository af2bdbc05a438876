"""Sampling the book's synthetic language: texts packed into rows, with every token's latents,
and the endless training stream of the language organism.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from lib.language.latents import _NONE, _RANDOM, _RANDOM_COPIED, _TEXT, LATENTS, LatentName
from lib.language.lexicon import BOS_ID, ID, TOPICS, WORD_CLASS_OF, WORD_IDS
from lib.language.program import P_RANDOM_ROW, RANDOM_PERIOD, _Text

_BOS_LATENTS = [-1, -1, _NONE, _NONE, _NONE, -1, -1, _TEXT]  # topic .. span of the opening <bos>


@dataclass(frozen=True)
class Corpus:
    """Rows of packed texts and, aligned with every token, the latents that produced it.

    ``latents`` maps each name of :data:`LATENTS` to an int tensor shaped like ``tokens``; for
    categorical latents, :data:`LATENTS` gives the meaning of each value.
    """

    tokens: Int[Tensor, "batch pos"]
    latents: dict[LatentName, Int[Tensor, "batch pos"]]


def _sample_text(rng: random.Random, topic: int, max_len: int) -> tuple[list[int], list[list[int]]]:
    """Run the program, sampling each token, for at most ``max_len`` tokens."""
    text = _Text(topic)
    program = text.program()
    dist, tokens = next(program), []
    while len(tokens) < max_len:
        tokens.append(dist.sample(rng))
        try:
            dist = program.send(tokens[-1])
        except StopIteration:
            break
    return tokens, text.latents


def _random_row(rng: random.Random, n_ctx: int) -> tuple[list[int], list[list[int]]]:
    """``<bos>`` then ``N`` random words (``N`` uniform in :data:`RANDOM_PERIOD`) repeated to
    ``n_ctx`` tokens."""
    period = rng.randint(*RANDOM_PERIOD)
    words = [int(WORD_IDS[int(rng.random() * len(WORD_IDS))]) for _ in range(period)]
    tokens = [BOS_ID] + [words[i % period] for i in range(n_ctx - 1)]
    span = [_TEXT] + [_RANDOM if i < period else _RANDOM_COPIED for i in range(n_ctx - 1)]
    return tokens, [[*_BOS_LATENTS[:-1], s, 0] for s in span]


def _row(rng: random.Random, n_ctx: int) -> tuple[list[int], list[list[int]]]:
    """With probability :data:`P_RANDOM_ROW` a row of repeated random words; else ``<bos>`` then
    texts, each ended by the ``<bos>`` that opens the next, cut at ``n_ctx``. Latents per token,
    in the order of :data:`LATENTS` after ``word_class``."""
    if rng.random() < P_RANDOM_ROW:
        return _random_row(rng, n_ctx)
    tokens, latents, text = [BOS_ID], [[*_BOS_LATENTS, 0]], 0
    while len(tokens) < n_ctx:
        topic = min(int(rng.random() * len(TOPICS)), len(TOPICS) - 1)
        words, lats = _sample_text(rng, topic, n_ctx - len(tokens))
        for tok, lat in zip(words, lats):
            text += tok == BOS_ID
            latents.append([-1 if tok == BOS_ID else topic, *lat, text])
        tokens += words
    return tokens, latents


def sample_corpus(seed: int, batch: int, n_ctx: int) -> Corpus:
    """``batch`` rows of ``n_ctx`` tokens with their latents, deterministic from ``seed``; the
    same rows as the first batch of :func:`batches`."""
    rng = random.Random(seed)
    rows = [_row(rng, n_ctx) for _ in range(batch)]
    tokens = torch.tensor([tokens for tokens, _ in rows])
    values = torch.tensor([latents for _, latents in rows])  # [batch, pos, latent]
    names = [name for name in LATENTS if name != "word_class"]
    latents = {n: values[..., i] for i, n in enumerate(names)}
    return Corpus(tokens, {"word_class": WORD_CLASS_OF[tokens], **latents})


def batches(
    seed: int, batch_size: int, n_ctx: int, tok: PreTrainedTokenizerFast | None = None
) -> Iterator[Int[Tensor, "batch n_ctx"]]:
    """An endless, deterministic stream of training rows: texts packed back to back, each opened
    by ``<bos>``, so no padding is needed. ``tok``, when given, is checked to be this language's
    tokenizer."""
    if tok is not None and tok.get_vocab() != ID:
        raise ValueError(
            "the tokenizer's vocabulary is not lib.language.VOCAB; build it with lib.language.tokenizer"
        )
    rng = random.Random(seed)
    while True:
        yield torch.tensor([_row(rng, n_ctx)[0] for _ in range(batch_size)])
