"""lib.rl.optim and lib.rl.masks: AdamW over a mask's entries against torch's AdamW on those entries
alone, and the masks (top, random, Fisher) and their overlap against direct references."""

import numpy as np
import pytest
import torch
from random_models import random_model
from torch import nn

from lib import language as g
from lib.language import sorting
from lib.rl import masks
from lib.rl.optim import MaskedAdamW, adamw_state_bytes
from lib.rl.rollout import generate
from lib.rl.task import organism_task

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES = {"a": (5, 7), "b": (3, 4, 2), "c": (6,), "d": (4, 4)}


def params_and_mask(seed: int):
    gen = torch.Generator().manual_seed(seed)
    params = {n: nn.Parameter(torch.randn(s, generator=gen)) for n, s in SHAPES.items()}
    mask = {n: torch.rand(s, generator=gen) < 0.3 for n, s in SHAPES.items()}
    mask["c"][:] = False  # a parameter with no trained entry
    mask["d"][:] = True  # one with every entry trained
    return params, mask


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_masked_adamw_is_adamw_on_the_masked_entries(weight_decay):
    params, mask = params_and_mask(seed=1)
    before = {n: p.detach().clone() for n, p in params.items()}
    index = {n: mask[n].flatten().nonzero()[:, 0] for n in params}
    ref = {
        n: nn.Parameter(p.detach().flatten()[index[n]].clone()) for n, p in params.items() if len(index[n])
    }
    kwargs = dict(lr=3e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=weight_decay)
    opt, ref_opt = MaskedAdamW(params, mask, **kwargs), torch.optim.AdamW(ref.values(), **kwargs)
    gen = torch.Generator().manual_seed(2)
    for _ in range(6):
        for n, p in params.items():
            grad = torch.randn(p.shape, generator=gen)
            p.grad = grad.clone()
            if n in ref:
                ref[n].grad = grad.flatten()[index[n]].clone()
        opt.step()
        ref_opt.step()
        opt.zero_grad()
        ref_opt.zero_grad()
        for n, p in params.items():
            assert torch.equal(p.detach()[~mask[n]], before[n][~mask[n]])  # frozen: bit-identical
            if n in ref:
                torch.testing.assert_close(
                    p.detach().flatten()[index[n]], ref[n].detach(), rtol=1e-6, atol=1e-7
                )
    assert all(p.grad is None for n, p in params.items() if n != "c")  # zero_grad drops the grads
    moved = {n: (params[n].detach() != before[n]).sum().item() for n in params}
    assert moved == {n: mask[n].sum().item() for n in params}  # every masked entry moved, no other


def test_state_bytes():
    params, mask = params_and_mask(seed=3)
    n_masked = sum(m.sum().item() for m in mask.values())
    opt = MaskedAdamW(params, mask, lr=1e-3)
    assert opt.state_bytes() == 2 * 4 * n_masked + 4 * n_masked
    assert adamw_state_bytes(params) == 2 * 4 * sum(p.numel() for p in params.values())


@pytest.mark.parametrize("keep", [0.01, 0.1, 0.5])
def test_top_mask_keeps_the_largest_scores(keep):
    gen = torch.Generator().manual_seed(4)
    scores = {n: torch.rand(s, generator=gen) ** 3 for n, s in (SHAPES | {"e": (50, 40)}).items()}
    chosen = masks.top_mask(scores, keep)
    assert {n: m.shape for n, m in chosen.items()} == {n: s.shape for n, s in scores.items()}
    assert all(m.dtype == torch.bool for m in chosen.values())
    kept = torch.cat([s[chosen[n]] for n, s in scores.items()])
    dropped = torch.cat([s[~chosen[n]] for n, s in scores.items()])
    total = sum(s.numel() for s in scores.values())
    assert len(kept) == int(total * keep) > 0 and len(kept) + len(dropped) == total
    assert kept.min() >= dropped.max()
    assert masks.kept_fraction(chosen) == len(kept) / total


