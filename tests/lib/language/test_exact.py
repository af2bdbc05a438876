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
    probability, computed here by brute force from the topic-conditioned log-probs (times the
    prior 1 - P_RANDOM_ROW that the row is texts, for the first text: a row of random words
    cannot contain a second <bos>)."""
    tokens = corpus.tokens[corpus.latents["topic"][:, 1] >= 0][:8]  # rows of texts
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
            want = joint.logsumexp(0) - math.log(len(g.TOPICS)) + (s == 0) * math.log(1 - g.P_RANDOM_ROW)
            assert marginal[b, s:e].sum() == pytest.approx(want.item(), abs=1e-3)


def test_sampler_draws_from_the_distributions_the_scorer_reports():
    """Sampling from p, the mean surprisal of the sampled tokens is the mean entropy of p."""
    c = g.sample_corpus(seed=11, batch=64, n_ctx=N_CTX)
    logp = g.true_next_token_logprobs(c.tokens, c.latents["topic"])
    p = g.true_next_token_probs(c.tokens, c.latents["topic"])
    entropy = -(p * p.clamp_min(1e-30).log()).sum(-1)
    assert (-logp).mean().item() == pytest.approx(entropy.mean().item(), abs=0.05)


def test_impossible_text_is_refused():
    tokens = torch.tensor([[g.BOS_ID, g.ID["there"], g.ID["sorry"]]])  # a reserved word
    with pytest.raises(ValueError, match="'sorry' cannot follow 'there'"):
        g.true_next_token_logprobs(tokens)
    tokens = torch.tensor([[g.ID["there"], g.ID["was"]]])
    with pytest.raises(ValueError, match="must start with <bos>"):
        g.true_next_token_logprobs(tokens)


def reference_random_row_logprob(row):
    """log p(row) for a row of repeated random words, by enumerating the period: the mean over
    N of prod_t p(x_t | N), with p = 1/|words| on the first pass and 1 or 0 after it."""
    words = set(g.WORD_IDS.tolist())
    total = 0.0
    periods = range(g.RANDOM_PERIOD[0], g.RANDOM_PERIOD[1] + 1)
    for n in periods:
        x = row[1:]
        if all(x[t] == x[t - n] for t in range(n, len(x))):
            total += (1 / len(words)) ** min(n, len(x))
    return math.log(g.P_RANDOM_ROW * total / len(periods))


def test_random_rows_are_scored_by_brute_force_over_the_period(corpus):
    """A row of random words: the chain rule's sum equals the brute-force mixture over periods
    (the texts' reading gives it probability 0), with chance repeats inside the row too."""
    rows = corpus.tokens[corpus.latents["topic"][:, 1] < 0]
    crafted = torch.tensor([[g.BOS_ID] + [int(g.WORD_IDS[i % 3]) for i in range(40)]])  # period 3, 6, ...
    for row in [*rows, crafted[0]]:
        logp = g.true_next_token_logprobs(row[None]).double()
        assert logp.sum().item() == pytest.approx(reference_random_row_logprob(row.tolist()), abs=1e-3)
    probs = g.true_next_token_probs(crafted)
    assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)
    # once the first 4 words have repeated with period 3 at every position, only periods 6, 9, ...
    # remain, each predicting the word 3 back: the distribution is a single spike
    assert probs[0, -1].max() == pytest.approx(1.0, abs=1e-4)


def test_a_repeated_sentence_is_predicted_by_its_source():
    """After "again ," the next word is one of the first words of the earlier sentences, in
    proportion to how many start with it; once the copy is unique, the next word is certain."""
    text = "<bos> there was a cow named tom . tom runs . tom sleeps . the cow is lazy . again , tom sleeps ."
    tokens = torch.tensor([[g.ID[w] for w in text.split()]])
    probs = g.true_next_token_probs(tokens)[0]
    after_comma = len(text.split()) - 4  # predicting the first copied word
    assert probs[after_comma, g.ID["tom"]].item() == pytest.approx(2 / 3, abs=1e-4)
    assert probs[after_comma, g.ID["the"]].item() == pytest.approx(1 / 3, abs=1e-4)
    assert probs[after_comma + 1, g.ID["runs"]].item() == pytest.approx(0.5, abs=1e-4)
    assert probs[after_comma + 2, g.ID["."]].item() == pytest.approx(1.0, abs=1e-4)


def test_topic_posterior_is_bayes_rule_by_brute_force(corpus):
    """After each token, the posterior is proportional to the topic-conditioned probability of the
    text so far (brute force from the topic-given log-probs), uniform at each <bos>."""
    tokens = corpus.tokens[corpus.latents["topic"][:, 1] >= 0][:4]
    posterior = g.topic_posterior(tokens).double()
    per_topic = torch.stack(
        [
            g.true_next_token_logprobs(tokens, torch.full_like(tokens, z)).double()
            for z in range(len(g.TOPICS))
        ]
    )  # [topic, batch, pos-1]
    for b, row in enumerate(tokens.tolist()):
        start = 0
        for i in range(1, len(row)):
            if row[i - 1] == g.BOS_ID:
                start = i - 1
            if row[i] == g.BOS_ID:
                assert torch.allclose(posterior[b, i], torch.full((len(g.TOPICS),), 0.2, dtype=torch.float64))
                continue
            joint = per_topic[:, b, start:i].sum(-1)
            assert torch.allclose(posterior[b, i], (joint - joint.logsumexp(0)).exp(), atol=1e-4)
    assert posterior[:, -1].max(-1).values.mean() > 0.8  # by the end of a text the topic is clear
    with pytest.raises(ValueError, match="not texts of the language"):
        g.topic_posterior(torch.tensor([[g.BOS_ID, g.ID["there"], g.ID["runs"]]]))


def test_continuation_topic_posterior_is_the_posterior_of_the_grammatical_prefix(corpus):
    """A grammatical text closed by <bos> gets topic_posterior's value at its end; a text with a
    token the grammar refuses gets the value just before that token, and the count of tokens
    before it; what follows the first <bos> is ignored."""
    tokens = corpus.tokens[corpus.latents["topic"][:, 1] >= 0][:4]
    full = g.topic_posterior(tokens)
    for row, posterior in zip(tokens, full):
        end = int((row[1:] == g.BOS_ID).nonzero()[0]) + 1  # the closing <bos>
        text = row[1 : end + 1]
        junk = torch.tensor([g.ID["runs"]] * 3)
        got, n = g.continuation_topic_posterior(torch.cat([text, junk])[None])
        assert torch.allclose(got[0], posterior[end - 1], atol=1e-5) and int(n[0]) == end
        cut = end // 2
        refused = int((g.true_next_token_probs(row[None])[0, cut] == 0).nonzero()[0])  # after text[:cut]
        broken = torch.cat([text[:cut], torch.tensor([refused, g.ID["."]])])
        got, n = g.continuation_topic_posterior(broken[None])
        assert int(n[0]) == cut and torch.allclose(got[0], posterior[cut], atol=1e-5)
