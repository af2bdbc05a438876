"""The exact next-token distribution of the book's synthetic language: the generative program
replayed on given tokens, with the text's topic marginalised by Bayesian filtering or given.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from lib.language.lexicon import BOS_ID, TOPICS, VOCAB
from lib.language.program import _Dist, _Text


def _replay(text: list[int], topic: int) -> list[_Dist]:
    """The distribution each token of ``text`` was drawn from, replaying the program under
    ``topic``; raises ``ValueError`` at a token the grammar cannot produce there."""
    program, dists = _Text(topic).program(), []
    for i, tok in enumerate(text):
        dists.append(next(program) if i == 0 else program.send(text[i - 1]))
        if tok not in dists[-1].prob:
            prefix = " ".join(VOCAB[t] for t in text[:i])
            raise ValueError(f"token {VOCAB[tok]!r} cannot follow {prefix!r} in the grammar")
    return dists


def _segments(row: list[int]) -> list[tuple[int, list[int]]]:
    """(position of the opening ``<bos>``, the text's tokens up to and including its closing
    ``<bos>``) for every text in a row."""
    starts = [i for i, t in enumerate(row) if t == BOS_ID]
    if not starts or starts[0] != 0:
        raise ValueError("every row must start with <bos>")
    ends = starts[1:] + [len(row) - 1]
    return [(s, row[s + 1 : e + 1]) for s, e in zip(starts, ends) if e > s]


def _score(
    tokens: Int[Tensor, "batch pos"], topic: Int[Tensor, "batch pos"] | None, dense: bool
) -> Float[Tensor, "batch pos-1 ..."]:
    batch, n = tokens.shape
    out = torch.zeros(batch, n - 1, len(VOCAB) if dense else 1, dtype=torch.float64)
    for b, row in enumerate(tokens.tolist()):
        for start, text in _segments(row):
            topics = range(len(TOPICS)) if topic is None else [int(topic[b, start + 1])]
            dists = [_replay(text, z) for z in topics]
            lp = torch.tensor(
                [[math.log(d.prob[t]) for d, t in zip(ds, text)] for ds in dists], dtype=torch.float64
            )  # [topic, T]: log p(x_t | x_<t, topic)
            before = torch.cat([torch.zeros(len(topics), 1, dtype=torch.float64), lp.cumsum(1)[:, :-1]], 1)
            posterior = (before - before.logsumexp(0)).exp()  # p(topic | x_<t), uniform prior
            span = slice(start, start + len(text))
            if dense:
                # [topic, T, vocab]
                table = torch.tensor(np.array([[d.dense() for d in ds] for ds in dists]))
                out[b, span] = torch.einsum("zt,ztv->tv", posterior, table)
            else:
                out[b, span, 0] = (posterior * lp.exp()).sum(0).log()
    return out.float() if dense else out[..., 0].float()


def true_next_token_logprobs(
    tokens: Int[Tensor, "batch pos"], topic: Int[Tensor, "batch pos"] | None = None
) -> Float[Tensor, "batch pos-1"]:
    """Log-probability of each actual next token under the generator: entry ``t`` is
    ``log p(tokens[:, t+1] | tokens[:, :t+1])``.

    By default the text's topic, the only latent the tokens do not determine, is marginalised out
    exactly by Bayesian filtering over the topics (every other latent is a function of the
    prefix: the grammar is unambiguous). This is the language's true conditional distribution
    given the tokens of the current text, so minus its mean is the irreducible loss: no model that
    sees the same tokens can have a lower expected cross-entropy. (Earlier texts in a packed row
    are independent and carry no information; a text cut at the end of a row is scored up to the
    cut.)

    With ``topic`` (the corpus's ``latents["topic"]``) it conditions on the true topic too: the
    "oracle with latents". That is a lower bound no token-only model reaches, since the topic must
    be inferred from the tokens. Summed over a text, the topic-marginal loss exceeds it by at most
    ``log(5)`` nats, and on average by the information the text carries about its topic.
    """
    return _score(tokens, topic, dense=False)


def true_next_token_probs(
    tokens: Int[Tensor, "batch pos"], topic: Int[Tensor, "batch pos"] | None = None
) -> Float[Tensor, "batch pos-1 vocab"]:
    """The full next-token distribution after every prefix, under the generator, with the topic
    marginalised or given as in :func:`true_next_token_logprobs`."""
    return _score(tokens, topic, dense=True)
