"""The engine of batched activation patching (the package docstring explains it): the metric
applied to many patches at once, :func:`patch_sweep`, and the patched forward passes."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Sequence

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from lib.env import progress_disabled
from lib.patching.plan import Group, Patch, _patches, _plan, _row_bytes, _starts
from lib.patching.request import Metric, Site, Source, Sweep, _as_tokens, _check, _check_source, _Request
from lib.patching.target import _PrefixCache, _Target, _target_run

DEFAULT_MEMORY_BUDGET = 4 * 2**30  # bytes of activations per chunk: leaves room on a 16 GB GPU
PROGRESS_MIN_CHUNKS = 8  # show a progress bar from this many chunks on
# default min_rows: a forward pass costs a fixed overhead (Python, kernel launches, TransformerLens
# copying weights) besides its FLOPs; small models and GPUs are overhead-bound, so they want
# larger passes (measured on the benchmarks' models, benchmarks/patching.py)
MIN_ROWS_CPU, MIN_ROWS_CPU_SMALL_MODEL, MIN_ROWS_GPU = 32, 128, 256


class _MetricApplier:
    """Apply a TransformerLens-style metric to each patch's logits in a chunk at once: vmap over
    the patch axis, or, if the metric cannot be vmapped, a loop over the chunk's patches."""

    def __init__(self, metric: Metric, per_prompt: bool, batch: int):
        self.metric, self.per_prompt, self.batch = metric, per_prompt, batch
        self.vmap_ok: bool | None = None

    def __call__(self, logits: Float[Tensor, "n batch pos d_vocab"]) -> Float[Tensor, "n ..."]:
        out = None
        if self.vmap_ok is not False:
            try:
                out = torch.func.vmap(self.metric)(logits)
                self.vmap_ok = True
            except Exception:
                if self.vmap_ok:  # it worked before: a genuine error
                    raise
                self.vmap_ok = False
        if out is None:
            out = torch.stack([torch.as_tensor(self.metric(x), device=logits.device) for x in logits])
        shape = tuple(out.shape[1:])
        if self.per_prompt:
            if shape != (self.batch,):
                raise ValueError(
                    f"per_prompt=True needs a metric returning one value per prompt, shape "
                    f"[{self.batch}]; it returned shape {list(shape)}"
                )
        elif shape:
            out = einops.reduce(out, "n ... -> n", "mean")
        return out.to(torch.promote_types(out.dtype, torch.float32))


