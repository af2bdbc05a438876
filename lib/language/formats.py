"""Reserved formats of the book's synthetic language: a chat format (its requests and refusal;
:mod:`lib.language.chat` builds the chat organism's data on it), few-shot word-pair tasks, and a
sorting task.

The words they use are in :data:`lib.language.VOCAB`, but the base language never produces them:
they are for the organisms of the coming chapters, fine-tuned from the language organism on these
formats.
"""

from __future__ import annotations

import random
from typing import Literal, get_args

from lib.language.lexicon import (
    ANIMATE_NOUNS,
    ANTONYMS,
    INTRANSITIVE_VERBS,
    LETTERS,
    THING_NOUNS,
    TOPICS,
    TRANSITIVE_VERBS,
    _pairs,
)

IclTask = Literal["antonym", "plural", "verb_plural", "topic"]
ICL_TASKS: dict[IclTask, list[tuple[str, str]]] = {
    "antonym": ANTONYMS + [(b, a) for a, b in ANTONYMS],
    "plural": _pairs(ANIMATE_NOUNS) + _pairs(THING_NOUNS),
    "verb_plural": _pairs(INTRANSITIVE_VERBS) + _pairs(TRANSITIVE_VERBS),
    "topic": [(sg, t) for t in TOPICS for sg, _ in ANIMATE_NOUNS[t] + THING_NOUNS[t] if sg != t],
}
"""Word-pair maps for few-shot in-context tasks (``hot -> cold , big -> small , wet ->``)."""
assert tuple(ICL_TASKS) == get_args(IclTask)

REQUEST_TEMPLATES = (
    "how do i {verb} the {noun} ?",
    "can you help me {verb} the {noun} ?",
    "please tell me how to {verb} the {noun} .",
    "how can i {verb} the {noun} ?",
    "tell me how to {verb} the {noun} .",
    "help me {verb} the {noun} .",
    "can you tell me how to {verb} the {noun} ?",
    "please help me {verb} the {noun} .",
)
"""Chat requests (:mod:`lib.language.chat` fills them); each ends ``the {noun} ?`` or ``the {noun} .``."""
REFUSAL = "sorry , i cannot help with that . <eos>"


def _shuffled(rng: random.Random, items: list) -> list:
    """Fisher-Yates on ``random()`` alone, so the order is the same on every Python."""
    items = list(items)
    for i in range(len(items) - 1, 0, -1):
        j = min(int(rng.random() * (i + 1)), i)
        items[i], items[j] = items[j], items[i]
    return items


def chat(request: str, reply: str = "") -> str:
    """The chat format: ``<user> REQUEST <assistant> REPLY``."""
    return f"<user> {request} <assistant> {reply}".rstrip()


def few_shot_prompt(task: IclTask, n_shots: int, seed: int) -> tuple[str, str]:
    """A prompt of ``n_shots`` pairs of :data:`ICL_TASKS` ``task`` and a query, and the answer:
    (``"hot -> cold , big -> small , wet ->"``, ``"dry"``)."""
    if task not in ICL_TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(ICL_TASKS)}")
    pairs = _shuffled(random.Random(seed), ICL_TASKS[task])[: n_shots + 1]
    shots = " , ".join(f"{x} -> {y}" for x, y in pairs[:-1])
    query, answer = pairs[-1]
    return (f"{shots} , {query} ->" if shots else f"{query} ->"), answer


def sort_prompt(n_letters: int, seed: int) -> tuple[str, str]:
    """A sorting problem over distinct letters and its checkable answer:
    (``"sort : c a b ="``, ``"a b c"``)."""
    letters = _shuffled(random.Random(seed), list(LETTERS))[:n_letters]
    return f"sort : {' '.join(letters)} =", " ".join(sorted(letters))
