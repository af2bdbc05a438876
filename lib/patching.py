"""Batched activation patching and attribution patching.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py); the residual-stream
chapter uses attribution patching.

Activation patching runs the *target* prompts while overwriting one activation (a *site*) with
its value from a *source*: another run's activations (clean into corrupted, as TransformerLens's
``patching.get_act_patch_*``), or any tensor of the same shape (a mean for mean-ablation, the
same run's activations at other positions). TransformerLens runs one full forward pass per
patch and syncs after each. Here:

- many patches share a forward pass, stacked on the batch dimension;
- each forward starts at the patched layer from the target run's cached residual stream
  (``start_at_layer``), so earlier layers are never recomputed;
- results stay on the device until the sweep is done;
- the patches are split into chunks that fit ``memory_budget`` bytes, and the results do not
  depend on the split.

Sites are the TransformerLens activation names ``resid_pre``, ``resid_mid``, ``resid_post``,
``attn_out``, ``mlp_out`` (by ``layer`` or ``layer_pos``) and ``z`` (per-head outputs, by
``head`` or ``head_pos``). Results have TransformerLens's shapes: ``layer`` -> [layer],
``layer_pos`` -> [layer, pos], ``head`` -> [layer, head], ``head_pos`` -> [layer, pos, head].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from lib.env import progress_disabled

SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z")
SWEEPS = {"layer": SITES[:5], "layer_pos": SITES[:5], "head": ("z",), "head_pos": ("z",)}
DEFAULT_MEMORY_BUDGET = 4 * 2**30  # bytes of activations per chunk: leaves room on a 16 GB GPU

Metric = Callable[[Float[Tensor, "rows pos d_vocab"]], Float[Tensor, " rows"]]


def tile(x: Tensor, rows: int) -> Tensor:
    """Repeat per-sequence data ``x`` ([batch, ...]) to the ``rows`` of a batched patched run,
    which holds whole copies of the batch one after another; metrics use it to line up their
    targets with the logits they are given (chapter 'Induction heads')."""
    return einops.repeat(x, "b ... -> (n b) ...", n=rows // x.shape[0])


def _check(model: HookedTransformer, site: str, by: str, positions: Sequence[int] | None, n_pos: int) -> None:
    if by not in SWEEPS:
        raise ValueError(f"unknown sweep {by!r}; allowed: {', '.join(SWEEPS)}")
    if site not in SWEEPS[by]:
        raise ValueError(f"site {site!r} cannot be swept by {by!r}; allowed: {', '.join(SWEEPS[by])}")
    if site in ("mlp_out", "resid_mid") and model.cfg.attn_only:
        raise ValueError(f"site {site!r} does not exist in an attention-only model")
    if positions is not None and not all(0 <= p < n_pos for p in positions):
        raise ValueError(f"positions must lie in [0, {n_pos}); got {list(positions)}")


def _patches(model: HookedTransformer, by: str, positions: Sequence[int]) -> list[tuple[int, int | None, int | None]]:
    """Every (layer, head, position) patched by a sweep, in result order (None: all)."""
    layers, heads = range(model.cfg.n_layers), range(model.cfg.n_heads)
    if by == "layer":
        return [(layer, None, None) for layer in layers]
    if by == "layer_pos":
        return [(layer, None, pos) for layer in layers for pos in positions]
    if by == "head":
        return [(layer, head, None) for layer in layers for head in heads]
    return [(layer, head, pos) for layer in layers for pos in positions for head in heads]


def _bytes_per_sequence(model: HookedTransformer, n_pos: int) -> int:
    """Rough activation memory of one sequence's forward pass: residual-sized tensors, attention
    scores and patterns, MLP hidden states and logits, at the model's dtype."""
    cfg = model.cfg
    width = 8 * cfg.d_model + 4 * cfg.n_heads * n_pos + 2 * (cfg.d_mlp or 0) + 2 * cfg.d_vocab
    return n_pos * width * torch.finfo(cfg.dtype).bits // 8


