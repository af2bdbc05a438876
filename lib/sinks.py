"""Attention sinks: inputs without repeats, norms per head and position, massive activations,
interventions on the first token (removing the sink's value or the attention to it, batched over
sets of heads), the chance levels of the sink metrics, and window attention with and without
sink tokens.

Introduced in chapter 'Attention sinks' (chapters/attention_sinks.py). Every measurement is one
:func:`lib.hooks.reduce_pass` over the whole batch, reducing the activation it reads (a pattern,
the values, the head outputs, the residual stream) as the pass goes, with nothing cached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from lib import language, residual
from lib.hooks import every_layer, reduce_pass


def text_stream(seed: int, batch: int, length: int) -> Int[Tensor, "batch length"]:
    """Rows of texts of the synthetic language (:mod:`lib.language`; no rows of random words)
    that open with one ``<bos>`` and then run text after text with the ``<bos>`` separators
    between texts removed, so the first token is the only special one. Deterministic from ``seed``;
    the first ``batch`` corpus rows that are text, drawing more rows where too few are."""
    n_rows = 2 * batch + 8  # doubled while too few rows are text: the corpus keeps its first rows
    while True:
        corpus = language.sample_corpus(seed, n_rows, length + length // 2 + 8)
        texts = corpus.tokens[corpus.latents["topic"][:, 1] >= 0]
        rows = [row[row != language.BOS_ID][: length - 1] for row in texts[:batch]]
        if len(rows) == batch and min(len(row) for row in rows) == length - 1:
            break
        if n_rows > 32 * batch:
            raise ValueError(f"could not fill {batch} rows of {length} tokens from the corpus")
        n_rows *= 2
    return torch.cat([torch.full((batch, 1), language.BOS_ID, dtype=torch.long), torch.stack(rows)], dim=1)


def retokenize(
    model: HookedTransformer, rows: Int[Tensor, "batch n"], length: int
) -> Int[Tensor, "batch length"]:
    """Rows of the language (as from :func:`text_stream`) decoded to words and re-tokenized by
    ``model``'s own tokenizer with its BOS prepended, cut to ``length`` tokens: the same text for a
    real model."""
    texts = [" ".join(language.VOCAB[t] for t in row.tolist() if t != language.BOS_ID) for row in rows]
    encoded = [model.to_tokens(text, prepend_bos=True)[0] for text in texts]
    if min(len(e) for e in encoded) < length:
        raise ValueError(f"the texts re-tokenize to fewer than {length} tokens; pass longer rows")
    return torch.stack([e[:length] for e in encoded]).to(model.cfg.device)


def replace_first(tokens: Int[Tensor, "batch pos"], token_id: int) -> Int[Tensor, "batch pos"]:
    """The rows with their first token replaced by ``token_id``: does the sink follow the
    position or the token?."""
    replaced = tokens.clone()
    replaced[:, 0] = token_id
    return replaced


def uniform_first_mass(queries: Bool[Tensor, "batch pos"]) -> float:
    """The chance level of :func:`first_token_mass`: the share of the first position under uniform
    causal attention, where the query at position ``i`` (from 0) sees ``i + 1`` keys and gives each
    ``1 / (i + 1)``, averaged over the selected query positions."""
    share = 1.0 / torch.arange(1, queries.shape[1] + 1, dtype=torch.float64)
    picked = queries.cpu().to(torch.float64)
    return (picked * share).sum().item() / picked.sum().clamp(min=1).item()


def uniform_importance(n: int) -> float:
    """The chance level of :func:`token_importance` at the first position: under uniform causal
    attention over ``n`` tokens the first position gets ``1 / (i + 1)`` from each query ``i``, so its
    importance is the harmonic number ``H_n`` over ``n``."""
    return sum(1.0 / (i + 1) for i in range(n)) / n


def _query_mean(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    queries: Bool[Tensor, "batch pos"],
    read: Callable[[Float[Tensor, "batch head dest src"]], Float[Tensor, "batch head dest"]],
) -> Float[Tensor, "n_layers n_heads"]:
    """Mean over the selected query positions of ``read(pattern)``, for every head."""
    queries = queries.to(model.cfg.device).float()
    mass = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)

    def reduce(pattern: Float[Tensor, "batch head dest src"], hook) -> None:
        mass[hook.layer()] = einops.einsum(
            read(pattern.float()), queries, "batch head dest, batch dest -> head"
        ) / queries.sum().clamp(min=1)

    reduce_pass(model, tokens, [(every_layer(model, "pattern"), reduce)])
    return mass


def first_token_mass(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], queries: Bool[Tensor, "batch pos"]
) -> Float[Tensor, "n_layers n_heads"]:
    """Mean attention that the selected query positions pay to position 0, for every head: where
    an induction head looks when there is nothing to induct. ``queries`` picks the (sequence,
    position) pairs to average over."""
    return _query_mean(model, tokens, queries, lambda pattern: pattern[..., 0])


def null_mass(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], queries: Bool[Tensor, "batch pos"]
) -> Float[Tensor, "n_layers n_heads"]:
    """Mean attention that the selected query positions pay to no position at all, for every head:
    one minus the sum of the pattern's row. Under softmax it is 0 (to rounding). An attention with
    an extra logit beside the keys' (``cfg.use_attention_sinks``: softmax with an extra zero logit,
    Miller 2023, or GPT-OSS's learned logit per head) gives the extra logit this share, and what it
    moves is nothing: a built-in sink whose value is zero."""
    return _query_mean(model, tokens, queries, lambda pattern: 1 - pattern.sum(-1))


def token_importance(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "n_layers n_heads pos"]:
    """Gu et al.'s importance of every source position for every head: the mean attention it
    receives from the queries at or after it, ``alpha_k = sum_{i >= k} A[i, k] / (T - k)``
    (positions from 0), averaged over the batch."""
    n = tokens.shape[1]
    importance = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, n, device=model.cfg.device)
    n_queries = torch.arange(n, 0, -1, device=model.cfg.device).float()  # T - k queries see source k

    def reduce(pattern: Float[Tensor, "batch head dest src"], hook) -> None:
        received = einops.reduce(pattern.float(), "batch head dest src -> head src", "sum") / pattern.shape[0]
        importance[hook.layer()] = received / n_queries

    reduce_pass(model, tokens, [(every_layer(model, "pattern"), reduce)])
    return importance


def sink_rate(
    importance: Float[Tensor, "n_layers n_heads pos"], threshold: float = 0.3, position: int = 0
) -> float:
    """Gu et al.'s ``Sink_k``: the percentage of (layer, head) pairs whose importance of the
    source ``position`` (``k - 1``) exceeds ``threshold``."""
    return 100.0 * (importance[..., position] > threshold).float().mean().item()


def value_norms(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "n_layers n_heads pos"]:
    """L2 norm of every head's value vector at every position, averaged over the batch, from one
    forward pass reducing ``hook_v`` as it goes. Under grouped-query attention (Gemma-2, Llama-3,
    Qwen2, Mistral) ``hook_v`` holds ``n_key_value_heads`` value heads, each shared by a group of
    consecutive query heads (TransformerLens's ``repeat_interleave``); every query head gets the
    norm of the value head it reads."""
    norms = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, tokens.shape[1], device=model.cfg.device)

    def reduce(v: Float[Tensor, "batch pos kv_head d_head"], hook) -> None:
        per_kv_head = einops.reduce(v.float().norm(dim=-1), "batch pos kv_head -> kv_head pos", "mean")
        norms[hook.layer()] = einops.repeat(
            per_kv_head, "kv_head pos -> (kv_head group) pos", group=model.cfg.n_heads // v.shape[2]
        )

    reduce_pass(model, tokens, [(every_layer(model, "v"), reduce)])
    return norms


def head_output_norms(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "n_layers n_heads pos"]:
    """L2 norm of what every head writes to the residual stream (``z W_O``, without the bias) at
    every position, averaged over the batch: a dormant head writes little."""
    norms = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, tokens.shape[1], device=model.cfg.device)

    def reduce(z: Float[Tensor, "batch pos head d_head"], hook) -> None:
        out = einops.einsum(
            z.float(),
            model.W_O[hook.layer()].float(),
            "batch pos head d_head, head d_head d_model -> batch pos head d_model",
        )
        norms[hook.layer()] = einops.reduce(out.norm(dim=-1), "batch pos head -> head pos", "mean")

    reduce_pass(model, tokens, [(every_layer(model, "z"), reduce)])
    return norms


def head_output_spread(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], queries: Bool[Tensor, "batch pos"]
) -> Float[Tensor, "n_layers n_heads"]:
    """How much of what every head writes depends on the context: over the selected query
    positions, the mean distance of the head's output ``z W_O`` from its mean output, over the mean
    output norm. A head parked on the first token writes that token's value, the same in every
    context, so its spread is small."""
    queries = queries.to(model.cfg.device)
    spread = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)

    def reduce(z: Float[Tensor, "batch pos head d_head"], hook) -> None:
        out = einops.einsum(
            z.float()[queries],
            model.W_O[hook.layer()].float(),
            "query head d_head, head d_head d_model -> query head d_model",
        )
        deviation = (out - out.mean(0)).norm(dim=-1).mean(0)
        spread[hook.layer()] = deviation / out.norm(dim=-1).mean(0)

    reduce_pass(model, tokens, [(every_layer(model, "z"), reduce)])
    return spread


def massive_activations(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], top: int = 3
) -> dict[str, Tensor]:
    """The largest activations of the residual stream (Sun et al. 2024's massive activations), at
    each point of :func:`lib.residual.residual_names`: the ``top`` largest magnitudes over the whole batch
    (``value``, ``[n_points, top]``) with the ``position`` and ``dim`` where each sits, and the
    median magnitude (``median``, ``[n_points]``) to compare them with."""
    names = residual.residual_names(model)
    n, d = len(names), model.cfg.d_model
    out = {
        key: torch.zeros(n, top, dtype=dtype, device=model.cfg.device)
        for key, dtype in (("value", torch.float), ("position", torch.long), ("dim", torch.long))
    }
    out["median"] = torch.zeros(n, device=model.cfg.device)

    def reduce(resid: Float[Tensor, "batch pos d_model"], hook) -> None:
        point = names.index(hook.name)
        magnitude = resid.float().abs()
        value, flat = magnitude.flatten().topk(top)
        out["value"][point], out["position"][point], out["dim"][point] = (
            value,
            (flat // d) % resid.shape[1],
            flat % d,
        )
        out["median"][point] = magnitude.median()

    reduce_pass(model, tokens, [(names.__contains__, reduce)])
    return out


def window_mask(
    n: int, window: int, n_sink: int, device: torch.device | str = "cpu"
) -> Bool[Tensor, "dest src"]:
    """Which keys each query sees under window attention: the last ``window`` positions up to and
    including itself, plus the first ``n_sink`` positions (StreamingLLM's attention sinks; 0 for
    plain window attention)."""
    dest = torch.arange(n, device=device)[:, None]
    src = torch.arange(n, device=device)[None, :]
    return (src <= dest) & ((src > dest - window) | (src < n_sink))


def window_hooks(window: int, n_sink: int) -> list[tuple]:
    """Forward hooks that restrict every layer's attention to :func:`window_mask`, by setting the
    scores of hidden keys to ``-inf`` at ``hook_attn_scores``."""

    def mask(scores: Float[Tensor, "batch head dest src"], hook) -> Float[Tensor, "batch head dest src"]:
        visible = window_mask(scores.shape[-1], window, n_sink, scores.device)
        return scores.masked_fill(~visible, float("-inf"))

    return [(lambda name: name.endswith("hook_attn_scores"), mask)]


SinkRemoval = Literal["value", "attention"]
LOGIT_BUDGET = 2**26  # logits (floats) held at once by the loss passes: 256 MB in float32


def sink_removal_hooks(
    model: HookedTransformer, mode: SinkRemoval, row_heads: Bool[Tensor, "row n_layers n_heads"]
) -> list[tuple]:
    """Forward hooks that remove the sink in the heads ``row_heads`` marks, separately for every
    row of the batch, so that many interventions share one forward pass.

    ``"value"`` zeroes the first position's value contribution: the attention every query pays
    to position 0 is dropped without renormalising, which is the same as zeroing the value
    vector (bias included) at position 0 (the query at position 0 then writes nothing).
    ``"attention"`` hides position 0 from every later query, whose attention is renormalised over
    the other positions (a ``-inf`` score before the softmax); the query at position 0, which sees
    nothing else, keeps it."""
    row_heads = row_heads.to(model.cfg.device)

    def zero_value(pattern: Float[Tensor, "row head dest src"], hook) -> Float[Tensor, "row head dest src"]:
        dropped = row_heads[:, hook.layer(), :, None]  # [row, head, 1]
        first = pattern[..., :1].masked_fill(dropped[..., None], 0.0)
        return torch.cat([first, pattern[..., 1:]], dim=-1)

    def hide(scores: Float[Tensor, "row head dest src"], hook) -> Float[Tensor, "row head dest src"]:
        later = torch.arange(scores.shape[2], device=scores.device) > 0  # [dest]
        hidden = row_heads[:, hook.layer(), :, None] & later  # [row, head, dest]
        first = scores[..., :1].masked_fill(hidden[..., None], float("-inf"))
        return torch.cat([first, scores[..., 1:]], dim=-1)

    if mode == "value":
        return [(every_layer(model, "pattern"), zero_value)]
    if mode == "attention":
        return [(every_layer(model, "attn_scores"), hide)]
    raise ValueError(f"mode={mode!r} is not a sink removal; expected 'value' or 'attention'")


def _token_losses(
    logits: Float[Tensor, "row pos d_vocab"], tokens: Int[Tensor, "row pos"]
) -> Float[Tensor, "row pos-1"]:
    """Cross-entropy of every next token, per row and predicting position."""
    logprobs = logits[:, :-1].float().log_softmax(-1)
    return -logprobs.gather(-1, tokens[:, 1:, None])[..., 0]


def sink_removal_loss(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    head_sets: Bool[Tensor, "n_sets n_layers n_heads"],
    mode: SinkRemoval,
    rows_per_pass: int | None = None,
) -> Float[Tensor, "n_sets pos-1"]:
    """Next-token loss per predicting position, averaged over the batch, with the sink removed
    (:func:`sink_removal_hooks`, ``mode``) in the heads of each set of ``head_sets``: an empty set
    is the unchanged model, one head per set gives every head's effect. The sets go on the batch
    dimension (every set sees every row), ``rows_per_pass`` rows at a time (by default as many as
    keep :data:`LOGIT_BUDGET` logits in memory)."""
    n_sets, (batch, n) = head_sets.shape[0], tokens.shape
    rows = einops.repeat(tokens.to(model.cfg.device), "batch pos -> (set batch) pos", set=n_sets)
    row_heads = einops.repeat(head_sets.bool(), "set layer head -> (set batch) layer head", batch=batch)
    rows_per_pass = rows_per_pass or max(1, LOGIT_BUDGET // (n * model.cfg.d_vocab))
    losses = []
    with torch.no_grad():
        for chunk, heads in zip(rows.split(rows_per_pass), row_heads.split(rows_per_pass)):
            logits = model.run_with_hooks(chunk, fwd_hooks=sink_removal_hooks(model, mode, heads))
            losses.append(_token_losses(logits, chunk))
    return einops.reduce(torch.cat(losses), "(set batch) pos -> set pos", "mean", set=n_sets)


def next_token_loss(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    window: int | None = None,
    n_sink: int = 0,
    chunk: int = 4,
) -> Float[Tensor, " pos-1"]:
    """Cross-entropy of each next token, averaged over the batch, per predicting position; with
    ``window`` set, under window attention keeping the first ``n_sink`` tokens visible. Rows go
    through the model ``chunk`` at a time, so the logits of long inputs over a large vocabulary
    fit in memory."""
    hooks = window_hooks(window, n_sink) if window is not None else []
    tokens = tokens.to(model.cfg.device)
    total = torch.zeros(tokens.shape[1] - 1, device=model.cfg.device)
    with torch.no_grad():
        for rows in tokens.split(chunk):
            total += _token_losses(model.run_with_hooks(rows, fwd_hooks=hooks), rows).sum(0)
    return total / tokens.shape[0]
