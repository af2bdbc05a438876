"""Steering with an SAE feature: clamp it to a value at every position and generate.

Introduced in chapter 'Sparse autoencoders' (chapters/sparse_autoencoders.py). Clamping feature
``i`` to ``c`` adds ``(c - f_i(x)) * d_i`` to the activation ``x``, ``d_i`` the feature's decoder
direction (:func:`lib.saes.metrics.decoder_directions`) at the SAE's hook, so
the rest of ``x`` (including what the SAE fails to reconstruct) is left as it was: the
intervention of Templeton et al. (2024), batched here with one feature per row.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from lib.generation import Hook, Prompts, generate
from lib.language import BOS_ID
from lib.saes.metrics import decoder_directions


def clamp_hook(sae: SAE, name: str, features: Int[Tensor, " batch"], values: Float[Tensor, " batch"]) -> Hook:
    """A hook on ``name`` that clamps feature ``features[b]`` to ``values[b]`` in row ``b`` at
    every position; rows whose feature is -1 are left alone."""
    on = features >= 0
    index = features.clamp_min(0)
    directions = decoder_directions(sae, index.to(sae.W_dec.device)).detach()  # [batch, d_in]

    def clamp(x: Float[Tensor, "batch pos d_model"], hook: HookPoint) -> Float[Tensor, "batch pos d_model"]:
        codes = sae.encode(x)  # [batch, pos, d_sae]
        current = codes.gather(-1, index.to(x.device)[:, None, None].expand(-1, x.shape[1], 1))[..., 0]
        gap = (values.to(x)[:, None] - current) * on.to(x)[:, None]  # [batch, pos]
        return x + gap[..., None] * directions[:, None, :].to(x)

    return name, clamp


@torch.no_grad()
def steered_texts(
    model: HookedTransformer,
    sae: SAE,
    name: str,
    features: Int[Tensor, " condition"],
    values: Float[Tensor, " condition"],
    n_texts: int,
    max_tokens: int,
    seed: int,
) -> Int[Tensor, "condition text new"]:
    """``n_texts`` continuations of a lone ``<bos>`` for every condition (feature
    ``features[c]`` clamped to ``values[c]``; -1 for none), sampled at temperature 1 from
    ``seed`` with the model's key-value cache, each up to ``max_tokens`` long (a row that closes
    its text with ``<bos>`` runs on after it; cut it there)."""
    rows = len(features) * n_texts
    prompts = Prompts(torch.full((rows, 1), BOS_ID), torch.ones(rows, 1, dtype=torch.long)).to(
        model.cfg.device
    )
    hook = clamp_hook(sae, name, features.repeat_interleave(n_texts), values.repeat_interleave(n_texts))
    new = generate(
        model, prompts, max_tokens, [hook], stop_ids=[BOS_ID], generator=torch.Generator().manual_seed(seed)
    )
    return new.cpu().view(len(features), n_texts, -1)
