"""Planning a sweep: its patches, the first position each one changes, the groups of patches
that share forward passes, and the activation memory of one row of a patched pass."""

from __future__ import annotations

from dataclasses import dataclass, field

import einops
import torch
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from lib.patching.request import Source, _Request
from lib.patching.target import _Target


@dataclass(frozen=True)
class Patch:
    """One patch of a sweep: a layer, and a head and a position where the sweep has them."""

    layer: int
    head: int | None
    pos: int | None


@dataclass
class Group:
    """Patches that share forward passes: same layer, and (for one-position patches) nearby
    positions. Block ``layer`` runs on positions ``[start, end)``, later blocks on ``[start,
    pos)``; ``start`` is the first position any of them changes (causal attention: earlier
    positions are the target run's), ``end`` one past the last patched position (a patch
    after the attention of block ``layer`` changes no other position of that block)."""

    layer: int
    start: int
    end: int
    patches: list[int] = field(default_factory=list)  # indices into the sweep's patch list


def _patches(req: _Request) -> list[Patch]:
    """Every patch of a sweep, in result order (row-major over the result's axes)."""
    if req.by == "layer":
        return [Patch(layer, None, None) for layer in req.layers]
    if req.by == "layer_pos":
        return [Patch(layer, None, pos) for layer in req.layers for pos in req.positions]
    if req.by == "head":
        return [Patch(layer, head, None) for layer in req.layers for head in req.heads]
    return [Patch(layer, head, pos) for layer in req.layers for pos in req.positions for head in req.heads]


def _starts(
    model: HookedTransformer,
    req: _Request,
    patches: list[Patch],
    source: Source,
    target: _Target,
    skip_identical: bool,
) -> list[int | None]:
    """The first position each patch changes (None: it changes nothing, the source equals the
    target there for every prompt); one host sync for the whole sweep."""
    per_layer = []
    for layer in req.layers:
        if not skip_identical:
            per_layer.append(None)
            continue
        src = source[get_act_name(req.site, layer)].to(target.site[layer].device, target.site[layer].dtype)
        diff = src != target.site[layer]
        per_layer.append(
            einops.reduce(diff, "b p h d -> p h", "max")
            if req.site == "z"
            else einops.reduce(diff, "b p d -> p 1", "max")
        )
    if skip_identical:
        changed = torch.stack(per_layer).cpu().tolist()  # [layer][pos][head or 0]
    index = {layer: i for i, layer in enumerate(req.layers)}
    starts: list[int | None] = []
    for patch in patches:
        if not skip_identical:
            starts.append(0 if patch.pos is None else patch.pos)
            continue
        column = [row[0 if patch.head is None else patch.head] for row in changed[index[patch.layer]]]
        if patch.pos is not None:
            starts.append(patch.pos if column[patch.pos] else None)
        else:
            starts.append(next((p for p, c in enumerate(column) if c), None))
    return starts


def _plan(
    model: HookedTransformer,
    patches: list[Patch],
    starts: list[int | None],
    n_pos: int,
    last_logit: int,
    pos_block: int,
) -> tuple[list[Group], list[int]]:
    """Group the patches that can share forward passes (one-position patches in blocks of
    ``pos_block`` positions); list the ones that cannot change the logits the metric reads
    (nothing changed, or only positions after the last one it reads). The groups depend on the
    sweep alone, never on the memory budget."""
    causal = model.cfg.attention_dir == "causal"
    groups: dict[tuple[int, int], Group] = {}
    skipped = []
    for i, (patch, first) in enumerate(zip(patches, starts)):
        if first is None or causal and first > last_logit:
            skipped.append(i)
            continue
        if not causal:  # bidirectional attention: every position can change
            first = 0
        positional = patch.pos is not None and causal
        key = (patch.layer, patch.pos // pos_block if positional else -1)
        group = groups.setdefault(key, Group(patch.layer, first, 0))
        group.start = min(group.start, first)
        group.end = max(group.end, patch.pos + 1 if positional else n_pos)
        group.patches.append(i)
    return sorted(groups.values(), key=lambda g: (g.layer, g.start)), skipped


def _row_bytes(model: HookedTransformer, n_pos: int, start: int, n_logits: int) -> int:
    """Rough activation memory of one row (one prompt of one patch) of a patched forward pass
    from position ``start``: residual-sized temporaries, queries/keys/values and the key-value
    prefix, attention scores and patterns, MLP hidden states, logits and the metric's
    log-softmax."""
    cfg = model.cfg
    suffix = n_pos - start
    d_attn = cfg.n_heads * cfg.d_head
    per_token = 12 * cfg.d_model + 3 * (cfg.d_mlp or 0) + 4 * d_attn + 3 * cfg.n_heads * n_pos
    kv = 4 * n_pos * (cfg.n_key_value_heads or cfg.n_heads) * cfg.d_head
    return (suffix * per_token + kv + 3 * n_logits * cfg.d_vocab) * torch.finfo(cfg.dtype).bits // 8
