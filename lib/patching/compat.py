"""Drop-ins for ``transformer_lens.patching``'s activation-patching functions, with their names
and arguments, running on :func:`~lib.patching.engine.patch_sweep`. Each is generated from
:data:`TL_FUNCTIONS`, except :func:`get_act_patch_block_every`, which stacks three sweeps."""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from lib.patching.engine import patch_sweep
from lib.patching.request import AXES, Site, Sweep

TL_FUNCTIONS: dict[str, tuple[Site, Sweep]] = {
    "get_act_patch_resid_pre": ("resid_pre", "layer_pos"),
    "get_act_patch_resid_mid": ("resid_mid", "layer_pos"),
    "get_act_patch_attn_out": ("attn_out", "layer_pos"),
    "get_act_patch_mlp_out": ("mlp_out", "layer_pos"),
    "get_act_patch_attn_head_out_by_pos": ("z", "head_pos"),
    "get_act_patch_attn_head_out_all_pos": ("z", "head"),
}
"""TransformerLens function name -> the (site, sweep) of :func:`patch_sweep` it runs."""


def _drop_in(name: str, site: Site, by: Sweep) -> Callable[..., Tensor]:
    """The drop-in for ``transformer_lens.patching.<name>``: :func:`patch_sweep` of one site and
    sweep, TransformerLens's argument names, keyword arguments passed on."""
    axes = AXES[by]

    def drop_in(model, corrupted_tokens, clean_cache, patching_metric, **kwargs):
        return patch_sweep(model, corrupted_tokens, clean_cache, site, by, patching_metric, **kwargs)

    drop_in.__name__ = drop_in.__qualname__ = name
    drop_in.__annotations__["return"] = Float[Tensor, " ".join(axes)]
    drop_in.__doc__ = (
        f"Drop-in for ``transformer_lens.patching.{name}``: ``patch_sweep(model, corrupted_tokens, "
        f"clean_cache, {site!r}, {by!r}, patching_metric, **kwargs)``, [{', '.join(axes)}]."
    )
    return drop_in


# the module's functions get_act_patch_resid_pre, ...: one per row of the table
globals().update({name: _drop_in(name, site, by) for name, (site, by) in TL_FUNCTIONS.items()})


def get_act_patch_block_every(
    model, corrupted_tokens, clean_cache, metric, **kwargs
) -> Float[Tensor, "3 layer pos"]:
    """Drop-in for ``transformer_lens.patching.get_act_patch_block_every``: residual stream,
    attention output and MLP output by layer and position, stacked."""
    return torch.stack(
        [
            patch_sweep(model, corrupted_tokens, clean_cache, site, "layer_pos", metric, **kwargs)
            for site in ("resid_pre", "attn_out", "mlp_out")
        ]
    )


__all__ = ["TL_FUNCTIONS", *TL_FUNCTIONS, "get_act_patch_block_every"]
