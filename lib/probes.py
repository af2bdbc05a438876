"""Linear probes on residual-stream activations, with Hewitt & Liang's control tasks.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).

A probe is a multinomial logistic regression from one layer's activations to a label: high
held-out accuracy says the label is linearly decodable there. But a probe can also memorise.
Hewitt & Liang (2019) give every word type a random label, the *control task*, which a probe can
solve only by memorising which word it sees, and report *selectivity*: task accuracy minus
control accuracy. All layers are fitted at once, as one batch of independent probes.
"""

from __future__ import annotations

from dataclasses import dataclass

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor


@dataclass(frozen=True)
class Probes:
    """One linear probe per layer on standardised features: ``(x - mean) / std @ weight + bias``."""

    weight: Float[Tensor, "layer d n_classes"]
    bias: Float[Tensor, "layer n_classes"]
    mean: Float[Tensor, "layer d"]
    std: Float[Tensor, "layer d"]

    def logits(self, features: Float[Tensor, "layer n d"]) -> Float[Tensor, "layer n n_classes"]:
        x = (features.float() - self.mean[:, None]) / self.std[:, None]
        return einops.einsum(x, self.weight, "layer n d, layer d c -> layer n c") + self.bias[:, None]

    def predict(self, features: Float[Tensor, "layer n d"]) -> Int[Tensor, "layer n"]:
        return self.logits(features).argmax(-1)

    def accuracy(
        self, features: Float[Tensor, "layer n d"], labels: Int[Tensor, " n"]
    ) -> Float[Tensor, " layer"]:
        return (self.predict(features) == labels.to(self.weight.device)).float().mean(-1)


def fit_probes(
    features: Float[Tensor, "layer n d"],
    labels: Int[Tensor, " n"],
    n_classes: int,
    train: Bool[Tensor, " n"],
    steps: int = 200,
    weight_decay: float = 1e-3,
    lr: float = 0.1,
) -> Probes:
    """A probe per layer fitted on the ``train`` examples: full-batch Adam from zero on the mean
    cross-entropy plus ``weight_decay * |weight|^2``, in float32, on the features' device, each
    layer standardised by its train mean and std. The loss summed over layers has each layer's
    gradient as its own, and Adam works elementwise, so the batch fits every layer independently."""
    train = train.to(features.device)
    x, y = features[:, train].float(), labels.to(features.device)[train]
    n_layers, n, d = x.shape
    weight = torch.zeros(n_layers, d, n_classes, device=x.device, requires_grad=True)
    bias = torch.zeros(n_layers, n_classes, device=x.device, requires_grad=True)
    probes = Probes(weight, bias, x.mean(1), x.std(1).clamp_min(1e-6))
    optimiser = torch.optim.Adam([weight, bias], lr=lr)
    with torch.enable_grad():  # the book's setup turns gradients off globally
        for _ in range(steps):
            optimiser.zero_grad()
            logits = probes.logits(x).flatten(0, 1)
            loss = F.cross_entropy(logits, y.repeat(n_layers), reduction="sum") / n
            (loss + weight_decay * weight.square().sum()).backward()
            optimiser.step()
    return Probes(weight.detach(), bias.detach(), probes.mean, probes.std)


def control_labels(
    word_ids: Int[Tensor, " n"], labels: Int[Tensor, " n"], n_classes: int, seed: int
) -> Int[Tensor, " n"]:
    """Hewitt & Liang's control task: every word type gets one label drawn from the empirical
    distribution of ``labels``, and every example its word type's label."""
    types, word_type = torch.unique(word_ids, return_inverse=True)
    frequency = torch.bincount(labels.cpu(), minlength=n_classes).float()
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.multinomial(frequency, len(types), replacement=True, generator=generator)
    return drawn.to(labels.device)[word_type]


def selectivity(
    features: Float[Tensor, "layer n d"],
    labels: Int[Tensor, " n"],
    word_ids: Int[Tensor, " n"],
    n_classes: int,
    train: Bool[Tensor, " n"],
    seed: int,
    **fit: float,
) -> dict[str, Tensor]:
    """Held-out accuracy per layer of probes for the task and for its control task (seeded by
    ``seed``), fitted on the same split with the keyword arguments ``fit`` of :func:`fit_probes`;
    ``selectivity`` = task - control; ``majority``: the held-out accuracy of always answering the
    most frequent train label, chance level for the task."""
    test = ~train
    control = control_labels(word_ids, labels, n_classes, seed)
    task_acc, control_acc = (
        fit_probes(features, y, n_classes, train, **fit).accuracy(features[:, test], y[test])
        for y in (labels, control)
    )
    most_frequent = torch.bincount(labels[train], minlength=n_classes).argmax()
    majority = (labels[test] == most_frequent).float().mean()
    return {
        "task": task_acc,
        "control": control_acc,
        "selectivity": task_acc - control_acc,
        "majority": majority,
    }
