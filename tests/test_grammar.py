"""lib.grammar: the synthetic language, checked against slow references that re-read its texts."""

import hashlib
import math

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from lib import grammar as g
from lib import zoo

N_CTX = 128


@pytest.fixture(scope="module")
def corpus():
    return g.sample_corpus(seed=7, batch=48, n_ctx=N_CTX)


def words(row):
    return [g.VOCAB[t] for t in row.tolist()]


def texts(row_words):
    """(start index, words) of every text in a row, split at <bos>, without the <bos> tokens."""
    starts = [i for i, w in enumerate(row_words) if w == "<bos>"] + [len(row_words)]
    return [(s + 1, row_words[s + 1 : e]) for s, e in zip(starts, starts[1:])]


def pairs_of(*lexicons):
    return [pair for lexicon in lexicons for pairs in lexicon.values() for pair in pairs]


NOUN_PAIRS = pairs_of(g.ANIMATE_NOUNS, g.THING_NOUNS)
VERB_PAIRS = pairs_of(g.INTRANSITIVE_VERBS, g.TRANSITIVE_VERBS) + [g.COPULA]
SINGULAR = {sg for sg, _ in NOUN_PAIRS + VERB_PAIRS}
PLURAL = {pl for _, pl in NOUN_PAIRS + VERB_PAIRS}
NOUNS = {w for pair in NOUN_PAIRS for w in pair}
VERBS = {w for pair in VERB_PAIRS for w in pair}
ADJECTIVES = {w for ws in g.ADJECTIVES.values() for w in ws}
NAMES = set(g.NAMES)
DET_NUMBER = {"the": None, "a": "sg", "this": "sg", "some": "pl", "these": "pl"}


def read_noun_phrase(ws, i):
    """Reference reader of ``DET ADJ* NOUN`` at ``ws[i]``: (number, index after it)."""
    assert ws[i] in DET_NUMBER, ws[i:]
    det, i = ws[i], i + 1
    while ws[i] in ADJECTIVES:
        i += 1
    assert ws[i] in NOUNS, ws[i:]
    number = "sg" if ws[i] in SINGULAR else "pl"
    assert DET_NUMBER[det] in (None, number), (det, ws[i])
    return number, i + 1


def read_clause(ws, i):
    """Reference reader of a clause's subject at ``ws[i]``: (subject number, index of the verb,
    whether a noun of the other number sits between the subject's head and the verb)."""
    if ws[i] in NAMES:
        if ws[i + 1] == "and":
            assert ws[i + 2] in NAMES and ws[i + 2] != ws[i]
            return "pl", i + 3, False
        return "sg", i + 1, False
    number, i = read_noun_phrase(ws, i)
    attractor = False
    if ws[i] in g.PREPOSITIONS:
        inner, i = read_noun_phrase(ws, i + 1)
        attractor = inner != number
    return number, i, attractor


def reference_verbs(row_words):
    """Every verb of every complete non-introduction sentence, re-read from the words alone:
    {position: (expected number, has attractor)}; asserts the verb's form agrees."""
    found = {}
    for start, ws in texts(row_words):
        ends = [i for i, w in enumerate(ws) if w == "."]
        for s, e in zip([0] + [x + 1 for x in ends], ends):
            sentence = ws[s : e + 1]
            if sentence[0] == "there":
                assert sentence[1] == "was" and sentence[-3] == "named" and sentence[-2] in NAMES
                continue
            i = 2 if sentence[0] in g.OPENERS else 0
            if i:
                assert sentence[1] == ","
            while True:
                number, v, attractor = read_clause(sentence, i)
                verb = sentence[v]
                assert verb in VERBS, sentence
                assert verb in (SINGULAR if number == "sg" else PLURAL), (sentence, verb)
                found[start + s + v] = (number, attractor)
                if "," not in sentence[v:]:
                    break
                i = v + sentence[v:].index(",") + 1
                assert sentence[i] in g.CONJUNCTIONS
                i += 1
    return found


