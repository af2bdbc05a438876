"""Per-head attention scores for every head of every layer, and head-composition scores.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py); the attention-sinks
chapter reuses the first-token score (the sink metrics themselves are in :mod:`lib.sinks`).

Every score is "attention mass on a set of target source positions", with the targets defined
from the tokens alone, so the same routine works on repeated random tokens and on text:

- ``previous``: the source ``dest - 1``;
- ``duplicate``: earlier sources holding the same token as ``dest``;
- ``induction``: sources right after an earlier occurrence of the token at ``dest``
  (for ``[A][B] ... [A]``, the ``[B]``);
- ``first``: the first position (the BOS token, the usual attention sink).

A head's score is the mean, over every (sequence, destination) that has at least one target, of
the attention mass it puts on the targets. On BOS + twice ``seq_len`` distinct random tokens the
induction score is the mean of the pattern's ``1 - seq_len`` offset diagonal over the second
half, the detector of the source post.
"""

from __future__ import annotations

from typing import Literal, get_args

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix, HookedTransformer
from transformer_lens.utilities import get_act_name

from lib.hooks import every_layer, reduce_pass

ScoreKind = Literal["previous", "duplicate", "induction", "first"]
SCORE_KINDS: tuple[ScoreKind, ...] = get_args(ScoreKind)


def target_mask(tokens: Int[Tensor, "batch pos"], kind: ScoreKind) -> Bool[Tensor, "batch dest src"]:
    """Which source positions count as targets for each destination (see the module doc)."""
    batch, n = tokens.shape
    dest = torch.arange(n, device=tokens.device)[:, None]
    src = torch.arange(n, device=tokens.device)[None, :]
    if kind == "previous":
        return (src == dest - 1).expand(batch, n, n)
    if kind == "first":
        return ((src == 0) & (dest > 0)).expand(batch, n, n)
    same = tokens[:, :, None] == tokens[:, None, :]  # [batch, dest, src]: token(dest) == token(src)
    if kind == "duplicate":
        return same & (src < dest)
    if kind == "induction":
        # source s is a target when token(s - 1) == token(dest) and s - 1 < dest
        shifted = torch.zeros_like(same)
        shifted[:, :, 1:] = same[:, :, :-1]
        return shifted & (src <= dest) & (src >= 1)
    raise ValueError(f"unknown score kind {kind!r}; allowed: {', '.join(SCORE_KINDS)}")


def head_scores(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    kinds: tuple[ScoreKind, ...] = SCORE_KINDS,
) -> dict[str, Float[Tensor, "n_layers n_heads"]]:
    """Scores of every kind for every head, from one :func:`lib.hooks.reduce_pass` that reduces
    each layer's attention pattern to per-head scores as the forward pass goes."""
    for kind in kinds:
        if kind not in SCORE_KINDS:
            raise ValueError(f"unknown score kind {kind!r}; allowed: {', '.join(SCORE_KINDS)}")
    tokens = tokens.to(model.cfg.device)
    masks = {kind: target_mask(tokens, kind) for kind in kinds}
    scores = {
        kind: torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device) for kind in kinds
    }

    def reduce_pattern(pattern: Float[Tensor, "batch head dest src"], hook) -> None:
        for kind, mask in masks.items():
            mass = einops.einsum(
                pattern.float(), mask.float(), "batch head dest src, batch dest src -> batch head dest"
            )
            has_target = mask.any(-1)  # [batch, dest]
            scores[kind][hook.layer()] = einops.einsum(
                mass, has_target.float(), "batch head dest, batch dest -> head"
            ) / has_target.sum().clamp(min=1)

    reduce_pass(model, tokens, [(every_layer(model, "pattern"), reduce_pattern)])
    return scores


def attention_patterns(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    heads: list[tuple[int, int]],
) -> Float[Tensor, "n_heads_selected batch dest src"]:
    """The attention patterns of the chosen ``(layer, head)`` pairs, caching only the layers
    they sit in."""
    names = {get_act_name("pattern", layer) for layer, _ in heads}
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    return torch.stack([cache["pattern", layer][:, head] for layer, head in heads])


