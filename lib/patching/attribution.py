"""Attribution patching: the first-order estimate of every patch of a sweep from two forward
passes and one backward pass.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from lib.patching.request import Metric, Site, Source, Sweep, _as_tokens, _check, _check_source, _site_shape


def attribution_patch(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    source: Source | Int[Tensor, "batch pos"],
    site: Site,
    by: Sweep,
    metric: Metric,
    positions: Sequence[int] | Tensor | None = None,
    *,
    layers: Sequence[int] | Tensor | None = None,
    heads: Sequence[int] | Tensor | None = None,
    per_prompt: bool = False,
) -> Float[Tensor, "layer ..."]:
    """Attribution patching (Nanda 2023; Syed et al. 2023): the first-order estimate of
    :func:`patch_sweep`'s metric *change*, ``(source - target) . d metric / d activation`` at
    the target run, for every patch of the sweep at once.

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
            raise ValueError(
                f"source tokens have shape {tuple(clean.shape)}; the target's are {tuple(tokens.shape)}"
            )
        _check(model, clean, site, by, layers, heads, positions, None)
        with torch.no_grad():
            _, cache = model.run_with_cache(clean.to(device), names_filter=lambda name: name in names)
        source = {name: cache[name] for name in names}
    _check_source(model, source, site, req.layers, batch, n_pos)

    acts: dict[str, Tensor] = {}
    deltas = {
        name: torch.zeros(
            _site_shape(model, site, batch, n_pos), device=device, dtype=model.cfg.dtype, requires_grad=True
        )
        for name in names
    }

    def open_site(act: Tensor, hook) -> Tensor:
        acts[hook.name] = act.detach()
        return act + deltas[hook.name]  # d metric / d delta == d metric / d act

    with torch.enable_grad(), model.hooks(fwd_hooks=[(name, open_site) for name in names]):
        value = metric(model(tokens))
        value = torch.as_tensor(value)
        if per_prompt and tuple(value.shape) != (batch,):
            raise ValueError(
                f"per_prompt=True needs a metric returning one value per prompt, "
                f"shape [{batch}]; it returned shape {list(value.shape)}"
            )
        # per prompt: prompts are independent, so the gradient of the sum holds each prompt's own
        total = value.float().sum() if per_prompt else value.float().mean()
        grads = torch.autograd.grad(total, [deltas[name] for name in names], allow_unused=True)

    per_layer = []
    for name, grad in zip(names, grads):
        grad = torch.zeros_like(acts[name]) if grad is None else grad
        # [batch, pos, d_model] or [batch, pos, head, d_head]
        effect = (source[name].to(device, grad.dtype) - acts[name]) * grad
        if site == "z":
            effect = effect[:, :, req.heads]
        pattern = {
            "layer": "b p ... -> b",
            "layer_pos": "b p ... -> b p",
            "head": "b p h d -> b h",
            "head_pos": "b p h d -> b p h",
        }[by]
        effect = einops.reduce(effect.float(), pattern, "sum")
        if by in ("layer_pos", "head_pos"):
            effect = effect[:, req.positions]
        per_layer.append(effect if per_prompt else effect.sum(0))
    out = torch.stack(per_layer)
    return einops.rearrange(out, "l b ... -> l ... b") if per_prompt else out