def test_random_mask_is_the_posts_recipe():
    shapes = {n: torch.Size(s) for n, s in SHAPES.items()} | {"e": torch.Size((50, 40))}
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        got = masks.random_mask(shapes, keep=0.2, seed=seed)
        for name, shape in shapes.items():
            numel = int(np.prod(shape))
            want = np.zeros(numel, dtype=bool)
            want[rng.choice(numel, int(numel * 0.2), replace=False)] = True
            assert got[name].shape == shape and got[name].flatten().numpy().tolist() == want.tolist()
    a, b = masks.random_mask(shapes, 0.2, seed=0), masks.random_mask(shapes, 0.2, seed=1)
    assert not torch.equal(a["e"], b["e"])
    assert torch.equal(a["e"], masks.random_mask(shapes, 0.2, seed=0)["e"])


def test_jaccard_against_sets():
    gen = torch.Generator().manual_seed(5)
    for keep_a, keep_b in [(0.1, 0.1), (0.3, 0.05), (0.5, 0.9)]:
        a = {n: torch.rand(s, generator=gen) < keep_a for n, s in SHAPES.items()}
        b = {n: torch.rand(s, generator=gen) < keep_b for n, s in SHAPES.items()}
        sa = {(n, i) for n, m in a.items() for i in m.flatten().nonzero()[:, 0].tolist()}
        sb = {(n, i) for n, m in b.items() for i in m.flatten().nonzero()[:, 0].tolist()}
        assert masks.jaccard(a, b) == pytest.approx(len(sa & sb) / len(sa | sb))
    assert masks.jaccard(a, a) == 1.0


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.5])
def test_chance_jaccard_against_monte_carlo(keep):
    rng = np.random.default_rng(6)
    n, trials, both, either = 200_000, 10, 0, 0
    for _ in range(trials):
        a = np.zeros(n, bool)
        b = np.zeros(n, bool)
        a[rng.choice(n, int(n * keep), replace=False)] = True
        b[rng.choice(n, int(n * keep), replace=False)] = True
        both, either = both + (a & b).sum(), either + (a | b).sum()
    # keep 0.05: about 5,000 shared entries in all, a relative error of 1.4% (0.3% at keep 0.5)
    assert masks.chance_jaccard(keep) == pytest.approx(both / either, rel=0.06)


def tiny_model():
    return random_model(d_vocab=len(g.VOCAB), n_ctx=24, n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32)


def test_fisher_scores_are_mean_squared_per_completion_gradients():
    model, task = tiny_model(), organism_task()
    batch, samples, seed = sorting.problems(3, seed=0, held=False, lengths=(2, 4)), 3, 11
    got = masks.fisher_scores(model, task, batch, samples_per_problem=samples, seed=seed)
    repeated = [p for p in batch for _ in range(samples)]
    prompts, completions = generate(model, task, repeated, 1.0, torch.Generator().manual_seed(seed))
    params = dict(model.named_parameters())
    squares = {n: torch.zeros_like(p) for n, p in params.items()}
    grads_sum = {n: torch.zeros_like(p) for n, p in params.items()}
    with torch.enable_grad():
        for prompt, completion in zip(prompts, completions):
            logp = model(torch.tensor([prompt + completion]))[0].log_softmax(-1)
            total = sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(completion))
            for n, grad in zip(params, torch.autograd.grad(total, list(params.values()))):
                squares[n] += grad**2
                grads_sum[n] += grad
    assert set(got) == set(params)
    for n in params:
        torch.testing.assert_close(got[n], squares[n] / len(repeated), rtol=1e-4, atol=1e-10)
    assert got["unembed.W_U"].abs().sum() > 0
    # the squared mean gradient is a different quantity: the comparison above could tell them apart
    assert not torch.allclose(got["unembed.W_U"], (grads_sum["unembed.W_U"] / len(repeated)) ** 2, rtol=0.1)
    again = masks.fisher_scores(model, task, batch, samples_per_problem=samples, seed=seed + 1)
    assert not torch.allclose(again["unembed.W_U"], got["unembed.W_U"])  # the seed picks the samples
