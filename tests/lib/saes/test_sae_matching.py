"""lib.saes.matching against brute force: every threshold, every pair, every permutation."""

import itertools

import pytest
import torch

from lib import language, saes


def brute_force_best(feature: list[float], label: list[bool]) -> tuple[float, float]:
    """Best F1 and MCC of "label = feature > t" over every threshold below each distinct value."""
    best_f1, best_mcc = 0.0, -1.0
    for t in sorted(set(feature)):
        pred = [v >= t for v in feature]
        tp = sum(p and y for p, y in zip(pred, label))
        fp = sum(p and not y for p, y in zip(pred, label))
        fn = sum(y and not p for p, y in zip(pred, label))
        tn = len(label) - tp - fp - fn
        best_f1 = max(best_f1, 2 * tp / (2 * tp + fp + fn))
        denom = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
        best_mcc = max(best_mcc, (tp * tn - fp * fn) / max(denom, 1e-6))
    return best_f1, best_mcc


def test_best_thresholds_against_every_threshold():
    g = torch.Generator().manual_seed(0)
    features = torch.relu(torch.randn(60, 5, generator=g)).round(decimals=1)  # zeros and ties
    labels = torch.rand(60, 3, generator=g) < 0.3
    labels[:, 2] = features[:, 1] > 0.4  # one label a feature detects exactly
    f1, mcc = saes.best_thresholds(features, labels, chunk=2)
    for i, j in itertools.product(range(5), range(3)):
        want_f1, want_mcc = brute_force_best(features[:, i].tolist(), labels[:, j].tolist())
        assert f1[i, j].item() == pytest.approx(want_f1, abs=1e-5)
        assert mcc[i, j].item() == pytest.approx(want_mcc, abs=1e-5)
    assert f1[1, 2] == 1 and mcc[1, 2] == pytest.approx(1)


def test_auroc_counts_pairs():
    scores = torch.tensor([0.1, 0.4, 0.4, 0.9, 0.2, 0.4])
    label = torch.tensor([False, True, False, True, False, True])
    pairs = [(p, n) for p in scores[label].tolist() for n in scores[~label].tolist()]
    want = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert saes.auroc(scores, label) == pytest.approx(want)


def test_match_finds_the_best_feature_its_sign_and_the_best_one_to_one_matching():
    g = torch.Generator().manual_seed(3)
    labels = torch.rand(400, 3, generator=g) < 0.4
    noise = 0.3 * torch.randn(400, 4, generator=g)
    features = noise.clone()
    features[:, 2] += labels[:, 0].float()
    features[:, 0] -= labels[:, 1].float()  # label 1 is the negative of feature 0
    result = saes.match(features, labels, signed=True)
    assert result["feature"][:2].tolist() == [2, 0] and result["sign"][:2].tolist() == [1, -1]
    assert (result["best_f1"][:2] > 0.9).all() and result["best_f1"][2] < 0.7
    scored = torch.cat([features, -features], -1)
    _, mcc = saes.best_thresholds(scored, labels)
    best = max(
        sum(mcc[f, j].item() for j, f in enumerate(perm)) / 3 for perm in itertools.permutations(range(8), 3)
    )
    assert result["matched_mcc"] == pytest.approx(best, abs=1e-6)
    assert saes.matched_fraction(result) == pytest.approx(2 / 3)


def test_latent_labels_against_a_loop():
    corpus = language.sample_corpus(0, 8, 64)
    keep = corpus.tokens != language.BOS_ID
    names, labels = saes.latent_labels(corpus, keep, min_count=5)
    assert len(names) == labels.shape[1] == len(set(names))
    for name, column in zip(names, labels.T):
        latent, value = name.split("=")
        meanings = language.LATENTS[latent]
        code = meanings.index(value) if meanings else int(value)
        want = [int(v) == code for v, k in zip(corpus.latents[latent].flatten(), keep.flatten()) if k]
        assert column.tolist() == want and sum(want) >= 5
    assert "number=pl" in names and not any(n.endswith("=none") for n in names)


def test_precise_features_against_a_loop():
    g = torch.Generator().manual_seed(4)
    codes = torch.relu(torch.randn(300, 6, generator=g))
    labels = torch.rand(300, 2, generator=g) < 0.3
    codes[:, 0] = labels[:, 0] * (torch.rand(300, generator=g) < 0.5)  # precise for label 0, half its recall
    codes[:, 1] = labels[:, 0] & ~(codes[:, 0] > 0)  # precise for label 0, the other half
    count, recall = saes.precise_features(codes, labels, precision=0.9, min_fires=10)
    for j in range(2):
        chosen = []
        for i in range(6):
            fired = [bool(c > 0) for c in codes[:, i]]
            on = [f and bool(y) for f, y in zip(fired, labels[:, j])]
            if sum(fired) >= 10 and sum(on) >= 0.9 * sum(fired):
                chosen.append(i)
        covered = [any(codes[t, i] > 0 for i in chosen) and bool(labels[t, j]) for t in range(300)]
        assert count[j] == len(chosen) and recall[j].item() == pytest.approx(
            sum(covered) / int(labels[:, j].sum())
        )
    assert count[0] == 2 and recall[0] == 1


def test_pca_directions_are_orthonormal_and_ordered():
    x = torch.randn(500, 6) * torch.tensor([5.0, 1, 3, 0.5, 2, 1])
    dirs = saes.pca_directions(x)
    torch.testing.assert_close(dirs.T @ dirs, torch.eye(6), atol=1e-5, rtol=0)
    variances = ((x - x.mean(0)) @ dirs).var(0)
    assert (variances[:-1] >= variances[1:]).all()
