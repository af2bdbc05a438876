"""How much of a model an update changed: the fraction of entries unchanged within a tolerance
(Mukherjee et al.'s update sparsity), in float32 and after rounding to bfloat16, per parameter,
and the rank of each matrix's update.

Introduced in chapter 'RLVR subnetworks' (chapters/rlvr_subnetworks.py).
"""

from __future__ import annotations

import torch
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

State = dict[str, Float[Tensor, "*shape"]]


def unchanged_fraction(
    before: State, after: State, tol: float = 0.0, names: list[str] | None = None
) -> float:
    """The fraction of entries (of ``names``, default all) with |after - before| <= tol."""
    names = list(before) if names is None else names
    same = sum(((after[n].float() - before[n].float()).abs() <= tol).sum().item() for n in names)
    return same / sum(before[n].numel() for n in names)


def unchanged_bf16(before: State, after: State) -> float:
    """The fraction of entries equal once both models are rounded to bfloat16, as the published
    sparsity is measured on bfloat16 checkpoints."""
    rounded = {n: t.to(torch.bfloat16) for n, t in before.items()}
    return unchanged_fraction(rounded, {n: t.to(torch.bfloat16) for n, t in after.items()})


def never_moved(states: list[State]) -> dict[str, torch.Tensor]:
    """Entries equal in every state given (e.g. entries no run's gradient ever reached: embedding
    rows of tokens the task never uses, positions beyond its longest row)."""
    first = states[0]
    return {n: torch.stack([s[n] == first[n] for s in states]).all(0) for n in first}


def as_matrix(name: str, tensor: Tensor) -> Float[Tensor, "rows cols"] | None:
    """A parameter as the matrix it multiplies, TransformerLens's per-head tensors laid out as one
    matrix over all heads (W_Q, W_K, W_V: d_model x (heads d_head); W_O: (heads d_head) x
    d_model); None for vectors."""
    if tensor.ndim == 3:
        head_major = name.endswith("W_O")
        pattern = (
            "heads d_head d_model -> (heads d_head) d_model"
            if head_major
            else "heads d_model d_head -> d_model (heads d_head)"
        )
        return rearrange(tensor, pattern)
    return tensor if tensor.ndim == 2 else None


def update_rank(before: Tensor, after: Tensor, name: str, rtol: float = 1e-3) -> tuple[int, int]:
    """(rank of the update, largest possible rank): singular values above ``rtol`` times the
    largest count, as in Mukherjee et al.'s full-rank finding."""
    delta = as_matrix(name, (after.float() - before.float()))
    s = torch.linalg.svdvals(delta)
    return int((s > rtol * s.max()).sum()) if s.max() > 0 else 0, min(delta.shape)
