"""Per-head attention scores for every head of every layer, head-composition scores, and the
circuits read off the weights: OV copying, positional QK patterns and the path expansion.

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

The circuits follow Elhage et al. (2021): a head's full OV circuit ``W_E W_V W_O W_U`` (vocab x
vocab, rank ``d_head``) copies when its eigenvalues are positive; its positional QK circuit
``W_pos W_Q W_K^T W_pos^T`` says where it looks by position alone; and the logits of an
attention-only model expand into a direct path, one path per head and one *virtual head* per
pair of heads in successive layers (:func:`path_logits`).
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
    eye = torch.eye(W_V.shape[-1], dtype=W_V.dtype, device=W_V.device)  # [d_head, d_head]
    norm_A = factored_frobenius(W_V, eye, W_O)
    norm_B = factored_frobenius(B1, eye, B2)
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


def ov_circuit(model: HookedTransformer, layer: int, ids: Int[Tensor, " n"]) -> FactoredMatrix:
    """The full OV circuits ``W_E W_V W_O W_U`` of a layer's heads restricted to the tokens
    ``ids``, as one ``[head, n, n]`` factored matrix: entry ``[a, b]`` is how much attending to
    a token ``a`` raises the logit of ``b``."""
    ids = ids.to(model.W_E.device)
    left = einops.einsum(model.W_E[ids], model.W_V[layer], "n d_model, h d_model d_head -> h n d_head")
    right = einops.einsum(model.W_O[layer], model.W_U[:, ids], "h d_head d_model, d_model n -> h d_head n")
    return FactoredMatrix(left, right)


def copying_scores(
    model: HookedTransformer, ids: Int[Tensor, " n"]
) -> dict[str, Float[Tensor, "layer head"]]:
    """Eigenvalue copying scores of every head's full OV circuit over the tokens ``ids``.

    ``positive``: the fraction of its ``d_head`` non-zero eigenvalues with positive real part;
    ``eigenvalue``: Elhage et al.'s summary ``sum(lambda) / sum(|lambda|)`` (real parts over
    moduli), 1 for a pure copier and -1 for a pure anti-copier. The eigenvalues are those of the
    ``d_head x d_head`` product ``B A`` (as ``FactoredMatrix.eigenvalues``), one layer at a time,
    taken in float32 whatever the model's dtype (there is no half-precision eigensolver)."""
    eig = torch.stack(
        [
            torch.linalg.eigvals(ov_circuit(model, layer, ids).BA.float())
            for layer in range(model.cfg.n_layers)
        ]
    )
    return {
        "positive": (eig.real > 0).float().mean(-1),
        "eigenvalue": eig.real.sum(-1) / eig.abs().sum(-1),
    }


def ov_top1(
    model: HookedTransformer, head: tuple[int, int], ids: Int[Tensor, " n"], chunk: int = 1024
) -> float:
    """Full-OV top-1: the fraction of tokens ``a`` of ``ids`` whose largest output logit through
    the head's full OV circuit is ``a`` itself (:func:`diagonal_top1_accuracy`)."""
    layer, h = head
    return diagonal_top1_accuracy(ov_circuit(model, layer, ids)[h], torch.arange(len(ids)), chunk=chunk)


def positional_qk(model: HookedTransformer, layer: int, head: int) -> Float[Tensor, "query key"]:
    """A head's positional QK circuit ``W_pos W_Q W_K^T W_pos^T / sqrt(d_head)``: the attention
    score from query position ``q`` to key position ``k`` through the positional embeddings
    alone (LayerNorm and the token embeddings left out)."""
    query = model.W_pos @ model.W_Q[layer, head]  # [n_ctx, d_head]
    key = model.W_pos @ model.W_K[layer, head]
    return einops.einsum(query, key, "q d_head, k d_head -> q k") / model.cfg.d_head**0.5


def previous_position_top1(qk: Float[Tensor, "query key"]) -> float:
    """Fraction of query positions ``q >= 1`` whose highest causal score (keys ``k <= q``) is on
    the previous position ``q - 1``."""
    n = qk.shape[0]
    causal = torch.ones(n, n, dtype=torch.bool, device=qk.device).tril()
    best = qk.masked_fill(~causal, float("-inf")).argmax(-1)[1:]  # [query - 1]
    return (best == torch.arange(n - 1, device=qk.device)).float().mean().item()