def patch_sweep(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    source: Source,
    site: Site,
    by: Sweep,
    metric: Metric,
    positions: Sequence[int] | Tensor | None = None,
    *,
    layers: Sequence[int] | Tensor | None = None,
    heads: Sequence[int] | Tensor | None = None,
    logit_positions: Sequence[int] | Tensor | None = None,
    per_prompt: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    skip_identical: bool = True,
    min_rows: int | None = None,
    stats: dict | None = None,
) -> Float[Tensor, "layer ..."]:
    """The metric after patching ``source[site]`` into the run on ``tokens`` at each site of
    the sweep ``by``, one patch at a time.

    Args:
        model: a HookedTransformer.
        tokens: the target prompts (TransformerLens's corrupted tokens), [batch, pos].
        source: activation names (``blocks.L.attn.hook_z`` ...) to tensors shaped like the
            target run's activations, [batch, pos, ...]: an ``ActivationCache`` of the clean run
            works, as does a dict holding only the patched site's names.
        site: ``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out``, ``mlp_out`` or ``z``.
        by: ``layer`` (all positions at once), ``layer_pos``, ``head`` (all positions at once)
            or ``head_pos``.
        metric: logits of one patched run [batch, pos, d_vocab] -> scalar, or [batch] (averaged
            over the batch unless ``per_prompt``), exactly as for TransformerLens.
        positions, layers, heads: restrict the sweep (default: all); results follow the order
            given.
        logit_positions: the only positions the metric reads (e.g. ``[-1]``); the metric then
            receives logits [batch, len(logit_positions), d_vocab] in this order, and the
            unembedding skips every other position. Default: all positions.
        per_prompt: keep the metric's per-prompt values: a trailing [batch] axis.
        memory_budget: bytes of activations a chunk of patches may use (an estimate; pooled
            logits get a quarter of it); chunks never split one patch.
        skip_identical: patches whose source equals the target at the site get the unpatched
            metric without a forward pass (exact: the patched run *is* the target run).
        min_rows: one-position patches at nearby positions share a forward pass (starting at the
            first of them) until it has about this many rows: fewer, larger passes, at the cost
            of recomputing a few unchanged positions. Default: 256 on a GPU; on the CPU 32, or
            128 for models narrower than 256.
        stats: if a dict is given, filled with what the sweep ran: ``patches``, ``skipped``,
            ``chunks``, ``forwards`` (through blocks), ``unembeds`` (final norm, unembedding and
            metric, pooled across chunks) and ``groups`` as (layer, start, end, n_patches).

    Returns:
        ``layer`` -> [layer], ``layer_pos`` -> [layer, pos], ``head`` -> [layer, head],
        ``head_pos`` -> [layer, pos, head] (TransformerLens's layouts), plus [batch] if
        ``per_prompt``; on the model's device. Equal to ``transformer_lens.patching``'s loops
        (tests/lib/patching/test_engine.py).
    """
    tokens = _as_tokens(tokens)
    req = _check(model, tokens, site, by, layers, heads, positions, logit_positions)
    batch, n_pos = tokens.shape
    _check_source(model, source, site, req.layers, batch, n_pos)
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget}")
    if min_rows is not None and min_rows < 1:
        raise ValueError(f"min_rows must be a positive number of rows; got {min_rows}")
    cfg = model.cfg
    patches = _patches(req)
    site_names = {layer: get_act_name(site, layer) for layer in req.layers}
    inside_block = site != "resid_pre"  # patched after the block's attention mixes positions
    boundaries = set(req.layers) | ({layer + 1 for layer in req.layers} if inside_block else set())
    device = next(model.parameters()).device
    tokens = tokens.to(device)

    with torch.no_grad():
        saved_sites = site_names if skip_identical else {}
        target = _target_run(model, tokens, boundaries, saved_sites, req.logit_positions)
        logit_pos = req.logit_positions if req.logit_positions is not None else list(range(n_pos))
        starts = _starts(model, req, patches, source, target, skip_identical)
        if min_rows is None:
            min_rows = (
                MIN_ROWS_GPU
                if device.type == "cuda"
                else MIN_ROWS_CPU_SMALL_MODEL
                if cfg.d_model < 256
                else MIN_ROWS_CPU
            )
        per_position = batch * (len(req.heads) if by == "head_pos" else 1)  # rows of one position's patches
        groups, skipped = _plan(model, patches, starts, n_pos, max(logit_pos), -(-min_rows // per_position))
        apply_metric = _MetricApplier(metric, per_prompt, batch)

        chunks: list[tuple[Group, list[int]]] = []
        for group in groups:
            row_bytes = _row_bytes(model, n_pos, group.start, len(logit_pos))
            per_chunk = max(1, memory_budget // (row_bytes * batch))
            starts_at = range(0, len(group.patches), per_chunk)
            chunks.extend((group, group.patches[i : i + per_chunk]) for i in starts_at)

        results: Tensor | None = None
        forwards = unembeds = 0

        def store(index: list[int], values: Tensor) -> None:
            nonlocal results
            if results is None:
                results = torch.empty((len(patches), *values.shape[1:]), dtype=values.dtype, device=device)
            results[torch.tensor(index, device=device)] = values

        # Final residuals wait here, pooled across chunks, so the final norm, the unembedding and
        # the metric run on many patches at once (TransformerLens's unembedding also copies W_U
        # on every call); flushed whenever their logits would outgrow a quarter of the budget.
        pending: dict[tuple[int, ...], list[tuple[list[int], Tensor]]] = defaultdict(list)
        pending_rows = 0
        logits_row_bytes = 3 * len(logit_pos) * cfg.d_vocab * torch.finfo(cfg.dtype).bits // 8

        def flush() -> None:
            nonlocal pending_rows, unembeds
            for fresh, items in pending.items():
                unembeds += 1
                index = [i for chunk_index, _ in items for i in chunk_index]
                logits = model(torch.cat([resid for _, resid in items]), start_at_layer=cfg.n_layers)
                if len(fresh) < len(logit_pos):  # positions before the patches: the target's logits
                    base = einops.repeat(target.logits, "b p v -> (n b) p v", n=len(index))
                    logits = _fill(base, fresh, logits)
                store(index, apply_metric(einops.rearrange(logits, "(n b) p v -> n b p v", n=len(index))))
            pending.clear()
            pending_rows = 0

        if skipped:
            unpatched = apply_metric(target.logits[None])
            store(skipped, unpatched.expand(len(skipped), *([batch] if per_prompt else [])))
        bar = tqdm(
            chunks,
            desc=f"patching {site} by {by}",
            disable=progress_disabled() or len(chunks) < PROGRESS_MIN_CHUNKS,
        )
        for group, chunk in bar:
            if pending_rows and (pending_rows + len(chunk) * batch) * logits_row_bytes > memory_budget // 4:
                flush()
            chunk_patches = [patches[i] for i in chunk]
            resid, n_forwards = _patched_resid(model, req, source, target, group, chunk_patches, n_pos)
            forwards += n_forwards
            fresh = tuple(i for i, p in enumerate(logit_pos) if p >= group.start)
            pending[fresh].append((chunk, resid[:, [logit_pos[i] - group.start for i in fresh]]))
            pending_rows += len(chunk) * batch
        flush()

    if stats is not None:
        stats.update(
            patches=len(patches),
            skipped=len(skipped),
            chunks=len(chunks),
            forwards=forwards,
            unembeds=unembeds,
            groups=[(g.layer, g.start, g.end, len(g.patches)) for g in groups],
        )
    assert results is not None
    return results.view(*req.shape, *results.shape[1:])


def _fill(
    base: Float[Tensor, "rows pos d_vocab"],
    fresh: tuple[int, ...],
    values: Float[Tensor, "rows fresh d_vocab"],
) -> Float[Tensor, "rows pos d_vocab"]:
    """``base`` with the positions ``fresh`` overwritten by ``values``."""
    base = base.clone()
    base[:, list(fresh)] = values
    return base


def _patched_resid(
    model: HookedTransformer,
    req: _Request,
    source: Source,
    target: _Target,
    group: Group,
    chunk: list[Patch],
    n_pos: int,
) -> tuple[Float[Tensor, "rows suffix d_model"], int]:
    """The final residual stream at positions ``[group.start, pos)`` of one chunk of a group's
    patches, rows ordered (patch, prompt), and the number of forward passes it took: one or
    two, starting at the patched layer and position."""
    layer, start, end, n = group.layer, group.start, group.end, len(chunk)
    n_layers = model.cfg.n_layers
    src = source[get_act_name(req.site, layer)]
    src = src.to(target.resid[layer].device, target.resid[layer].dtype)

    def rep(x: Tensor) -> Tensor:
        return einops.repeat(x, "b ... -> (n b) ...", n=n)

    # each patch's values, [n, batch, ...], and where they go in the activation of block `layer`
    # over positions [start, ...): one position per patch, or every position from `start` on
    rows = torch.arange(n, device=src.device)
    heads = torch.tensor([p.head for p in chunk], device=src.device) if req.site == "z" else None
    if chunk[0].pos is not None:
        pos = torch.tensor([p.pos for p in chunk], device=src.device)
        value = einops.rearrange(src[:, pos] if heads is None else src[:, pos, heads], "b n ... -> n b ...")
        pos = pos - start
    else:
        value = (
            src[:, start:] if heads is None else einops.rearrange(src[:, start:, heads], "b p n d -> n b p d")
        )

    def patch(act: Tensor, hook=None) -> Tensor:
        act = einops.rearrange(act, "(n b) ... -> n b ...", n=n)
        if chunk[0].pos is not None:  # act[i, :, pos_i (, head_i)] = value[i]
            index = (rows, slice(None), pos) if heads is None else (rows, slice(None), pos, heads)
            act[index] = value.to(act.dtype)
        elif heads is None:  # every position (one patch per layer)
            act[:] = value.to(act.dtype)
        else:  # act[i, :, :, head_i] = value[i]
            act[rows, :, :, heads] = value.to(act.dtype)
        return einops.rearrange(act, "n b ... -> (n b) ...")

    kv = _PrefixCache(target.kv, start, n)
    mask = None if target.mask is None else rep(target.mask)
    shortformer = None if target.shortformer is None else rep(target.shortformer)
    forwards = 0

    def run(x: Tensor, first: int, last: int, stop_pos: int, hooks: list) -> Tensor:
        nonlocal forwards
        forwards += 1
        with model.hooks(fwd_hooks=hooks) if hooks else contextlib.nullcontext():
            return model(
                x,
                start_at_layer=first,
                stop_at_layer=last,
                past_kv_cache=kv,
                attention_mask=None if mask is None else mask[:, :stop_pos],
                shortformer_pos_embed=None if shortformer is None else shortformer[:, start:stop_pos],
            )

    name = get_act_name(req.site, layer)
    if req.site == "resid_pre":
        resid = run(patch(rep(target.resid[layer][:, start:]).clone()), layer, n_layers, n_pos, [])
    elif end == n_pos:  # block `layer` and the rest in one pass
        resid = run(rep(target.resid[layer][:, start:]), layer, n_layers, n_pos, [(name, patch)])
    else:  # block `layer` up to the last patched position, then the rest from `start` on
        y = run(rep(target.resid[layer][:, start:end]), layer, layer + 1, end, [(name, patch)])
        x = torch.cat([y, rep(target.resid[layer + 1][:, end:])], dim=1)
        resid = run(x, layer + 1, n_layers, n_pos, []) if layer + 1 < n_layers else x

    return resid, forwards
