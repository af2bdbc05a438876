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
    weight_decay: float = 1e-3,
    max_iter: int = 500,
) -> Probes:
    """A probe per layer fitted on the ``train`` examples: the minimiser of the mean cross-entropy
    plus ``weight_decay * |weight|^2`` on features standardised by their train mean and std, found
    by L-BFGS (strong Wolfe line search) in float64 (float32 on Apple's MPS) on the features'
    device. The penalised loss is strictly convex in the weights, so the probe is that unique
    minimum and not wherever an optimiser stopped: a few steps of Adam leave the weights
    oscillating, and a rounding difference in the features (another CPU, another thread count)
    moves them visibly. The loss summed over layers has each layer's gradient as its own, so one
    batch fits every layer independently; the result is returned in float32."""
    train = train.to(features.device)
    precise = torch.float32 if features.device.type == "mps" else torch.float64  # MPS has no float64
    x, y = features[:, train].to(precise), labels.to(features.device)[train]
    n_layers, n, d = x.shape
    mean, std = x.mean(1), x.std(1).clamp_min(1e-6)
    x = (x - mean[:, None]) / std[:, None]
    weight = torch.zeros(n_layers, d, n_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    bias = torch.zeros(n_layers, n_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias],
        max_iter=max_iter,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def loss() -> Tensor:
        optimiser.zero_grad()
        logits = einops.einsum(x, weight, "layer n d, layer d c -> layer n c") + bias[:, None]
        value = F.cross_entropy(logits.flatten(0, 1), y.repeat(n_layers), reduction="sum") / n
        value = value + weight_decay * weight.square().sum()
        value.backward()
        return value

    with torch.enable_grad():  # the book's setup turns gradients off globally
        optimiser.step(loss)
    return Probes(weight.detach().float(), bias.detach().float(), mean.float(), std.float())


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