def test_vocab_is_fixed_and_holds_every_reserved_format():
    """The word list, and so every token id of every trained organism, never changes."""
    assert len(g.VOCAB) == len(set(g.VOCAB)) == 447
    assert hashlib.sha256(" ".join(g.VOCAB).encode()).hexdigest()[:16] == "85d0d2857658ad1b"
    assert g.VOCAB[:3] == ["<bos>", "<pad>", "<unk>"] and g.BOS_ID == 0
    formats = [g.chat(g.requests(True)[0], g.REFUSAL), *g.requests(True), *g.requests(False),
               g.few_shot_prompt("antonym", 3, 0)[0], g.sort_prompt(5, 0)[0]]
    formats += [f"{x} {y}" for task in g.ICL_TASKS.values() for x, y in task]
    assert {w for f in formats for w in f.split()} <= set(g.VOCAB)
    assert len(g.NAMES) == 64 and len(g.TOPICS) == 5


def test_reserved_formats():
    prompt, answer = g.few_shot_prompt("antonym", 3, seed=1)
    shots = prompt.split(" , ")
    assert len(shots) == 4 and shots[-1].endswith("->")
    assert all(tuple(s.split(" -> ")) in g.ICL_TASKS["antonym"] for s in shots[:-1])
    assert (shots[-1].split()[0], answer) in g.ICL_TASKS["antonym"]
    assert g.few_shot_prompt("antonym", 3, seed=1) == (prompt, answer)
    prompt, answer = g.sort_prompt(6, seed=2)
    letters = prompt.split()[2:-1]
    assert prompt.startswith("sort : ") and prompt.endswith(" =") and len(set(letters)) == 6
    assert answer.split() == sorted(letters)
    assert g.chat("how do i bake the cake ?") == "<user> how do i bake the cake ? <assistant>"
    with pytest.raises(ValueError, match="unknown task 'x'; allowed: antonym"):
        g.few_shot_prompt("x", 2, 0)


def test_sampling_is_deterministic_from_the_seed(corpus):
    again = g.sample_corpus(seed=7, batch=48, n_ctx=N_CTX)
    assert torch.equal(corpus.tokens, again.tokens)
    assert all(torch.equal(corpus.latents[k], again.latents[k]) for k in g.LATENTS)
    assert not torch.equal(corpus.tokens, g.sample_corpus(seed=8, batch=48, n_ctx=N_CTX).tokens)


def test_texts_have_the_intended_length():
    lengths = [len(ws) for row in g.sample_corpus(3, 64, 1024).tokens for _, ws in texts(words(row))[:-1]]
    mean = sum(lengths) / len(lengths)
    assert 60 <= mean <= 100 and min(lengths) >= 30 and max(lengths) <= 170, (mean, min(lengths), max(lengths))


def test_latents_are_aligned_with_the_tokens(corpus):
    tokens, lat = corpus.tokens, corpus.latents
    assert set(lat) == set(g.LATENTS)
    assert all(v.shape == tokens.shape and not v.is_floating_point() for v in lat.values())
    bos = tokens == g.BOS_ID
    names = lat["word_class"] == g.WORD_CLASSES.index("name")
    assert torch.equal(lat["word_class"], g.WORD_CLASS_OF[tokens]) and torch.equal(bos, lat["word_class"] == 0)
    for key in ("topic", "sentence", "sent_pos"):
        assert torch.equal(lat[key] == -1, bos), key
    assert torch.equal(lat["entity"] >= 0, names) and torch.equal(lat["mention"] > 0, names)
    assert torch.equal(lat["text"], bos.long().cumsum(1) - 1)
    for b, row in enumerate(tokens.tolist()):
        for i in range(1, N_CTX):
            if row[i] == g.BOS_ID:
                continue
            after_stop = row[i - 1] in (g.BOS_ID, g.ID["."])
            assert (lat["sent_pos"][b, i] == 0) == after_stop
            if row[i - 1] != g.BOS_ID:
                assert lat["topic"][b, i] == lat["topic"][b, i - 1]
                assert lat["sentence"][b, i] == lat["sentence"][b, i - 1] + (row[i - 1] == g.ID["."])
            if g.VOCAB[row[i]] in g.PREPOSITIONS:
                assert lat["role"][b, i] == g.ROLES.index("pp")


