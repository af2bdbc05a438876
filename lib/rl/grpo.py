"""GRPO as TRL computes it (``GRPOTrainer._compute_loss``, TRL 1.16 defaults), written out: group
advantages, the clipped importance-weighted token loss, the KL term to a reference model, and
token-level ("dapo") normalisation.

Introduced in chapter 'RLVR subnetworks' (chapters/rlvr_subnetworks.py).
"""

from __future__ import annotations

import torch
from einops import rearrange
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer


def group_advantages(rewards: Float[Tensor, " completions"], group: int) -> Float[Tensor, " completions"]:
    """(r - mean of its group) / (std of its group + 1e-4), the group being ``group`` consecutive
    completions of one prompt (TRL's ``scale_rewards="group"``; the std is the unbiased one)."""
    grouped = rearrange(rewards, "(prompt g) -> prompt g", g=group)
    centred = grouped - grouped.mean(-1, keepdim=True)
    return rearrange(centred / (grouped.std(-1, keepdim=True) + 1e-4), "prompt g -> (prompt g)")


def no_spread_fraction(rewards: Float[Tensor, " completions"], group: int) -> float:
    """The fraction of groups whose completions all earned one reward: their advantages are 0, so
    they teach nothing."""
    grouped = rearrange(rewards, "(prompt g) -> prompt g", g=group)
    return (grouped.max(-1).values == grouped.min(-1).values).float().mean().item()


def padded(
    prompts: list[list[int]], completions: list[list[int]], device: torch.device | str
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch new"], Bool[Tensor, "batch new"]]:
    """Prompt and completion rows right-padded into one batch (causal attention never looks right,
    so padding changes nothing before it), the index of the position that predicts each completion
    token, and the completion mask."""
    width = max(len(p) + len(c) for p, c in zip(prompts, completions))
    new = max(len(c) for c in completions)
    rows = torch.zeros(len(prompts), width, dtype=torch.long)
    where = torch.zeros(len(prompts), new, dtype=torch.long)
    mask = torch.zeros(len(prompts), new, dtype=torch.bool)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        rows[i, : len(p) + len(c)] = torch.tensor(p + c)
        where[i, : len(c)] = torch.arange(len(p) - 1, len(p) + len(c) - 1)
        mask[i, : len(c)] = True
    return rows.to(device), where.to(device), mask.to(device)


def token_logprobs(
    model: HookedTransformer, rows: Int[Tensor, "batch pos"], where: Int[Tensor, "batch new"]
) -> Float[Tensor, "batch new"]:
    """log p of each completion token (the token at ``where + 1``) given everything before it, in
    float32."""
    logits = model(rows)
    picked = logits.gather(1, where[..., None].expand(-1, -1, logits.shape[-1])).float()
    targets = rows.gather(1, where + 1)
    return picked.log_softmax(-1).gather(-1, targets[..., None])[..., 0]


def grpo_loss(
    logps: Float[Tensor, "batch new"],
    old_logps: Float[Tensor, "batch new"],
    advantages: Float[Tensor, " batch"],
    mask: Bool[Tensor, "batch new"],
    ref_logps: Float[Tensor, "batch new"] | None = None,
    beta: float = 0.0,
    epsilon: float = 0.2,
    bias_corrected_kl: bool = True,
) -> Float[Tensor, ""]:
    """TRL's GRPO loss: per token, -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A), plus beta
    times the KL estimate exp(ref - logp) - (ref - logp) - 1 (multiplied by the ratio when
    ``bias_corrected_kl``, TRL's ``use_bias_correction_kl``), summed over completion tokens and
    divided by their number (``loss_type="dapo"``). With one update per batch, ``old_logps`` is
    ``logps`` detached: the ratio is 1 but its gradient is that of log p."""
    ratio = torch.exp(logps - old_logps)
    unclipped = ratio * advantages[:, None]
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * advantages[:, None]
    per_token = -torch.min(unclipped, clipped)
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta > 0 needs the reference model's log-probabilities")
        kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1
        per_token = per_token + beta * (kl * ratio if bias_corrected_kl else kl)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)
