"""The exact next-token distribution of the book's synthetic language: the generative program
replayed on given tokens, with the text's topic marginalised by Bayesian filtering or given, and
the row's kind (texts, or repeated random words of unknown period) marginalised the same way.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from lib.language.lexicon import BOS_ID, TOPICS, VOCAB, WORD_IDS
from lib.language.program import P_RANDOM_ROW, RANDOM_PERIOD, _Dist, _Text


def _replay(text: list[int], topic: int) -> tuple[list[_Dist], int | None]:
    """The distribution each token of ``text`` was drawn from, replaying the program under
    ``topic``, up to and including the first token the grammar cannot produce there (whose index
    is returned, else ``None``)."""
    program, dists = _Text(topic).program(), []
    for i, tok in enumerate(text):
        dists.append(next(program) if i == 0 else program.send(text[i - 1]))
        if tok not in dists[-1].prob:
            return dists, i
    return dists, None


def _segments(row: list[int]) -> list[tuple[int, list[int]]]:
    """(position of the opening ``<bos>``, the text's tokens up to and including its closing
    ``<bos>``) for every text in a row."""
    starts = [i for i, t in enumerate(row) if t == BOS_ID]
    ends = starts[1:] + [len(row) - 1]
    return [(s, row[s + 1 : e + 1]) for s, e in zip(starts, ends) if e > s]


def _filter(text: list[int], topics: list[int]) -> tuple[list[list[_Dist]], int | None, Tensor, Tensor]:
    """Bayesian filtering of one text over ``topics``: the replayed distributions per topic, the
    index of the first token the grammar refuses (or ``None``), log p(x_t | x_<t, topic) for the
    tokens before it ([topic, m]), and the posterior p(topic | x_<t) for t = 0 .. m ([topic, m+1],
    from a uniform prior)."""
    replays = [_replay(text, z) for z in topics]
    fail = replays[0][1]
    m = len(text) if fail is None else fail  # tokens the grammar can produce
    dists = [ds[: m + (fail is not None)] for ds, _ in replays]
    per_topic = torch.tensor(
        [[math.log(d.prob[t]) for d, t in zip(ds, text[:m])] for ds in dists], dtype=torch.float64
    ).reshape(len(topics), m)
    before = torch.cat([torch.zeros(len(topics), 1, dtype=torch.float64), per_topic.cumsum(1)], 1)
    return dists, fail, per_topic, (before - before.logsumexp(0)).exp()


def _texts(row: list[int], topic: list[int] | None, dense: bool) -> tuple[Tensor, Tensor | None, str | None]:
    """The row read as packed texts: log p(actual next token) per position ([pos-1], -inf from
    the first ungrammatical token on), the next-token tables when ``dense`` ([pos-1, vocab]),
    and why the grammar refuses the row (``None`` if it does not). ``topic`` gives each token's
    text's topic, or is ``None`` to marginalise each text's topic by Bayesian filtering."""
    n = len(row) - 1
    lp = torch.full((n,), -math.inf, dtype=torch.float64)
    table = torch.zeros(n, len(VOCAB), dtype=torch.float64) if dense else None
    for start, text in _segments(row):
        topics = list(range(len(TOPICS))) if topic is None else [topic[start + 1]]
        dists, fail, per_topic, posterior = _filter(text, topics)
        m = per_topic.shape[1]
        lp[start : start + m] = (posterior[:, :m] * per_topic.exp()).sum(0).log()
        if dense:
            k = len(dists[0])  # [topic, k, vocab]
            tables = torch.tensor(np.array([[d.dense() for d in ds] for ds in dists]))
            table[start : start + k] = torch.einsum("zt,ztv->tv", posterior[:, :k], tables)
        if fail is not None:
            prefix = " ".join(VOCAB[t] for t in text[:fail])
            return lp, table, f"token {VOCAB[text[fail]]!r} cannot follow {prefix!r} in the grammar"
    return lp, table, None


def topic_posterior(tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos topic"]:
    """The generator's posterior over the current text's topic after every token,
    ``p(topic | the text's tokens up to and including this one)``: exact Bayesian filtering from
    a uniform prior, which is what an ideal reader of the text knows about its topic (uniform at
    each ``<bos>``, where a text starts). Rows must be texts of the language."""
    out = torch.full((*tokens.shape, len(TOPICS)), 1 / len(TOPICS), dtype=torch.float64)
    for b, row in enumerate(tokens.tolist()):
        if row[0] != BOS_ID:
            raise ValueError("every row must start with <bos>")
        for start, text in _segments(row):
            _, fail, _, posterior = _filter(text, list(range(len(TOPICS))))
            if fail is not None:
                raise ValueError(
                    f"row {b} is not texts of the language: {VOCAB[text[fail]]!r} cannot occur there"
                )
            out[b, start : start + len(text) + 1] = posterior.T  # the next text's <bos> is overwritten next
    return out.float()


def continuation_topic_posterior(
    new: Int[Tensor, "batch new"],
) -> tuple[Float[Tensor, "batch topic"], Int[Tensor, " batch"]]:
    """For continuations of a lone ``<bos>`` (generated texts, each cut after its first
    ``<bos>``): the generator's posterior over the text's topic given the tokens before the
    first one the grammar cannot produce, and how many tokens that is. A text the model wrote
    off the grammar is judged by its grammatical beginning."""
    posteriors, lengths = [], []
    for row in new.tolist():
        text = row[: row.index(BOS_ID) + 1] if BOS_ID in row else row
        _, fail, _, posterior = _filter(text, list(range(len(TOPICS))))
        posteriors.append(posterior[:, -1])
        lengths.append(len(text) if fail is None else fail)
    return torch.stack(posteriors).float(), torch.tensor(lengths)


def _random_words(row: list[int], dense: bool) -> tuple[Tensor, Tensor | None]:
    """The row read as random words repeated with an unknown period ``N`` (uniform prior over
    :data:`RANDOM_PERIOD`): log p(actual next token) per position and the tables when ``dense``,
    with ``N`` marginalised exactly (a period stays possible while the row repeats with it)."""
    x, n = row[1:], len(row) - 1
    periods = range(RANDOM_PERIOD[0], RANDOM_PERIOD[1] + 1)
    words = set(WORD_IDS.tolist())
    uniform = -math.log(len(words))
    lp = torch.full((n,), -math.inf, dtype=torch.float64)
    table = torch.zeros(n, len(VOCAB), dtype=torch.float64) if dense else None
    weight = torch.zeros(len(periods), dtype=torch.float64)  # log p(x_<t | N), flat prior
    for t in range(n):
        fresh = torch.tensor([t < p for p in periods])
        copy = torch.tensor([x[t - p] if t >= p else -1 for p in periods])
        actual = torch.where(
            fresh,
            uniform if x[t] in words else -math.inf,
            torch.where(copy == x[t], 0.0, -math.inf).double(),
        )
        post = (weight - weight.logsumexp(0)).exp()
        if dense:
            table[t, list(words)] = post[fresh].sum() / len(words)
            table[t].index_add_(0, copy[~fresh], post[~fresh])
        lp[t] = (weight + actual).logsumexp(0) - weight.logsumexp(0)
        weight = weight + actual
        if weight.isinf().all():
            break
    return lp, table


def _score(
    tokens: Int[Tensor, "batch pos"], topic: Int[Tensor, "batch pos"] | None, dense: bool
) -> Float[Tensor, "batch pos-1 ..."]:
    batch, n = tokens.shape
    out = torch.zeros(batch, n - 1, len(VOCAB) if dense else 1, dtype=torch.float64)
    for b, row in enumerate(tokens.tolist()):
        if row[0] != BOS_ID:
            raise ValueError("every row must start with <bos>")
        kinds = [math.log(1 - P_RANDOM_ROW), math.log(P_RANDOM_ROW)]  # texts, random words
        if topic is not None:  # the oracle knows the row's kind too: random rows have topic -1
            kinds[int(topic[b, 1]) >= 0] = -math.inf
        text_lp, text_table, refusal = _texts(row, None if topic is None else topic[b].tolist(), dense)
        rand_lp, rand_table = _random_words(row, dense)
        lps = torch.stack([text_lp, rand_lp])  # [kind, pos-1]
        prior = torch.tensor(kinds, dtype=torch.float64)[:, None]
        before = prior + torch.cat([torch.zeros(2, 1, dtype=torch.float64), lps.cumsum(1)[:, :-1]], 1)
        lp = (before + lps).logsumexp(0) - before.logsumexp(0)
        if not lp.isfinite().all():
            raise ValueError(refusal or "the row is neither texts of the language nor repeated random words")
        posterior = (before - before.logsumexp(0)).exp()  # [kind, pos-1]
        if dense:
            out[b] = posterior[0, :, None] * text_table + posterior[1, :, None] * rand_table
        else:
            out[b, :, 0] = lp
    return out.float() if dense else out[..., 0].float()


def true_next_token_logprobs(
    tokens: Int[Tensor, "batch pos"], topic: Int[Tensor, "batch pos"] | None = None
) -> Float[Tensor, "batch pos-1"]:
    """Log-probability of each actual next token under the generator: entry ``t`` is
    ``log p(tokens[:, t+1] | tokens[:, :t+1])``.

    By default the latents the tokens do not determine are marginalised out exactly by Bayesian
    filtering: the text's topic, whether the row is texts or repeated random words
    (prior :data:`P_RANDOM_ROW`), and a random row's period (every other latent is a function
    of the prefix: the grammar is unambiguous, and a repeated sentence's distribution is over the
    earlier sentences that agree with the copy so far). This is the language's true conditional
    distribution given the tokens of the current text, so minus its mean is the irreducible loss:
    no model that sees the same tokens can have a lower expected cross-entropy. (Earlier texts in a packed row
    are independent and carry no information; a text cut at the end of a row is scored up to the
    cut.)

    With ``topic`` (the corpus's ``latents["topic"]``) it conditions on the true topic, and on the
    row's kind (random rows have topic -1), too: the "oracle with latents". That is a lower bound
    no token-only model reaches, since the topic must be inferred from the tokens. Summed over a
    text, the topic-marginal loss exceeds it by at most ``log(5)`` nats, and on average by the
    information the text carries about its topic.
    """
    return _score(tokens, topic, dense=False)


def true_next_token_probs(
    tokens: Int[Tensor, "batch pos"], topic: Int[Tensor, "batch pos"] | None = None
) -> Float[Tensor, "batch pos-1 vocab"]:
    """The full next-token distribution after every prefix, under the generator, with the topic
    marginalised or given as in :func:`true_next_token_logprobs`."""
    return _score(tokens, topic, dense=True)
