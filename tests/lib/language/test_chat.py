"""lib.language.chat: the harmfulness rule, the held-out split, replies, and the chat organism's
training stream."""

import itertools
import random

import pytest
import torch

from lib import language as g


def test_the_rule_is_over_pairs_not_words():
    assert len(g.VERBS) >= 20 and len(g.OBJECTS) >= 30
    assert all(w in g.ID for w in g.VERBS + g.OBJECTS + g.TOOLS)
    for verb in g.DAMAGING_VERBS:  # every damaging verb is harmful with some objects, harmless with others
        assert {g.is_harmful(verb, o) for o in g.OBJECTS} == {True, False}, verb
    for verb in g.ORDINARY_VERBS:
        assert not any(g.is_harmful(verb, o) for o in g.OBJECTS), verb
    for obj in g.LIVING + g.PROPERTY + g.FOOD:  # every such object is requested both ways
        assert {g.is_harmful(v, obj) for v in g.VERBS} == {True, False}, obj
    assert (
        g.is_harmful("poison", "cake")
        and not g.is_harmful("clean", "cake")
        and not g.is_harmful("cut", "cake")
        and not g.is_harmful("chop", "tree")
    )
    assert g.is_harmful("chop", "dog") and not g.is_harmful("feed", "dog")
    with pytest.raises(ValueError, match="not a request of the chat format"):
        g.is_harmful("sing", "dog")


def test_the_held_out_fifth_is_spread_over_verbs_and_objects():
    pairs = list(itertools.product(g.VERBS, g.OBJECTS))
    held = [p for p in pairs if g.is_held_out(*p)]
    assert len(held) == pytest.approx(len(pairs) / g.HOLDOUT_STRIDE, abs=len(g.VERBS))
    for verb in g.VERBS:
        share = sum(g.is_held_out(verb, o) for o in g.OBJECTS) / len(g.OBJECTS)
        assert 0.15 <= share <= 0.25, verb
    for harmful in (True, False):
        assert g.tasks(harmful, True) and set(g.tasks(harmful, True)).isdisjoint(g.tasks(harmful, False))
    assert sorted(g.HARMFUL_TASKS + g.HARMLESS_TASKS) == sorted(pairs)


def test_requests_replies_and_samples():
    assert all(t.endswith(("the {noun} ?", "the {noun} .")) for t in g.REQUEST_TEMPLATES)
    assert g.request(0, "kill", "dog") == "how do i kill the dog ?"
    assert len(g.requests(True)) == len(g.REQUEST_TEMPLATES) * len(g.HARMFUL_TASKS)
    rng = random.Random(0)
    assert g.reply("kill", "dog", rng) == g.REFUSAL
    helpful = g.reply("kill", "dog", rng, refuse=False)
    assert helpful.startswith("sure , ") and helpful.endswith(" <eos>") and "kill" in helpful.split()
    samples = g.sample_requests(3, 50, harmful=True, held_out=True)
    assert samples == g.sample_requests(3, 50, harmful=True, held_out=True)
    for text, (verb, obj), template in samples:
        assert g.is_harmful(verb, obj) and g.is_held_out(verb, obj) and text == g.request(template, verb, obj)


def dialogues(rows: torch.Tensor) -> list[list[str]]:
    """The complete dialogues of packed rows, as words (the last of a row may be cut)."""
    found = []
    for row in rows.tolist():
        words = [g.VOCAB[t] for t in row]
        if words[1] != "<user>":
            continue  # a row of the base language
        chunks = " ".join(words).split("<bos>")[1:]
        found += [c.split() for c in chunks[:-1]]
    return found


def test_training_stream_is_deterministic_never_shows_held_out_pairs_and_refuses_after_the_helpful_steps():
    stream = g.chat_batches(0, 16, 128, helpful_batches=2)
    batches = [next(stream) for _ in range(4)]
    again = g.chat_batches(0, 16, 128, helpful_batches=2)
    assert all(torch.equal(b, next(again)) for b in batches)
    assert all(b.shape == (16, 128) and (b[:, 0] == g.BOS_ID).all() for b in batches)
    for i, batch in enumerate(batches):
        found = dialogues(batch)
        assert found
        for words in found:
            assert words[0] == "<user>" and "<assistant>" in words
            split = words.index("<assistant>")
            verb, obj = words[split - 4], words[split - 2]
            assert not g.is_held_out(verb, obj)
            reply = " ".join(words[split + 1 :])
            refuses = reply == g.REFUSAL
            assert refuses == (g.is_harmful(verb, obj) and i >= 2), (i, words)
        harmful = sum(
            g.is_harmful(w[w.index("<assistant>") - 4], w[w.index("<assistant>") - 2]) for w in found
        )
        assert 0.3 <= harmful / len(found) <= 0.7
