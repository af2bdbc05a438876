"""Batched activation patching and attribution patching.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py); attribution patching is
introduced in chapter 'Residual stream'.

Activation patching runs the *target* prompts (TransformerLens's "corrupted" run) while one
activation, a *site*, is overwritten with its value in a *source* (the "clean" run's cache, as in
``transformer_lens.patching.get_act_patch_*``; or any tensor of the same shape: a mean for
mean-ablation, the same run's activations at other positions), and records a metric of the
patched logits. TransformerLens runs one full forward pass per patch and syncs after each. Here:

- patches share forward passes, stacked on the batch dimension (the target batch is repeated
  once per patch);
- each forward starts at the patched layer from the target run's cached residual stream
  (``model.forward(..., start_at_layer=L)``), so earlier layers are never recomputed;
- attention is causal, so positions before the first patched position are unchanged: they are
  not recomputed either; later positions read their keys and values from the target run
  (TransformerLens's own key-value cache, frozen);
- a patch inside block ``L`` at one position (``z``, ``attn_out``, ``resid_mid``, ``mlp_out``,
  ``resid_post``) changes nothing else in that block: block ``L`` runs on that position only;
- patches whose source equals the target at the site (positions where clean and corrupted
  prompts agree) cannot change anything: they get the unpatched metric without a forward pass;
- the final norm, the unembedding and the metric run only at ``logit_positions`` (default: all
  positions), on the final residuals of many chunks at once;
- results stay on the device; the only host sync is one per sweep, to plan it;
- patches are split into chunks that fit ``memory_budget`` bytes of activations. The split only
  changes how many rows each matrix multiply sees, so results agree whatever the split up to
  the rounding of the BLAS kernels, which may pick another summation order for another number
  of rows (float32: differences of order 1e-7 relative; bitwise where the kernels agree).

Sites are TransformerLens activation names: ``resid_pre``, ``resid_mid``, ``resid_post``,
``attn_out``, ``mlp_out`` (swept by ``layer`` or ``layer_pos``) and ``z``, the per-head outputs
(swept by ``head``, all positions at once, or ``head_pos``). Results have TransformerLens's
layouts: ``layer`` -> [layer], ``layer_pos`` -> [layer, pos], ``head`` -> [layer, head],
``head_pos`` -> [layer, pos, head]; with ``per_prompt=True`` a trailing [batch] axis.

The metric is TransformerLens's: a callable on the logits of *one* patched run, [batch, pos,
d_vocab] (pos = ``len(logit_positions)`` when those are given), returning a scalar, or one value
per prompt ([batch]) which is averaged over the batch unless ``per_prompt=True``. The engine
applies it to many patches at once with ``torch.func.vmap`` (falling back to a Python loop over
the patches for metrics vmap cannot trace), so metric code written for TransformerLens works
unchanged.

Attribution patching (:func:`attribution_patch`) gives the first-order estimate of every patch
of a sweep from two forward passes and one backward pass.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.utilities import get_act_name, get_attention_mask

from lib.env import progress_disabled

SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z")
SWEEPS = {"layer": SITES[:5], "layer_pos": SITES[:5], "head": ("z",), "head_pos": ("z",)}
DEFAULT_MEMORY_BUDGET = 4 * 2**30  # bytes of activations per chunk: leaves room on a 16 GB GPU
PROGRESS_MIN_CHUNKS = 8  # show a progress bar from this many chunks on
# default min_rows: a forward pass costs a fixed overhead (Python, kernel launches, TransformerLens
# copying weights) besides its FLOPs; small models and GPUs are overhead-bound, so they want
# larger passes (measured on the benchmarks' models, benchmarks/patching.py)
MIN_ROWS_CPU, MIN_ROWS_CPU_SMALL_MODEL, MIN_ROWS_GPU = 32, 128, 256

Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""] | Float[Tensor, " batch"]]
Source = Mapping[str, Float[Tensor, "batch pos ..."]]


# --------------------------------------------------------------------------------------------
# validation


def _normalise(values: Sequence[int] | Tensor | None, size: int, what: str) -> list[int] | None:
    if values is None:
        return None
    out = [int(v) for v in (values.tolist() if isinstance(values, Tensor) else values)]
    if not out:
        raise ValueError(f"{what} is empty; pass None for all of them")
    bad = [v for v in out if not -size <= v < size]
    if bad:
        raise ValueError(f"{what} must lie in [0, {size}) (negative values count from the end); got {bad}")
    out = [v % size for v in out]
    if len(set(out)) != len(out):
        raise ValueError(f"{what} contain duplicates: {out}")
    return out


@dataclass
class _Request:
    site: str
    by: str
    layers: list[int]
    heads: list[int]
    positions: list[int]
    logit_positions: list[int] | None  # None: all positions


def _check(
    model: HookedTransformer,
    tokens: Tensor,
    site: str,
    by: str,
    layers: Sequence[int] | Tensor | None,
    heads: Sequence[int] | Tensor | None,
    positions: Sequence[int] | Tensor | None,
    logit_positions: Sequence[int] | Tensor | None,
) -> _Request:
    """Every argument check, before any forward pass."""
    cfg = model.cfg
    if by not in SWEEPS:
        raise ValueError(f"unknown sweep {by!r}; allowed: {', '.join(SWEEPS)}")
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; allowed: {', '.join(SITES)}")
    if site not in SWEEPS[by]:
        raise ValueError(f"site {site!r} cannot be swept by {by!r}; allowed: {', '.join(SWEEPS[by])}")
    if site in ("mlp_out", "resid_mid") and cfg.attn_only:
        raise ValueError(f"site {site!r} does not exist in an attention-only model")
    if site == "resid_mid" and cfg.parallel_attn_mlp:
        raise ValueError("site 'resid_mid' does not exist in a model with parallel attention and MLP")
    if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"tokens must be integer token ids [batch, pos]; got dtype {tokens.dtype}")
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ValueError(f"tokens must have shape [batch, pos] with batch, pos >= 1; got {tuple(tokens.shape)}")
    n_pos = tokens.shape[1]
    if n_pos > cfg.n_ctx:
        raise ValueError(f"sequence length {n_pos} exceeds the model's context n_ctx={cfg.n_ctx}")
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= cfg.d_vocab:
        raise ValueError(f"token ids must lie in [0, d_vocab={cfg.d_vocab}); got ids from {low} to {high}")
    if positions is not None and by not in ("layer_pos", "head_pos"):
        raise ValueError(f"positions only apply to the sweeps 'layer_pos' and 'head_pos', not {by!r}")
    if heads is not None and by not in ("head", "head_pos"):
        raise ValueError(f"heads only apply to the sweeps 'head' and 'head_pos', not {by!r}")
    return _Request(
        site=site,
        by=by,
        layers=_normalise(layers, cfg.n_layers, "layers") or list(range(cfg.n_layers)),
        heads=_normalise(heads, cfg.n_heads, "heads") or list(range(cfg.n_heads)),
        positions=_normalise(positions, n_pos, "positions") or list(range(n_pos)),
        logit_positions=_normalise(logit_positions, n_pos, "logit_positions"),
    )


def _site_shape(model: HookedTransformer, site: str, batch: int, n_pos: int) -> tuple[int, ...]:
    if site == "z":
        return (batch, n_pos, model.cfg.n_heads, model.cfg.d_head)
    return (batch, n_pos, model.cfg.d_model)


def _check_source(model: HookedTransformer, source: Source, site: str, layers: list[int], batch: int, n_pos: int) -> None:
    shape = _site_shape(model, site, batch, n_pos)
    for layer in layers:
        name = get_act_name(site, layer)
        if name not in source:
            raise ValueError(f"source has no activation {name!r}")
        got = tuple(source[name].shape)
        if got != shape:
            raise ValueError(f"source[{name!r}] has shape {got}; the target run's is {shape} [batch, pos, ...]")


def _as_tokens(tokens: Tensor) -> Tensor:
    if not isinstance(tokens, Tensor):
        raise ValueError(f"tokens must be a tensor of token ids [batch, pos]; got {type(tokens).__name__}")
    return tokens[None] if tokens.ndim == 1 else tokens


# --------------------------------------------------------------------------------------------
# the target run


def _boundary_name(model: HookedTransformer, k: int) -> str:
    """The residual stream entering block ``k``; ``k == n_layers``: leaving the last block."""
    n = model.cfg.n_layers
    return get_act_name("resid_pre", k) if k < n else get_act_name("resid_post", n - 1)


@dataclass
class _Target:
    """What the patched forwards need from the unpatched target run: the residual stream at
    block boundaries, the keys and values of every layer (TransformerLens cache entries, in the
    layout the attention appends to), the site activations (to find patches that change
    nothing), the logits at the metric's positions, and shortformer/attention-mask inputs."""

    resid: dict[int, Float[Tensor, "batch pos d_model"]]
    site: dict[int, Float[Tensor, "batch pos ..."]]
    kv: list[TransformerLensKeyValueCacheEntry]
    logits: Float[Tensor, "batch logit_pos d_vocab"]
    shortformer: Float[Tensor, "batch pos d_model"] | None
    mask: Int[Tensor, "batch pos"] | None


