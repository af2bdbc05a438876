"""What a sweep is asked for: the sites and sweeps, the metric and source types, and every check
of the arguments, made before any forward pass."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

Site = Literal["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z"]
Sweep = Literal["layer", "layer_pos", "head", "head_pos"]
SITES: tuple[Site, ...] = get_args(Site)
# the sites each sweep patches: the per-head sweeps patch z, the others every other site
SWEEPS: dict[Sweep, tuple[Site, ...]] = {
    by: ("z",) if by.startswith("head") else tuple(site for site in SITES if site != "z")
    for by in get_args(Sweep)
}
# the result's axes for each sweep: TransformerLens's layouts
AXES: dict[Sweep, tuple[str, ...]] = {
    "layer": ("layer",),
    "layer_pos": ("layer", "pos"),
    "head": ("layer", "head"),
    "head_pos": ("layer", "pos", "head"),
}

Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""] | Float[Tensor, " batch"]]
Source = Mapping[str, Float[Tensor, "batch pos ..."]]


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
    site: Site
    by: Sweep
    layers: list[int]
    heads: list[int]
    positions: list[int]
    logit_positions: list[int] | None  # None: all positions

    @property
    def shape(self) -> list[int]:
        """The result's shape, without the per-prompt axis."""
        sizes = {"layer": len(self.layers), "pos": len(self.positions), "head": len(self.heads)}
        return [sizes[axis] for axis in AXES[self.by]]


def _check(
    model: HookedTransformer,
    tokens: Tensor,
    site: Site,
    by: Sweep,
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
        raise ValueError(
            f"tokens must have shape [batch, pos] with batch, pos >= 1; got {tuple(tokens.shape)}"
        )
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


def _site_shape(model: HookedTransformer, site: Site, batch: int, n_pos: int) -> tuple[int, ...]:
    if site == "z":
        return (batch, n_pos, model.cfg.n_heads, model.cfg.d_head)
    return (batch, n_pos, model.cfg.d_model)


def _check_source(
    model: HookedTransformer, source: Source, site: Site, layers: list[int], batch: int, n_pos: int
) -> None:
    shape = _site_shape(model, site, batch, n_pos)
    for layer in layers:
        name = get_act_name(site, layer)
        if name not in source:
            raise ValueError(f"source has no activation {name!r}")
        got = tuple(source[name].shape)
        if got != shape:
            raise ValueError(
                f"source[{name!r}] has shape {got}; the target run's is {shape} [batch, pos, ...]"
            )


def _as_tokens(tokens: Tensor) -> Tensor:
    if not isinstance(tokens, Tensor):
        raise ValueError(f"tokens must be a tensor of token ids [batch, pos]; got {type(tokens).__name__}")
    return tokens[None] if tokens.ndim == 1 else tokens
