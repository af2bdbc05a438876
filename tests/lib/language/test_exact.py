"""lib.language.exact: the exact next-token distribution, against brute force and the sampler."""

import math

import pytest
import torch

from lib import language as g

N_CTX = 128  # the corpus fixture's row length


def test_true_logprobs_and_distributions(corpus):
    tokens = corpus.tokens[:16]
    logp = g.true_next_token_logprobs(tokens)
    probs = g.true_next_token_probs(tokens)
    assert logp.shape == (16, N_CTX - 1) and probs.shape == (16, N_CTX - 1, len(g.VOCAB))
    assert (logp <= 1e-6).all() and logp.isfinite().all()
    assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)
    assert torch.allclose(probs.gather(-1, tokens[:, 1:, None])[..., 0].log(), logp, atol=1e-5)
    given = g.true_next_token_logprobs(tokens, corpus.latents["topic"][:16])
    assert (given <= 1e-6).all() and given.mean() >= logp.mean()  # knowing the topic helps


def test_topic_marginal_is_the_exact_mixture(corpus):
    """Chain rule: the filtered log-probs of a text sum to log of the topic-averaged joint
    probability, computed here by brute force from the topic-conditioned log-probs."""
    tokens = corpus.tokens[:8]
    marginal = g.true_next_token_logprobs(tokens).double()
    per_topic = torch.stack(
        [
            g.true_next_token_logprobs(tokens, torch.full_like(tokens, z)).double()
            for z in range(len(g.TOPICS))
        ]
    )  # [topic, batch, pos-1]
    for b, row in enumerate(tokens.tolist()):
        bos = [i for i, t in enumerate(row) if t == g.BOS_ID] + [N_CTX - 1]
        for s, e in zip(bos, bos[1:]):
            joint = per_topic[:, b, s:e].sum(-1)
            want = joint.logsumexp(0) - math.log(len(g.TOPICS))
            assert marginal[b, s:e].sum() == pytest.approx(want.item(), abs=1e-3)


def test_sampler_draws_from_the_distributions_the_scorer_reports():
    """Sampling from p, the mean surprisal of the sampled tokens is the mean entropy of p."""
    c = g.sample_corpus(seed=11, batch=64, n_ctx=N_CTX)
    logp = g.true_next_token_logprobs(c.tokens, c.latents["topic"])
    p = g.true_next_token_probs(c.tokens, c.latents["topic"])
    entropy = -(p * p.clamp_min(1e-30).log()).sum(-1)
    assert (-logp).mean().item() == pytest.approx(entropy.mean().item(), abs=0.05)


def test_impossible_text_is_refused():
    tokens = torch.tensor([[g.BOS_ID, g.ID["there"], g.ID["runs"]]])
    with pytest.raises(ValueError, match="'runs' cannot follow 'there'"):
        g.true_next_token_logprobs(tokens)
