"""One hook-and-reduce pass: read activations as the forward pass goes, cache nothing.

Attention scores, sink metrics and norms all reduce an activation (a pattern, the values, the
residual stream) to a few numbers per head or position. Caching the activations first holds
every layer's [batch, head, pos, pos] patterns in memory at once; :func:`reduce_pass` instead
hands each activation to a reducer as soon as it is computed and drops it, so a sweep over a big
model costs one layer's activations. :func:`lib.attention.head_scores`, the sink metrics of
:mod:`lib.sinks` and :func:`lib.residual.residual_norms` are such passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

Reducer = Callable[[Tensor, HookPoint], None]
NameFilter = Callable[[str], bool]


def every_layer(model: HookedTransformer, activation: str) -> NameFilter:
    """The hook names of one activation (``pattern``, ``v``, ``z``, ``resid_pre`` ...) in every layer."""
    return {get_act_name(activation, layer) for layer in range(model.cfg.n_layers)}.__contains__


def reduce_pass(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], reducers: Sequence[tuple[NameFilter, Reducer]]
) -> None:
    """Run ``tokens`` once, without gradients and without computing the logits, handing every
    activation whose name a filter accepts to its reducer ``reducer(activation, hook)``
    (``hook.layer()`` gives its layer). Reducers write their results into tensors they own."""
    with torch.no_grad():
        model.run_with_hooks(tokens.to(model.cfg.device), return_type=None, fwd_hooks=list(reducers))