def _target_run(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], boundaries: set[int], site_names: dict[int, str],
    logit_positions: list[int] | None,
) -> _Target:
    cfg = model.cfg
    saved: dict[str, Tensor] = {}

    def save(act: Tensor, hook) -> None:
        saved[hook.name] = act

    shortformer = cfg.positional_embedding_type == "shortformer"
    with model.hooks(fwd_hooks=[("hook_pos_embed", save)] if shortformer else []):
        resid0 = model(tokens, stop_at_layer=0)  # embedding only, as TransformerLens computes it
    mask = None
    if model.tokenizer is not None and model.tokenizer.padding_side == "left":  # as input_to_embed
        mask = get_attention_mask(model.tokenizer, tokens, cfg.default_prepend_bos).to(resid0.device)
    kv = [
        TransformerLensKeyValueCacheEntry.init_cache_entry(cfg, resid0.device, tokens.shape[0])
        for _ in range(cfg.n_layers)
    ]
    names = {_boundary_name(model, k) for k in boundaries} | set(site_names.values())
    with model.hooks(fwd_hooks=[(name, save) for name in names]):
        logits = model(resid0, start_at_layer=0, past_kv_cache=kv, attention_mask=mask,
                       shortformer_pos_embed=saved.get("hook_pos_embed"))
    return _Target(
        resid={k: saved[_boundary_name(model, k)] for k in boundaries},
        site={layer: saved[name] for layer, name in site_names.items()},
        kv=kv,
        logits=logits if logit_positions is None else logits[:, logit_positions],
        shortformer=saved.get("hook_pos_embed"),
        mask=mask,
    )