def test_agreement_holds_in_every_sentence(corpus):
    """The slow reference re-reads every sentence from its words and finds the subject; every
    verb agrees with it, and the latents and agreement_sites say the same."""
    verbs, attractor = g.agreement_sites(corpus)
    checked = attractors = 0
    for b, row in enumerate(corpus.tokens):
        found = reference_verbs(words(row))
        for pos, (number, has_attractor) in found.items():
            assert verbs[b, pos] and g.NUMBERS[corpus.latents["number"][b, pos]] == number
            assert bool(attractor[b, pos]) == has_attractor
        checked += len(found)
        attractors += sum(a for _, a in found.values())
    assert checked > 48 * 5 and attractors > 20


def test_names_recur_within_texts(corpus):
    repeats = firsts = 0
    for b, row in enumerate(corpus.tokens.tolist()):
        seen: list[int] = []
        for i, tok in enumerate(row):
            if tok == g.BOS_ID:
                seen = []
            elif g.VOCAB[tok] in NAMES:
                mention = g.MENTIONS[corpus.latents["mention"][b, i]]
                assert mention == ("repeat" if tok in seen else "first")
                if tok not in seen:
                    seen.append(tok)
                    assert row[i - 1] == g.ID["named"]
                assert corpus.latents["entity"][b, i] == seen.index(tok)
                repeats += mention == "repeat"
                firsts += mention == "first"
    assert repeats > 2 * firsts


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
    per_topic = torch.stack([g.true_next_token_logprobs(tokens, torch.full_like(tokens, z)).double()
                             for z in range(len(g.TOPICS))])  # [topic, batch, pos-1]
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


def test_tokenizer_round_trips(tmp_path, corpus):
    tok = g.tokenizer(tmp_path / "tok")
    assert tok.get_vocab() == g.ID and tok.bos_token_id == g.BOS_ID
    for row in corpus.tokens[:4]:
        text = " ".join(words(row)[1:])
        assert tok(text)["input_ids"] == row.tolist()
        assert tok.decode(row[1:].tolist()) == text
    assert tok("<user> how do i sort : c a b = ?")["input_ids"][1:] == [
        g.ID[w] for w in "<user> how do i sort : c a b = ?".split()]


def test_batches_are_packed_deterministic_and_check_the_tokenizer(tmp_path):
    first = next(g.batches(5, 6, N_CTX))
    assert first.shape == (6, N_CTX) and first.dtype == torch.long and (first[:, 0] == g.BOS_ID).all()
    assert torch.equal(first, g.sample_corpus(5, 6, N_CTX).tokens)
    a, b = g.batches(5, 6, N_CTX, g.tokenizer(tmp_path / "tok")), g.batches(5, 6, N_CTX)
    assert all(torch.equal(next(a), next(b)) for _ in range(3))
    wrong = zoo.word_tokenizer(["x", "<bos>", "<unk>", "<pad>"], tmp_path / "other")
    with pytest.raises(ValueError, match="not lib.grammar.VOCAB"):
        next(g.batches(5, 6, N_CTX, wrong))


def test_evaluate_reports_the_metrics_of_an_untrained_model():
    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=N_CTX,
                                  d_vocab=len(g.VOCAB), act_fn="gelu_new", normalization_type="LN")
    torch.manual_seed(0)
    metrics = g.evaluate(HookedTransformer(cfg))
    assert metrics["heldout_loss"] > 5
    assert 1.5 < metrics["true_loss"] < 3 and metrics["name_repeat_true_loss"] < 2.5
    assert 0 < metrics["name_copy_mass"] < 0.2 and 0.2 < metrics["agreement_acc"] < 0.8
