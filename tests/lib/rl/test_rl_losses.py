"""lib.rl.grpo: group advantages, padded log-probabilities, and the GRPO loss against per-group,
per-row and per-token Python loops."""

import math

import pytest
import torch
from random_models import random_model

from lib.rl.grpo import group_advantages, grpo_loss, no_spread_fraction, padded, token_logprobs

pytestmark = pytest.mark.usefixtures("one_thread")


def rewards_with_ties(n_groups: int, group: int, seed: int) -> torch.Tensor:
    """Groups of 0/1 rewards (some all equal), of graded rewards, and of constant graded ones."""
    gen = torch.Generator().manual_seed(seed)
    binary = (torch.rand(n_groups, group, generator=gen) < 0.5).float()
    binary[0], binary[1] = 1.0, 0.0
    graded = torch.rand(n_groups, group, generator=gen)
    graded[2] = 0.375  # exact in float32, so that a constant group's float32 mean is exact
    return torch.cat([binary, graded]).flatten()


@pytest.mark.parametrize("group", [2, 4, 8])
def test_group_advantages_against_a_loop(group):
    rewards = rewards_with_ties(6, group, seed=group)
    want = []
    for start in range(0, len(rewards), group):
        r = rewards[start : start + group].tolist()
        mean = sum(r) / group
        std = math.sqrt(sum((x - mean) ** 2 for x in r) / (group - 1))
        want += [(x - mean) / (std + 1e-4) for x in r]
    got = group_advantages(rewards, group)
    assert got.shape == rewards.shape
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("group", [2, 4, 8])
def test_no_spread_fraction_against_a_loop(group):
    rewards = rewards_with_ties(6, group, seed=10 + group)
    groups = [rewards[s : s + group].tolist() for s in range(0, len(rewards), group)]
    want = sum(len(set(r)) == 1 for r in groups) / len(groups)
    assert 0 < want < 1
    assert no_spread_fraction(rewards, group) == pytest.approx(want)


def test_padded_token_logprobs_against_each_row_alone():
    model = random_model(d_vocab=30, n_ctx=24)
    gen = torch.Generator().manual_seed(0)
    lengths = [(3, 5), (6, 1), (1, 7), (4, 4), (9, 2)]  # (prompt, completion)
    prompts = [torch.randint(30, (p,), generator=gen).tolist() for p, _ in lengths]
    completions = [torch.randint(30, (c,), generator=gen).tolist() for _, c in lengths]
    rows, where, mask = padded(prompts, completions, "cpu")
    assert rows.shape == (5, 11) and where.shape == mask.shape == (5, 7)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        assert rows[i, : len(p) + len(c)].tolist() == p + c and not rows[i, len(p) + len(c) :].any()
        assert mask[i].tolist() == [True] * len(c) + [False] * (7 - len(c))
    with torch.no_grad():
        got = token_logprobs(model, rows, where)
        assert got.dtype == torch.float32 and got.shape == (5, 7)
        for i, (p, c) in enumerate(zip(prompts, completions)):
            logp = model(torch.tensor([p + c]))[0].log_softmax(-1)
            want = [logp[len(p) - 1 + j, c[j]].item() for j in range(len(c))]
            torch.testing.assert_close(got[i, : len(c)], torch.tensor(want), rtol=1e-5, atol=1e-5)


def slow_grpo_loss(logps, old_logps, advantages, mask, ref_logps, beta, epsilon, bias_corrected):
    """The docstring's formula token by token, in torch scalars so that autograd can follow it."""
    total, count = 0.0, 0
    for i in range(logps.shape[0]):
        for t in range(logps.shape[1]):
            if not mask[i, t]:
                continue
            a = advantages[i].item()
            ratio = torch.exp(logps[i, t] - old_logps[i, t])
            clipped_ratio = ratio if 1 - epsilon <= ratio.item() <= 1 + epsilon else None
            if clipped_ratio is None:  # outside the interval: a constant, no gradient
                clipped_ratio = torch.tensor(min(max(ratio.item(), 1 - epsilon), 1 + epsilon))
            unclipped, clipped = ratio * a, clipped_ratio * a
            term = -(unclipped if unclipped.item() <= clipped.item() else clipped)
            if beta:
                d = ref_logps[i, t] - logps[i, t]
                kl = torch.exp(d) - d - 1
                term = term + beta * (kl * ratio if bias_corrected else kl)
            total, count = total + term, count + 1
    return total / max(count, 1)


def loss_inputs(seed: int):
    gen = torch.Generator().manual_seed(seed)
    batch, new = 6, 5
    logps = -3 * torch.rand(batch, new, generator=gen) - 0.05
    old = logps + 0.4 * torch.randn(batch, new, generator=gen)  # ratios well beyond 1 +- 0.2
    ref = logps + 0.5 * torch.randn(batch, new, generator=gen)
    advantages = torch.randn(batch, generator=gen)
    lengths = torch.tensor([5, 3, 1, 4, 5, 2])
    mask = torch.arange(new)[None] < lengths[:, None]
    return logps, old, ref, advantages, mask


@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("bias_corrected", [True, False])
@pytest.mark.parametrize("epsilon", [0.2, 0.1])
def test_grpo_loss_against_a_token_loop(beta, bias_corrected, epsilon):
    logps, old, ref, advantages, mask = loss_inputs(seed=int(beta * 100) + 7 * bias_corrected)
    ratio = (logps - old).exp()[mask]
    assert ((ratio < 1 - epsilon) | (ratio > 1 + epsilon)).any() and (
        (ratio > 1 - epsilon) & (ratio < 1 + epsilon)
    ).any()
    with torch.enable_grad():
        x = logps.clone().requires_grad_(True)
        got = grpo_loss(x, old, advantages, mask, ref, beta, epsilon, bias_corrected)
        (grad,) = torch.autograd.grad(got, x)
        y = logps.clone().requires_grad_(True)
        want = slow_grpo_loss(y, old, advantages, mask, ref, beta, epsilon, bias_corrected)
        (want_grad,) = torch.autograd.grad(want, y)
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, want_grad, rtol=1e-5, atol=1e-7)
    assert not grad[~mask].any() and grad[mask].any()
    if beta == 0:  # clipped tokens teach nothing
        assert (grad[mask] == 0).any()


def test_one_update_per_batch_is_the_policy_gradient():
    """``old_logps = logps.detach()``: the loss is -mean(A) over tokens, its gradient -A / tokens."""
    logps, _, ref, advantages, mask = loss_inputs(seed=3)
    with torch.enable_grad():
        x = logps.clone().requires_grad_(True)
        loss = grpo_loss(x, x.detach(), advantages, mask)
        (grad,) = torch.autograd.grad(loss, x)
        kl_loss = grpo_loss(x, x.detach(), advantages, mask, ref_logps=x.detach(), beta=0.04)
        (kl_grad,) = torch.autograd.grad(kl_loss, x)  # the KL to an identical reference: no change
    per_token = advantages[:, None].expand_as(mask)
    assert loss.item() == pytest.approx(-(per_token[mask].sum() / mask.sum()).item(), rel=1e-6)
    torch.testing.assert_close(grad, torch.where(mask, -per_token / mask.sum(), 0.0))
    torch.testing.assert_close(kl_loss, loss)
    torch.testing.assert_close(kl_grad, grad)
    assert grpo_loss(logps, logps, advantages, torch.zeros_like(mask)).item() == 0.0  # no tokens
    with pytest.raises(ValueError, match="reference"):
        grpo_loss(logps, logps, advantages, mask, beta=0.04)