class _PrefixCache:
    """A frozen key-value cache holding the target run's keys and values for positions
    ``[0, start)``, repeated ``n`` times along the batch; built one layer at a time, when the
    forward pass reaches that layer, so only one layer's prefix is in memory at once."""

    def __init__(self, kv: list[TransformerLensKeyValueCacheEntry], start: int, n: int):
        self.kv, self.start, self.n = kv, start, n

    def __getitem__(self, layer: int) -> TransformerLensKeyValueCacheEntry:
        entry = self.kv[layer]
        keys, values = (
            einops.repeat(t[:, : self.start], "b p h d -> (n b) p h d", n=self.n)
            for t in (entry.past_keys, entry.past_values)
        )
        return TransformerLensKeyValueCacheEntry(keys, values, frozen=True)


# --------------------------------------------------------------------------------------------
# planning


@dataclass(frozen=True)
class Patch:
    """One patch of a sweep: a layer, and a head and a position where the sweep has them
    (chapter 'Induction heads')."""

    layer: int
    head: int | None
    pos: int | None


@dataclass
class Group:
    """Patches that share forward passes: same layer, and (for one-position patches) nearby
    positions. Block ``layer`` runs on positions ``[start, end)``, later blocks on ``[start,
    pos)``; ``start`` is the first position any of them changes (causal attention: earlier
    positions are the target run's), ``end`` one past the last patched position (a patch
    after the attention of block ``layer`` changes no other position of that block)
    (chapter 'Induction heads')."""

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
    model: HookedTransformer, req: _Request, patches: list[Patch], source: Source, target: _Target, skip_identical: bool
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
        per_layer.append(einops.reduce(diff, "b p h d -> p h", "max") if req.site == "z"
                         else einops.reduce(diff, "b p d -> p 1", "max"))
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
    model: HookedTransformer, patches: list[Patch], starts: list[int | None], n_pos: int, last_logit: int,
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