def patch_sweep(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    source: Mapping[str, Float[Tensor, "batch pos ..."]],
    site: str,
    by: str,
    metric: Metric,
    positions: Sequence[int] | Tensor | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Float[Tensor, "..."]:
    """The metric (mean over the batch) after patching ``source[site]`` into the run on
    ``tokens`` at each site of the sweep ``by``, one patch at a time.

    ``source`` maps activation names (``blocks.L.hook_z`` ...) to tensors shaped like the target
    run's activations: an ``ActivationCache`` from another run works. ``metric`` maps patched
    logits to one number per row; rows are whole copies of the batch one after another, so
    per-sequence targets line up through :func:`tile`. ``positions`` restricts position sweeps (default: all).
    Equal to TransformerLens's ``patching.get_act_patch_*`` loop for a metric averaged over the
    batch (tests/test_patching.py) (chapter 'Induction heads').
    """
    batch, n_pos = tokens.shape
    positions = list(range(n_pos)) if positions is None else [int(p) for p in positions]
    _check(model, site, by, positions, n_pos)
    patches = _patches(model, by, positions)
    names = [get_act_name(site, layer) for layer in range(model.cfg.n_layers)]
    for name in names:
        if name not in source:
            raise ValueError(f"source has no activation {name!r}")
    tokens = tokens.to(model.cfg.device)
    resid_names = {get_act_name("resid_pre", layer) for layer in range(model.cfg.n_layers)}
    _, target = model.run_with_cache(tokens, names_filter=lambda name: name in resid_names or name == "hook_pos_embed")
    shortformer = target["hook_pos_embed"] if model.cfg.positional_embedding_type == "shortformer" else None
    per_chunk = max(1, memory_budget // (_bytes_per_sequence(model, n_pos) * batch))

    results = torch.empty(len(patches), device=model.cfg.device)
    chunks = [
        (layer, start, [p for p in patches if p[0] == layer][start : start + per_chunk])
        for layer in range(model.cfg.n_layers)
        for start in range(0, sum(p[0] == layer for p in patches), per_chunk)
    ]
    done = 0
    for layer, _, chunk in tqdm(chunks, desc=f"patching {site} by {by}", disable=progress_disabled() or len(chunks) < 4):
        name, n = names[layer], len(chunk)
        src = source[name].to(model.cfg.device)

        heads = torch.tensor([0 if h is None else h for _, h, _ in chunk], device=src.device)
        poss = torch.tensor([0 if q is None else q for _, _, q in chunk], device=src.device)

        def patch(act: Float[Tensor, "nb pos ..."], hook) -> Float[Tensor, "nb pos ..."]:
            act = einops.rearrange(act.clone(), "(n b) ... -> n b ...", n=n)
            i = torch.arange(n, device=act.device)
            if by == "layer":
                act[:] = src
            elif by == "layer_pos":  # act[i, :, pos_i] = src[:, pos_i]
                act[i, :, poss] = einops.rearrange(src[:, poss], "b n ... -> n b ...")
            elif by == "head":  # act[i, :, :, head_i] = src[:, :, head_i]
                act[i, :, :, heads] = einops.rearrange(src[:, :, heads], "b p n d -> n b p d")
            else:  # act[i, :, pos_i, head_i] = src[:, pos_i, head_i]
                act[i, :, poss, heads] = einops.rearrange(src[:, poss, heads], "b n d -> n b d")
            return einops.rearrange(act, "n b ... -> (n b) ...")

        resid = einops.repeat(target[get_act_name("resid_pre", layer)], "b p d -> (n b) p d", n=n)
        if site == "resid_pre":  # patch the input of the layer directly
            resid = patch(resid, None)
        pos_embed = None if shortformer is None else einops.repeat(shortformer, "b p d -> (n b) p d", n=n)
        hooks = [] if site == "resid_pre" else [(name, patch)]
        with model.hooks(fwd_hooks=hooks):
            logits = model(resid, start_at_layer=layer, shortformer_pos_embed=pos_embed)
        values = einops.rearrange(metric(logits), "(n b) -> n b", n=n).float().mean(-1)
        results[done : done + n] = values
        done += n

    shape = {"layer": (model.cfg.n_layers,), "layer_pos": (model.cfg.n_layers, len(positions)),
             "head": (model.cfg.n_layers, model.cfg.n_heads),
             "head_pos": (model.cfg.n_layers, len(positions), model.cfg.n_heads)}[by]
    return results.view(shape)


def attribution_patch(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    source: Mapping[str, Float[Tensor, "batch pos ..."]],
    site: str,
    by: str,
    metric: Metric,
) -> Float[Tensor, "..."]:
    """Attribution patching (Nanda 2023): the first-order estimate of :func:`patch_sweep`'s
    metric *change*, ``(source - target) . d metric / d activation`` at the target run, for
    every site of the sweep at once, from one forward and one backward pass on the target (the
    source run is the caller's second forward) (chapter 'Residual stream').
    """
    _check(model, site, by, None, tokens.shape[1])
    names = [get_act_name(site, layer) for layer in range(model.cfg.n_layers)]
    acts: dict[str, Tensor] = {}

    def keep(act: Tensor, hook) -> None:
        act.retain_grad()
        acts[hook.name] = act

    with torch.enable_grad(), model.hooks(fwd_hooks=[(name, keep) for name in names]):
        model.zero_grad(set_to_none=True)
        metric(model(tokens.to(model.cfg.device))).float().mean().backward()
    per_layer = []
    for name in names:
        delta = source[name].to(acts[name].device) - acts[name].detach()
        effect = (delta * acts[name].grad).float()  # [batch, pos, d] or [batch, pos, head, d_head]
        pattern = {"layer": "b p ... -> ", "layer_pos": "b p ... -> p", "head": "b p h d -> h",
                   "head_pos": "b p h d -> p h"}[by]
        per_layer.append(einops.reduce(effect, pattern, "sum"))
    model.zero_grad(set_to_none=True)
    return torch.stack(per_layer)
