"""AdamW over a mask's entries only: optimizer state (two moments) exists for the masked entries
alone, held as flat vectors beside their flat indices, and the other entries are never written,
so they stay bit-identical (the proof that a mask held).

Introduced in chapter 'RLVR subnetworks' (chapters/rlvr_subnetworks.py).
"""

from __future__ import annotations

import torch
from jaxtyping import Bool
from torch import Tensor, nn


class MaskedAdamW:
    """AdamW (torch's update, decoupled weight decay) on the entries where ``masks[name]`` is
    True; parameters without a True entry get no state at all."""

    def __init__(
        self,
        params: dict[str, nn.Parameter],
        masks: dict[str, Bool[Tensor, "*shape"]],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.lr, self.betas, self.eps, self.weight_decay, self.t = lr, betas, eps, weight_decay, 0
        self.entries = {}
        for name, p in params.items():
            index = masks[name].to(p.device).flatten().nonzero()[:, 0].to(torch.int32)
            if len(index):
                zeros = torch.zeros(len(index), device=p.device, dtype=torch.float32)
                self.entries[name] = (p, index, zeros, zeros.clone())

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, index, m, v in self.entries.values():
            flat = p.view(-1)
            g = p.grad.flatten()[index].float()
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            w = flat[index].float() * (1 - self.lr * self.weight_decay)
            denom = (v / (1 - b2**self.t)).sqrt() + self.eps
            flat[index] = (w - self.lr * (m / (1 - b1**self.t)) / denom).to(p.dtype)

    def zero_grad(self) -> None:
        for p, *_ in self.entries.values():
            p.grad = None

    def state_bytes(self) -> int:
        """Bytes of optimizer state: the two moments and the index of every masked entry."""
        return sum(m.nbytes + v.nbytes + i.nbytes for _, i, m, v in self.entries.values())


def adamw_state_bytes(params: dict[str, nn.Parameter]) -> int:
    """Bytes of torch AdamW's state (two float32 moments per entry; the step counters aside)."""
    return sum(2 * p.numel() * 4 for p in params.values())