def _norm_linear(model: HookedTransformer, name: str, scale: Float[Tensor, "batch pos 1"]):
    """The normalisation ``name`` ('blocks.L.ln1' or 'ln_final') with its scale frozen, split into
    its linear part and its constant: ``LN(x) = linear(x) + constant``."""
    cfg = model.cfg
    if cfg.normalization_type is None:
        return (lambda x: x), 0.0
    if cfg.normalization_type not in ("LN", "LNPre"):
        raise ValueError(f"path_logits supports LayerNorm models; this one uses {cfg.normalization_type!r}")
    module = model.get_submodule(name)
    weight, bias = getattr(module, "w", None), getattr(module, "b", None)

    def linear(x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        out = (x - x.mean(-1, keepdim=True)) / scale
        return out * weight if weight is not None else out

    return linear, (bias if bias is not None else 0.0)


def _heads_out(
    model: HookedTransformer,
    layer: int,
    pattern: Float[Tensor, "batch head dest src"],
    normed: Float[Tensor, "batch pos d_model"],
    b_V: Tensor | float = 0.0,
) -> Float[Tensor, "head batch pos d_model"]:
    """Each head's output in ``layer`` when its values read ``normed``, its pattern held fixed, in
    float32."""
    v = einops.einsum(normed, model.W_V[layer].float(), "b p d, h d e -> b p h e") + b_V
    z = einops.einsum(pattern, v, "b h q k, b k h e -> b q h e")
    return einops.einsum(z, model.W_O[layer].float(), "b q h e, h e d -> h b q d")


def path_logits(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> tuple[Float[Tensor, "path batch pos-1"], list[str]]:
    """The path expansion of an attention-only model (Elhage et al. 2021), measured on ``tokens``.

    With every attention pattern and LayerNorm scale frozen at its value on ``tokens``, the logits
    are a sum of paths: ``direct`` (embedding and positions straight to the unembedding), one
    path per head reading the embedding (``LlHh``), one *virtual head* per pair of heads where
    the later reads the earlier's output (``LaHb>LcHd``), ``longer`` paths through three heads or
    more (none in two layers), and ``bias`` (every bias and LayerNorm offset). Returns each
    path's contribution to the logit of the actual next token minus the mean logit over the
    vocabulary, at every position but the last; the paths sum to the model's own. Computed in
    float32 whatever the model's dtype."""
    cfg = model.cfg
    if not cfg.attn_only:
        raise ValueError("path_logits expands attention-only models; this one has MLPs")
    tokens = tokens.to(cfg.device)
    names = {"hook_embed", "hook_pos_embed", "ln_final.hook_scale"}
    names |= {get_act_name("pattern", layer) for layer in range(cfg.n_layers)}
    names |= {f"blocks.{layer}.ln1.hook_scale" for layer in range(cfg.n_layers)}
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    ones = torch.ones(*tokens.shape, 1, device=cfg.device)
    embed = cache["hook_embed"] + cache.cache_dict.get("hook_pos_embed", 0.0)
    paths: dict[str, Float[Tensor, "batch pos d_model"]] = {"direct": embed.float()}
    order = {"direct": 0}
    bias = torch.zeros_like(paths["direct"])
    for layer in range(cfg.n_layers):
        linear, offset = _norm_linear(
            model, f"blocks.{layer}.ln1", cache.cache_dict.get(f"blocks.{layer}.ln1.hook_scale", ones)
        )
        pattern = cache[get_act_name("pattern", layer)].float()

        new: dict[str, Tensor] = {}
        for label, x in paths.items():
            for head, out in enumerate(_heads_out(model, layer, pattern, linear(x))):
                name = f"L{layer}H{head}" if label == "direct" else f"{label}>L{layer}H{head}"
                if order[label] >= 2:
                    name = "longer"
                new[name] = new.get(name, 0.0) + out
                order[name] = min(order[label] + 1, 3)
        paths.update(new)
        bias = bias + _heads_out(model, layer, pattern, linear(bias) + offset, model.b_V[layer]).sum(0)
        bias = bias + model.b_O[layer]
    linear, offset = _norm_linear(model, "ln_final", cache.cache_dict.get("ln_final.hook_scale", ones))
    next_tokens = tokens[:, 1:]
    W_U = model.W_U.float()
    direction = W_U[:, next_tokens] - W_U.mean(-1)[:, None, None]  # [d_model batch pos-1]
    labels = [label for label in paths if label != "longer"] + (["longer"] if "longer" in paths else [])

    def logit(x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos-1"]:
        return einops.einsum(x[:, :-1], direction, "b p d, d b p -> b p")

    out = [logit(linear(paths[label])) for label in labels]
    b_U = model.b_U[next_tokens] - model.b_U.mean()
    out.append(logit(linear(bias) + offset) + b_U)
    return torch.stack(out), labels + ["bias"]
