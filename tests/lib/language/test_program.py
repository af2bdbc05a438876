"""lib.language.program: the texts the program generates, checked against slow references that
re-read them from their words alone (and the latents it records, against the same reading)."""

import torch

from lib import language as g

N_CTX = 128  # the corpus fixture's row length


def words(row):
    return [g.VOCAB[t] for t in row.tolist()]


def text_rows(corpus):
    """Indices of the rows of texts (the rest are rows of repeated random words)."""
    return (corpus.latents["topic"][:, 1] >= 0).nonzero()[:, 0].tolist()


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
        repeatable = []  # the text's sentences an "again ," may copy
        for s, e in zip([0] + [x + 1 for x in ends], ends):
            sentence = ws[s : e + 1]
            if sentence[0] == "there":
                assert sentence[1] == "was" and sentence[-3] == "named" and sentence[-2] in NAMES
                continue
            if sentence[0] == "again":  # a copy: its verbs are copied, not agreement sites
                assert sentence[1] == "," and sentence[2:] in repeatable, sentence
                continue
            repeatable.append(sentence)
            i = 0
            if sentence[i] in g.OPENERS:
                assert sentence[i + 1] == ","
                i += 2
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


def test_texts_have_the_intended_length():
    c = g.sample_corpus(3, 64, 1024)
    lengths = [len(ws) for b in text_rows(c) for _, ws in texts(words(c.tokens[b]))[:-1]]
    mean = sum(lengths) / len(lengths)
    assert 60 <= mean <= 100 and min(lengths) >= 30 and max(lengths) <= 170, (
        mean,
        min(lengths),
        max(lengths),
    )


def test_latents_are_aligned_with_the_tokens(corpus):
    assert set(corpus.latents) == set(g.LATENTS)
    assert all(v.shape == corpus.tokens.shape and not v.is_floating_point() for v in corpus.latents.values())
    rows = text_rows(corpus)
    tokens, lat = corpus.tokens[rows], {k: v[rows] for k, v in corpus.latents.items()}
    bos = tokens == g.BOS_ID
    names = lat["word_class"] == g.WORD_CLASSES.index("name")
    assert torch.equal(lat["word_class"], g.WORD_CLASS_OF[tokens]) and torch.equal(
        bos, lat["word_class"] == 0
    )
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
    for b in text_rows(corpus):
        found = reference_verbs(words(corpus.tokens[b]))
        for pos, (number, has_attractor) in found.items():
            assert verbs[b, pos] and g.NUMBERS[corpus.latents["number"][b, pos]] == number
            assert bool(attractor[b, pos]) == has_attractor
        checked += len(found)
        attractors += sum(a for _, a in found.values())
    assert checked > 36 * 5 and attractors > 10  # about 36 of the 48 rows are texts


def test_names_recur_within_texts(corpus):
    repeats = firsts = 0
    for b in text_rows(corpus):
        row, seen = corpus.tokens[b].tolist(), []
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


def test_repeated_sentences_copy_an_earlier_sentence(corpus):
    """Every "again ," opens a span whose tokens and latents (but position) are those of an
    earlier sentence of the same text."""
    span, found = corpus.latents["span"], 0
    for b in text_rows(corpus):
        row = corpus.tokens[b].tolist()
        for i in (span[b] == g.SPANS.index("repeat")).nonzero()[:, 0].tolist():
            if span[b, i - 1] != g.SPANS.index("repeat"):  # the first token of a copy
                assert row[i - 2 : i] == [g.ID["again"], g.ID[","]]
                found += 1
        assert all(
            g.SPANS[span[b, i]] == "text" for i in range(len(row)) if row[i] in (g.ID["again"], g.BOS_ID)
        )
    assert found > 10


def test_random_rows_repeat_random_words(corpus):
    random_rows = (corpus.latents["topic"][:, 1] < 0).nonzero()[:, 0].tolist()
    assert 0.3 * g.P_RANDOM_ROW * 48 <= len(random_rows) <= 2 * g.P_RANDOM_ROW * 48 + 3  # of 48 rows
    for b in random_rows:
        row, span = corpus.tokens[b].tolist(), corpus.latents["span"][b].tolist()
        period = span.count(g.SPANS.index("random"))
        assert g.RANDOM_PERIOD[0] <= period <= g.RANDOM_PERIOD[1]
        assert span[1 : period + 1] == [g.SPANS.index("random")] * period
        assert row[1:] == [row[1 + i % period] for i in range(N_CTX - 1)]
        assert set(row[1:]) <= set(g.WORD_IDS.tolist())
