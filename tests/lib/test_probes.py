"""lib.probes against slow, obviously correct references: a plain per-layer fit, a Python loop
over examples, and brute-force counting; on synthetic data whose signal is known (linearly
separable in one layer, pure noise in another, a function of word identity or independent of it).
Single-threaded: the problems are tiny, and threads only wait for each other on a busy machine."""

from collections import Counter

import pytest
import torch

from lib import probes

N, D, C = 1200, 12, 3


pytestmark = pytest.mark.usefixtures("one_thread")


def separable(seed: int, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian features and labels that are the argmax of a random linear map of them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g)
    return x, (x @ torch.randn(D, C, generator=g)).argmax(-1)


def split(n: int = N) -> torch.Tensor:
    return torch.arange(n) % 4 != 0  # three quarters train, one quarter held out


@pytest.fixture(scope="module")
def signal_and_noise():
    """Layer 0 carries the labels, layer 1 is pure noise of another scale and offset."""
    x, y = separable(0)
    noise = 5 + 3 * torch.randn(N, D, generator=torch.Generator().manual_seed(1))
    return torch.stack([x, noise]), y


def penalised_gradient(x, y, train, weight, bias, weight_decay=1e-3):
    """The gradient of the mean cross-entropy plus ``weight_decay * |weight|^2`` at a probe, in
    float64, summed example by example: softmax minus one-hot, times the standardised features."""
    x, y = x[train].double(), y[train]
    mean, std = x.mean(0), x.std(0)
    weight, bias = weight.double(), bias.double()
    grad_w, grad_b = 2 * weight_decay * weight, torch.zeros_like(bias)
    for xi, yi in zip(x, y.tolist()):
        z = (xi - mean) / std
        error = (z @ weight + bias).softmax(-1)
        error[yi] -= 1
        grad_w += torch.outer(z, error) / len(y)
        grad_b += error / len(y)
    return grad_w, grad_b


def test_a_probe_reads_the_layer_with_the_signal_and_not_the_noise(signal_and_noise):
    features, y = signal_and_noise
    train = split()
    fitted = probes.fit_probes(features, y, C, train)
    accuracy = fitted.accuracy(features[:, ~train], y[~train])
    chance = Counter(y[~train].tolist()).most_common(1)[0][1] / (~train).sum().item()
    assert accuracy.shape == (2,)
    assert accuracy[0] > 0.9
    assert abs(accuracy[1].item() - chance) < 0.1, (accuracy, chance)