def factored_frobenius(
    left: Float[Tensor, "... d_model d_head"],
    middle: Float[Tensor, "... d_head d_head"],
    right: Float[Tensor, "... d_head d_model"],
) -> Float[Tensor, ...]:
    """``|| left @ middle @ right ||_F`` without forming the d_model x d_model product:
    ``tr((L^T L) M (R R^T) M^T)``."""
    gram_left = left.mT @ left
    gram_right = right @ right.mT
    return (
        torch.einsum("...ij,...jk,...kl,...il->...", gram_left, middle, gram_right, middle)
        .clamp(min=0)
        .sqrt()
    )


def composition_scores(model: HookedTransformer, kind: str) -> Float[Tensor, "layer1 head1 layer2 head2"]:
    """Q-, K- or V-composition scores (Elhage et al. 2021) for every ordered pair of heads.

    ``||W_A W_B||_F / (||W_A||_F ||W_B||_F)`` with ``W_A`` the OV circuit of the earlier head and
    ``W_B`` the QK circuit (``q``), transposed QK circuit (``k``) or OV circuit (``v``) of the
    later head; pairs where the later head does not sit in a later layer are NaN.
    """
    if kind not in ("q", "k", "v"):
        raise ValueError(f"unknown composition kind {kind!r}; allowed: q, k, v")
    W_V, W_O, W_Q, W_K = model.W_V, model.W_O, model.W_Q, model.W_K  # [layer head d_model d_head] ...
    # W_A = W_V W_O (earlier head); W_B = B1 B2 (later head), both rank d_head
    if kind == "q":
        B1, B2 = W_Q, W_K.mT
    elif kind == "k":
        B1, B2 = W_K, W_Q.mT
    else:
        B1, B2 = W_V, W_O
    L, H = model.cfg.n_layers, model.cfg.n_heads
    A1 = W_V[:, :, None, None]  # [L H 1 1 d_model d_head]
    A2 = W_O[:, :, None, None]
    middle = A2 @ B1[None, None]  # [L H L H d_head d_head]
    product = factored_frobenius(A1, middle, B2[None, None])
    norm_A = factored_frobenius(W_V, torch.eye(W_V.shape[-1], device=W_V.device), W_O)
    norm_B = factored_frobenius(B1, torch.eye(B1.shape[-1], device=B1.device), B2)
    scores = product / (norm_A[:, :, None, None] * norm_B[None, None])
    later = torch.arange(L, device=scores.device)
    valid = later[None, :] > later[:, None]  # [layer1, layer2]
    return scores.masked_fill(~valid[:, None, :, None].expand(L, H, L, H), float("nan"))


def k_composition_circuit(
    model: HookedTransformer, prev: tuple[int, int], ind: tuple[int, int]
) -> FactoredMatrix:
    """The K-composition full circuit ``W_E W_Q (W_E W_V W_O W_K)^T`` between a previous-token
    head ``prev`` and an induction head ``ind``: entry ``[a, b]`` is how much a query on token
    ``a`` attends to a key whose previous token was ``b``."""
    (lp, hp), (li, hi) = prev, ind
    query = FactoredMatrix(model.W_E, model.W_Q[li, hi])
    key = FactoredMatrix(model.W_E @ model.W_V[lp, hp], model.W_O[lp, hp] @ model.W_K[li, hi])
    return query @ key.T


def diagonal_top1_accuracy(circuit: FactoredMatrix, ids: Int[Tensor, " n"], chunk: int = 4096) -> float:
    """Fraction of rows ``a`` (restricted to ``ids`` x ``ids``) whose largest entry is on the
    diagonal; rows are materialised ``chunk`` at a time so a 50k-token vocabulary fits in memory."""
    ids = ids.to(circuit.A.device)
    right = circuit.B[:, ids]  # [d_head, n]
    hits = torch.zeros((), device=ids.device)
    for start in range(0, len(ids), chunk):
        rows = ids[start : start + chunk]
        block = circuit.A[rows] @ right  # [chunk, n]
        hits += (block.argmax(-1) == torch.arange(start, start + len(rows), device=ids.device)).sum()
    return (hits / len(ids)).item()
