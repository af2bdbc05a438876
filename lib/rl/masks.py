"""Masks of which weights training may change: Fisher (the post's mean squared gradient of log p
over sampled completions), random (the post's recipe), magnitude and the oracle of a finished
run's largest updates; their overlap against what chance gives.

A mask is a dict of boolean tensors shaped like the parameters. Introduced in chapter 'RLVR
subnetworks' (chapters/rlvr_subnetworks.py).
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import HookedTransformer

from lib.language.sorting import Problem
from lib.rl.grpo import padded, token_logprobs
from lib.rl.rollout import generate
from lib.rl.task import SortTask

Mask = dict[str, Bool[Tensor, "*shape"]]


def top_mask(scores: dict[str, Float[Tensor, "*shape"]], keep: float) -> Mask:
    """The ``keep`` fraction of all entries (of every tensor together) with the largest scores."""
    flat = torch.cat([s.flatten().float() for s in scores.values()])
    chosen = torch.zeros(len(flat), dtype=torch.bool, device=flat.device)
    chosen[flat.topk(int(len(flat) * keep)).indices] = True
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = chosen[start : start + s.numel()].view(s.shape)
        start += s.numel()
    return out


def random_mask(shapes: dict[str, torch.Size], keep: float, seed: int) -> Mask:
    """The post's random mask: one numpy ``default_rng(seed)`` and, tensor after tensor,
    ``int(numel * keep)`` entries chosen uniformly without replacement."""
    rng, out = np.random.default_rng(seed=seed), {}
    for name, shape in shapes.items():
        numel = int(np.prod(shape))
        mask = torch.zeros(numel, dtype=torch.bool)
        mask[torch.from_numpy(rng.choice(numel, size=int(numel * keep), replace=False))] = True
        out[name] = mask.view(shape)
    return out


def fisher_scores(
    model: HookedTransformer, task: SortTask, problems: list[Problem], samples_per_problem: int, seed: int
) -> dict[str, Float[Tensor, "*shape"]]:
    """F_i = mean over sampled completions x_n of (d log p(x_n) / d theta_i)^2, log p summed over
    the completion's tokens, one gradient per completion (the squared mean of a batch's gradient
    would be a different quantity)."""
    generator = torch.Generator(model.cfg.device).manual_seed(seed)
    repeated = [p for p in problems for _ in range(samples_per_problem)]
    prompts, completions = generate(model, task, repeated, temperature=1.0, generator=generator)
    params = dict(model.named_parameters())
    scores = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    with torch.enable_grad():
        for prompt, completion in zip(prompts, completions):
            rows, where, mask = padded([prompt], [completion], model.cfg.device)
            grads = torch.autograd.grad(
                (token_logprobs(model, rows, where) * mask).sum(), list(params.values()), allow_unused=True
            )
            for name, g in zip(params, grads):
                if g is not None:
                    scores[name] += g.float() ** 2
    return {name: s / len(repeated) for name, s in scores.items()}


def jaccard(a: Mask, b: Mask) -> float:
    """|A and B| / |A or B| over every entry."""
    both = sum((a[k] & b[k]).sum().item() for k in a)
    either = sum((a[k] | b[k]).sum().item() for k in a)
    return both / either


def chance_jaccard(keep: float) -> float:
    """The Jaccard index two independent masks that each keep a fraction p have on average:
    p^2 / (2p - p^2) = p / (2 - p)."""
    return keep / (2 - keep)


def kept_fraction(mask: Mask) -> float:
    return sum(m.sum().item() for m in mask.values()) / sum(m.numel() for m in mask.values())