def test_each_probe_is_the_minimum_of_its_penalised_loss(signal_and_noise):
    """The optimality condition, checked against a loop over examples: the gradient vanishes at
    the fit, in the layer with the signal and the one without; and the batched fit equals
    fitting each layer on its own."""
    features, y = signal_and_noise
    train = split()
    fitted = probes.fit_probes(features, y, C, train)
    for l in range(2):
        grad_w, grad_b = penalised_gradient(features[l], y, train, fitted.weight[l], fitted.bias[l])
        assert grad_w.abs().max() < 1e-5 and grad_b.abs().max() < 1e-5, (l, grad_w.abs().max())
        alone = probes.fit_probes(features[l : l + 1], y, C, train)
        torch.testing.assert_close(fitted.weight[l], alone.weight[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fitted.bias[l], alone.bias[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fitted.mean[l], features[l, train].mean(0))
        torch.testing.assert_close(fitted.std[l], features[l, train].std(0))


def test_a_rounding_difference_in_the_features_barely_moves_the_probe(signal_and_noise):
    """Features perturbed at float32 rounding level (what another CPU or thread count gives) move
    the fitted probabilities by rounding level too, not by the amount an unconverged fit moves."""
    features, y = signal_and_noise
    train = split()
    noise = 1 + 1e-6 * torch.randn(features.shape, generator=torch.Generator().manual_seed(11))
    a, b = (probes.fit_probes(f, y, C, train) for f in (features, features * noise))
    pa, pb = (p.logits(features).softmax(-1) for p in (a, b))
    assert (pa - pb).abs().max() < 1e-4


def test_predict_and_accuracy_match_a_loop_over_examples(signal_and_noise):
    features, y = signal_and_noise
    fitted = probes.fit_probes(features, y, C, split())
    predicted = fitted.predict(features)
    for l in range(2):
        for i in range(0, N, 97):
            x = (features[l, i] - fitted.mean[l]) / fitted.std[l]
            assert predicted[l, i] == (x @ fitted.weight[l] + fitted.bias[l]).argmax()
        expected = sum(int(predicted[l, i] == y[i]) for i in range(N)) / N
        assert fitted.accuracy(features, y)[l].item() == pytest.approx(expected)


def test_the_probe_is_float32_whatever_the_input_dtype(signal_and_noise):
    features, y = signal_and_noise
    fitted = probes.fit_probes(features.to(torch.bfloat16), y, C, split(), max_iter=5)
    assert fitted.weight.dtype == fitted.mean.dtype == torch.float32
    assert fitted.predict(features.double()).shape == (2, N)


def skewed_labels(n: int, seed: int) -> torch.Tensor:
    return torch.multinomial(
        torch.tensor([0.6, 0.3, 0.1]), n, replacement=True, generator=torch.Generator().manual_seed(seed)
    )


def test_control_labels_are_a_function_of_word_type_drawn_from_the_label_distribution():
    n, n_types = 20000, 4000
    word_ids = torch.randint(0, n_types, (n,), generator=torch.Generator().manual_seed(2)) * 7 + 3
    labels = skewed_labels(n, 3)
    control = probes.control_labels(word_ids, labels, C, seed=4)
    by_type: dict[int, set[int]] = {}
    for w, c in zip(word_ids.tolist(), control.tolist()):
        by_type.setdefault(w, set()).add(c)
    assert all(len(cs) == 1 for cs in by_type.values())
    per_type = Counter(next(iter(cs)) for cs in by_type.values())
    real = Counter(labels.tolist())
    for k in range(C):
        assert abs(per_type[k] / len(by_type) - real[k] / n) < 0.03, (per_type, real)
    assert torch.equal(control, probes.control_labels(word_ids, labels, C, seed=4))
    assert not torch.equal(control, probes.control_labels(word_ids, labels, C, seed=5))


def test_a_control_task_is_solved_by_memorising_word_identity():
    """Features that are a word's embedding plus a little noise: the task (a function of the word)
    and the control task are both solved, so selectivity is near zero."""
    g = torch.Generator().manual_seed(6)
    n_types = 20
    word_ids = torch.randint(0, n_types, (N,), generator=g)
    features = (torch.randn(n_types, D, generator=g)[word_ids] + 0.05 * torch.randn(N, D, generator=g))[None]
    labels = torch.randint(0, C, (n_types,), generator=g)[word_ids]
    result = probes.selectivity(features, labels, word_ids, C, split(), seed=7)
    assert result["task"][0] > 0.9 and result["control"][0] > 0.9
    assert abs(result["selectivity"][0]) < 0.1


def test_a_probe_of_a_feature_independent_of_word_identity_is_selective():
    """Labels read off Gaussian features that carry nothing about the (random) word ids: the
    task is solved, the control task only at chance."""
    features, labels = separable(8)
    word_ids = torch.randint(0, 30, (N,), generator=torch.Generator().manual_seed(9))
    train = split()
    result = probes.selectivity(features[None], labels, word_ids, C, train, seed=10)
    assert set(result) == {"task", "control", "selectivity", "majority"}
    assert result["task"][0] > 0.9
    assert result["selectivity"][0] > 0.3
    most_frequent = Counter(labels[train].tolist()).most_common(1)[0][0]
    held_out = labels[~train].tolist()
    assert result["majority"].item() == pytest.approx(
        sum(y == most_frequent for y in held_out) / len(held_out)
    )
    assert result["majority"].ndim == 0


def test_fit_works_with_gradients_off(signal_and_noise):
    """The chapters run with gradients disabled globally (lib.env.setup)."""
    x, y = signal_and_noise
    with torch.no_grad():
        fitted = probes.fit_probes(x, y, C, split())
    assert fitted.accuracy(x[:, ~split()], y[~split()])[0] > 0.9
