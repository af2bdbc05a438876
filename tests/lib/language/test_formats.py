"""lib.language.formats: the reserved chat, few-shot and sorting formats."""

import pytest

from lib import language as g


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
    with pytest.raises(ValueError, match="unknown task .x.; allowed: plural, singular"):
        g.few_shot_prompt("x", 2, 0)