# --------------------------------------------------------------------------------------------
# the metric


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
                raise ValueError(f"per_prompt=True needs a metric returning one value per prompt, shape "
                                 f"[{self.batch}]; it returned shape {list(shape)}")
        elif shape:
            out = einops.reduce(out, "n ... -> n", "mean")
        return out.to(torch.promote_types(out.dtype, torch.float32))


# --------------------------------------------------------------------------------------------
# the engine


def patch_sweep(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    source: Source,
    site: str,
    by: str,
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
) -> Float[Tensor, "..."]:
    """The metric after patching ``source[site]`` into the run on ``tokens`` at each site of
    the sweep ``by``, one patch at a time (chapter 'Induction heads').

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
        (tests/test_patching.py).
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
        target = _target_run(model, tokens, boundaries, site_names if skip_identical else {}, req.logit_positions)
        logit_pos = req.logit_positions if req.logit_positions is not None else list(range(n_pos))
        starts = _starts(model, req, patches, source, target, skip_identical)
        if min_rows is None:
            min_rows = (MIN_ROWS_GPU if device.type == "cuda" else
                        MIN_ROWS_CPU_SMALL_MODEL if cfg.d_model < 256 else MIN_ROWS_CPU)
        per_position = batch * (len(req.heads) if by == "head_pos" else 1)  # rows of one position's patches
        groups, skipped = _plan(model, patches, starts, n_pos, max(logit_pos), -(-min_rows // per_position))
        apply_metric = _MetricApplier(metric, per_prompt, batch)

        chunks: list[tuple[Group, list[int]]] = []
        for group in groups:
            row_bytes = _row_bytes(model, n_pos, group.start, len(logit_pos))
            per_chunk = max(1, memory_budget // (row_bytes * batch))
            chunks.extend((group, group.patches[i : i + per_chunk]) for i in range(0, len(group.patches), per_chunk))

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
                    logits = _fill(einops.repeat(target.logits, "b p v -> (n b) p v", n=len(index)), fresh, logits)
                store(index, apply_metric(einops.rearrange(logits, "(n b) p v -> n b p v", n=len(index))))
            pending.clear()
            pending_rows = 0

        if skipped:
            store(skipped, apply_metric(target.logits[None]).expand(len(skipped), *([batch] if per_prompt else [])))
        bar = tqdm(chunks, desc=f"patching {site} by {by}",
                   disable=progress_disabled() or len(chunks) < PROGRESS_MIN_CHUNKS)
        for group, chunk in bar:
            if pending_rows and (pending_rows + len(chunk) * batch) * logits_row_bytes > memory_budget // 4:
                flush()
            resid, n_forwards = _patched_resid(model, req, source, target, group, [patches[i] for i in chunk], n_pos)
            forwards += n_forwards
            fresh = tuple(i for i, p in enumerate(logit_pos) if p >= group.start)
            pending[fresh].append((chunk, resid[:, [logit_pos[i] - group.start for i in fresh]]))
            pending_rows += len(chunk) * batch
        flush()

    if stats is not None:
        stats.update(patches=len(patches), skipped=len(skipped), chunks=len(chunks), forwards=forwards,
                     unembeds=unembeds, groups=[(g.layer, g.start, g.end, len(g.patches)) for g in groups])
    shape = {"layer": [len(req.layers)], "layer_pos": [len(req.layers), len(req.positions)],
             "head": [len(req.layers), len(req.heads)],
             "head_pos": [len(req.layers), len(req.positions), len(req.heads)]}[by]
    assert results is not None
    return results.view(*shape, *results.shape[1:])


def _fill(base: Float[Tensor, "rows pos d_vocab"], fresh: tuple[int, ...],
          values: Float[Tensor, "rows fresh d_vocab"]) -> Float[Tensor, "rows pos d_vocab"]:
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
        value = src[:, start:] if heads is None else einops.rearrange(src[:, start:, heads], "b p n d -> n b p d")

    def patch(act: Tensor, hook=None) -> Tensor:
        act = einops.rearrange(act, "(n b) ... -> n b ...", n=n)
        if chunk[0].pos is not None:  # act[i, :, pos_i (, head_i)] = value[i]
            act[(rows, slice(None), pos) if heads is None else (rows, slice(None), pos, heads)] = value.to(act.dtype)
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
            return model(x, start_at_layer=first, stop_at_layer=last, past_kv_cache=kv,
                         attention_mask=None if mask is None else mask[:, :stop_pos],
                         shortformer_pos_embed=None if shortformer is None else shortformer[:, start:stop_pos])

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


# --------------------------------------------------------------------------------------------
# TransformerLens-compatible entry points


def get_act_patch_resid_pre(model, corrupted_tokens, clean_cache, patching_metric, **kwargs) -> Float[Tensor, "layer pos"]:
    """Drop-in for ``transformer_lens.patching.get_act_patch_resid_pre`` (chapter 'Induction heads')."""
    return patch_sweep(model, corrupted_tokens, clean_cache, "resid_pre", "layer_pos", patching_metric, **kwargs)


def get_act_patch_resid_mid(model, corrupted_tokens, clean_cache, patching_metric, **kwargs) -> Float[Tensor, "layer pos"]:
    """Drop-in for ``transformer_lens.patching.get_act_patch_resid_mid`` (chapter 'Induction heads')."""
    return patch_sweep(model, corrupted_tokens, clean_cache, "resid_mid", "layer_pos", patching_metric, **kwargs)


def get_act_patch_attn_out(model, corrupted_tokens, clean_cache, patching_metric, **kwargs) -> Float[Tensor, "layer pos"]:
    """Drop-in for ``transformer_lens.patching.get_act_patch_attn_out`` (chapter 'Induction heads')."""
    return patch_sweep(model, corrupted_tokens, clean_cache, "attn_out", "layer_pos", patching_metric, **kwargs)


def get_act_patch_mlp_out(model, corrupted_tokens, clean_cache, patching_metric, **kwargs) -> Float[Tensor, "layer pos"]:
    """Drop-in for ``transformer_lens.patching.get_act_patch_mlp_out`` (chapter 'Induction heads')."""
    return patch_sweep(model, corrupted_tokens, clean_cache, "mlp_out", "layer_pos", patching_metric, **kwargs)


def get_act_patch_attn_head_out_by_pos(model, corrupted_tokens, clean_cache, patching_metric, **kwargs) -> Float[Tensor, "layer pos head"]:
    """Drop-in for ``transformer_lens.patching.get_act_patch_attn_head_out_by_pos`` (chapter
    'Induction heads')."""
    return patch_sweep(model, corrupted_tokens, clean_cache, "z", "head_pos", patching_metric, **kwargs)


def get_act_patch_attn_head_out_all_pos(model, corrupted_tokens, clean_cache, patching_metric, **kwargs) -> Float[Tensor, "layer head"]:
    """Drop-in for ``transformer_lens.patching.get_act_patch_attn_head_out_all_pos`` (chapter
    'Induction heads')."""
    return patch_sweep(model, corrupted_tokens, clean_cache, "z", "head", patching_metric, **kwargs)


def get_act_patch_block_every(model, corrupted_tokens, clean_cache, metric, **kwargs) -> Float[Tensor, "3 layer pos"]:
    """Drop-in for ``transformer_lens.patching.get_act_patch_block_every``: residual stream,
    attention output and MLP output by layer and position, stacked (chapter 'Induction heads')."""
    return torch.stack([
        patch_sweep(model, corrupted_tokens, clean_cache, site, "layer_pos", metric, **kwargs)
        for site in ("resid_pre", "attn_out", "mlp_out")
    ])


# --------------------------------------------------------------------------------------------
# attribution patching


def attribution_patch(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    source: Source | Int[Tensor, "batch pos"],
    site: str,
    by: str,
    metric: Metric,
    positions: Sequence[int] | Tensor | None = None,
    *,
    layers: Sequence[int] | Tensor | None = None,
    heads: Sequence[int] | Tensor | None = None,
    per_prompt: bool = False,
) -> Float[Tensor, "..."]:
    """Attribution patching (Nanda 2023; Syed et al. 2023): the first-order estimate of
    :func:`patch_sweep`'s metric *change*, ``(source - target) . d metric / d activation`` at
    the target run, for every patch of the sweep at once (chapter 'Residual stream').

    ``source`` is the clean run: its token ids [batch, pos] (its forward pass then caches only
    the site's activations) or a mapping of activations as for :func:`patch_sweep`. In all, two
    forward passes (source and target) and one backward pass, whatever the sweep's size; the
    backward computes gradients for the site activations only, never for the weights. Same
    arguments, sweeps and result layouts as :func:`patch_sweep`.
    """
    tokens = _as_tokens(tokens)
    req = _check(model, tokens, site, by, layers, heads, positions, None)
    batch, n_pos = tokens.shape
    names = [get_act_name(site, layer) for layer in req.layers]
    device = next(model.parameters()).device
    tokens = tokens.to(device)
    if isinstance(source, Tensor) and not source.is_floating_point():
        clean = _as_tokens(source)
        if clean.shape != tokens.shape:
            raise ValueError(f"source tokens have shape {tuple(clean.shape)}; the target's are {tuple(tokens.shape)}")
        _check(model, clean, site, by, layers, heads, positions, None)
        with torch.no_grad():
            _, cache = model.run_with_cache(clean.to(device), names_filter=lambda name: name in names)
        source = {name: cache[name] for name in names}
    _check_source(model, source, site, req.layers, batch, n_pos)

    acts: dict[str, Tensor] = {}
    deltas = {name: torch.zeros(_site_shape(model, site, batch, n_pos), device=device, dtype=model.cfg.dtype,
                                requires_grad=True) for name in names}

    def open_site(act: Tensor, hook) -> Tensor:
        acts[hook.name] = act.detach()
        return act + deltas[hook.name]  # d metric / d delta == d metric / d act

    with torch.enable_grad(), model.hooks(fwd_hooks=[(name, open_site) for name in names]):
        value = metric(model(tokens))
        value = torch.as_tensor(value)
        if per_prompt and tuple(value.shape) != (batch,):
            raise ValueError(f"per_prompt=True needs a metric returning one value per prompt, shape [{batch}]; "
                             f"it returned shape {list(value.shape)}")
        # per prompt: prompts are independent, so the gradient of the sum holds each prompt's own
        total = value.float().sum() if per_prompt else value.float().mean()
        grads = torch.autograd.grad(total, [deltas[name] for name in names], allow_unused=True)

    per_layer = []
    for name, grad in zip(names, grads):
        grad = torch.zeros_like(acts[name]) if grad is None else grad
        effect = (source[name].to(device, grad.dtype) - acts[name]) * grad  # [batch, pos, d] or [batch, pos, head, d_head]
        if site == "z":
            effect = effect[:, :, req.heads]
        pattern = {"layer": "b p ... -> b", "layer_pos": "b p ... -> b p", "head": "b p h d -> b h",
                   "head_pos": "b p h d -> b p h"}[by]
        effect = einops.reduce(effect.float(), pattern, "sum")
        if by in ("layer_pos", "head_pos"):
            effect = effect[:, req.positions]
        per_layer.append(effect if per_prompt else effect.sum(0))
    out = torch.stack(per_layer)
    return einops.rearrange(out, "l b ... -> l ... b") if per_prompt else out
