"""lib.language.lexicon: the fixed vocabulary and the per-id tables."""

import hashlib

from lib import language as g


def test_vocab_is_fixed_and_holds_every_reserved_format():
    """The word list, and so every token id of every trained organism, is pinned: a change
    needs every organism of the language retrained."""
    assert len(g.VOCAB) == len(set(g.VOCAB)) == 448
    assert hashlib.sha256(" ".join(g.VOCAB).encode()).hexdigest()[:16] == "7f04bdf0e34f59bc"
    assert g.VOCAB[:3] == ["<bos>", "<pad>", "<unk>"] and g.BOS_ID == 0
    formats = [
        g.chat(g.requests(True)[0], g.REFUSAL),
        *g.requests(True),
        *g.requests(False),
        g.few_shot_prompt("antonym", 3, 0)[0],
        g.sort_prompt(5, 0)[0],
    ]
    formats += [f"{x} {y}" for task in g.ICL_TASKS.values() for x, y in task]
    assert {w for f in formats for w in f.split()} <= set(g.VOCAB)
    assert len(g.NAMES) == 64 and len(g.TOPICS) == 5
