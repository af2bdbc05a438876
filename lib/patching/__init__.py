"""Batched activation patching and attribution patching.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py); attribution patching in
chapter 'Residual stream' (chapters/residual_stream.py).

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

The modules: :mod:`~lib.patching.request` (sites, sweeps and the checks of a request),
:mod:`~lib.patching.target` (the unpatched target run and its key-value cache),
:mod:`~lib.patching.plan` (patches, and the groups that share forward passes),
:mod:`~lib.patching.engine` (:func:`patch_sweep`), :mod:`~lib.patching.compat` (drop-ins for
``transformer_lens.patching``'s functions) and :mod:`~lib.patching.attribution`.
"""

from lib.patching.attribution import attribution_patch
from lib.patching.compat import (
    TL_FUNCTIONS,
    get_act_patch_attn_head_out_all_pos,
    get_act_patch_attn_head_out_by_pos,
    get_act_patch_attn_out,
    get_act_patch_block_every,
    get_act_patch_mlp_out,
    get_act_patch_resid_mid,
    get_act_patch_resid_pre,
)
from lib.patching.engine import DEFAULT_MEMORY_BUDGET, patch_sweep
from lib.patching.plan import Group, Patch
from lib.patching.request import SITES, SWEEPS, Metric, Site, Source, Sweep

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "SITES",
    "SWEEPS",
    "TL_FUNCTIONS",
    "Group",
    "Metric",
    "Patch",
    "Site",
    "Source",
    "Sweep",
    "attribution_patch",
    "patch_sweep",
    "get_act_patch_attn_head_out_all_pos",
    "get_act_patch_attn_head_out_by_pos",
    "get_act_patch_attn_out",
    "get_act_patch_block_every",
    "get_act_patch_mlp_out",
    "get_act_patch_resid_mid",
    "get_act_patch_resid_pre",
]
