"""Matching features to the language's known latents: for every value of every latent, the
single feature that detects it best.

Introduced in chapter 'Sparse autoencoders' (chapters/sparse_autoencoders.py).

The generator records, at every token, the latents that produced it (``lib.language.LATENTS``).
Each value of a categorical latent (``word_class = noun``, ``topic = sea``, ``number = pl``, ...)
is a binary label on tokens. A feature detects it with a threshold: "the label is on where the
feature exceeds t". :func:`best_thresholds` scores every (feature, label) pair at its best
threshold in one sorted pass per feature: the F1, and the Matthews correlation (MCC) at the
threshold that maximises it. The same measure applies to anything that gives a number per
token: SAE latents, raw residual dimensions, PCA directions, MLP neurons; directions whose sign
is arbitrary (dimensions, principal components) enter with both signs.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from lib.language import LATENTS, Corpus

# Latents whose values are labels, and the values left out: "none" (not a property of the token
# but its absence) and the reserved word class.
LABELLED = ("word_class", "topic", "role", "number", "mention", "entity")
_SKIP = {"none", "reserved"}


def latent_labels(
    corpus: Corpus, keep: Bool[Tensor, "batch pos"], min_count: int = 50
) -> tuple[list[str], Bool[Tensor, "token label"]]:
    """One binary label per value of the :data:`LABELLED` latents at the tokens ``keep``
    selects (flattened in row-major order), named ``latent=value``; values with fewer than
    ``min_count`` positive tokens are left out."""
    names, columns = [], []
    for latent in LABELLED:
        values = corpus.latents[latent][keep]
        meanings = LATENTS[latent] or [str(v) for v in range(int(values.max()) + 1)]
        for v, meaning in enumerate(meanings):
            column = values == v
            if meaning not in _SKIP and int(column.sum()) >= min_count:
                names.append(f"{latent}={meaning}")
                columns.append(column)
    return names, torch.stack(columns, -1)


def best_thresholds(
    features: Float[Tensor, "token feature"], labels: Bool[Tensor, "token label"], chunk: int = 8
) -> tuple[Float[Tensor, "feature label"], Float[Tensor, "feature label"]]:
    """For every feature and label, the best F1 of "label = feature > t" over thresholds t,
    and the best MCC. Thresholds fall between distinct values only (a feature that is 0 on
    most tokens cannot split them)."""
    n, n_feat = features.shape
    y = labels.float()
    positives = y.sum(0)  # [label]
    f1 = torch.empty(n_feat, labels.shape[1])
    mcc = torch.empty_like(f1)
    for start in range(0, n_feat, chunk):
        values, order = features[:, start : start + chunk].T.sort(-1, descending=True)  # [f, token]
        tp = y[order].cumsum(1)  # [f, token, label]: positives among the top i+1
        predicted = torch.arange(1, n + 1, dtype=y.dtype)[None, :, None]
        fp, fn = predicted - tp, positives - tp
        tn = n - predicted - fn
        cut = torch.ones_like(values, dtype=torch.bool)
        cut[:, :-1] = values[:, :-1] > values[:, 1:]  # a threshold between i and i + 1 exists
        f1_all = 2 * tp / (predicted + positives)
        mcc_all = (tp * tn - fp * fn) / ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)).clamp_min(
            1e-12
        ).sqrt()
        f1[start : start + chunk] = f1_all.masked_fill(~cut[..., None], 0).amax(1)
        mcc[start : start + chunk] = mcc_all.masked_fill(~cut[..., None], -1).amax(1)
    return f1, mcc


def auroc(scores: Float[Tensor, " token"], label: Bool[Tensor, " token"]) -> float:
    """The area under the ROC curve of ``scores`` for ``label`` (Mann-Whitney, ties counted half)."""
    ranks = _average_ranks(scores.double())
    n_pos = int(label.sum())
    n_neg = len(label) - n_pos
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """Ranks 1..n, ties given their mean rank."""
    values, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return (ends - (counts.double() - 1) / 2)[inverse]


def match(
    features: Float[Tensor, "token feature"], labels: Bool[Tensor, "token label"], signed: bool = False
) -> dict:
    """Every label's best feature: its F1, MCC and AUROC (``best_f1``, ``best_mcc``, ``auroc``),
    its index and sign (``feature``, ``sign``: -1 where ``-feature`` detects the label), and
    the mean MCC of a one-to-one matching of features to labels (Hungarian, on MCC;
    ``matched_mcc``). ``signed``: score ``-feature`` too (for directions whose sign is
    arbitrary)."""
    scored = torch.cat([features, -features], -1) if signed else features
    f1, mcc = best_thresholds(scored, labels)
    best = f1.argmax(0)
    rows, cols = linear_sum_assignment(mcc.numpy(), maximize=True)
    n = features.shape[1]
    return {
        "best_f1": f1.amax(0),
        "best_mcc": mcc[best, torch.arange(labels.shape[1])],
        "auroc": torch.tensor([auroc(scored[:, b], labels[:, j]) for j, b in enumerate(best.tolist())]),
        "feature": best % n,
        "sign": torch.where(best < n, 1, -1),
        "matched_mcc": float(mcc[rows, cols].mean()),
    }


def matched_fraction(result: dict, threshold: float = 0.8) -> float:
    """The fraction of labels whose best feature reaches F1 ``threshold``."""
    return float((result["best_f1"] >= threshold).float().mean())


def precise_features(
    codes: Float[Tensor, "token feature"],
    labels: Bool[Tensor, "token label"],
    precision: float = 0.9,
    min_fires: int = 10,
) -> tuple[Int[Tensor, " label"], Float[Tensor, " label"]]:
    """Feature splitting: for every label, how many features fire (``> 0``, on at least
    ``min_fires`` tokens) almost only where it is on (precision at least ``precision``), and the
    recall of their union: how much of the label they cover together."""
    fires = codes > 0
    counts = fires.sum(0).float()  # [feature]
    hits = fires.T.float() @ labels.float()  # [feature, label]
    precise = (hits >= precision * counts[:, None]) & (counts[:, None] >= min_fires)
    union = (fires.float() @ precise.float()) > 0  # [token, label]
    recall = (union & labels).sum(0) / labels.sum(0)
    return precise.sum(0), recall.float()


def pca_directions(acts: Float[Tensor, "token d"]) -> Float[Tensor, "d d"]:
    """The principal directions of ``acts`` (columns), largest variance first."""
    centred = acts - acts.mean(0)
    return torch.linalg.svd(centred.double(), full_matrices=False).Vh.T.float()
