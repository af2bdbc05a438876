"""The unpatched target run, which every patched forward pass starts from, and the frozen
key-value cache of its prefix."""

from __future__ import annotations

from dataclasses import dataclass

import einops
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.utilities import get_act_name, get_attention_mask


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
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    boundaries: set[int],
    site_names: dict[int, str],
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
        logits = model(
            resid0,
            start_at_layer=0,
            past_kv_cache=kv,
            attention_mask=mask,
            shortformer_pos_embed=saved.get("hook_pos_embed"),
        )
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
