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
    ADJECTIVES,
    ANIMATE_NOUNS,
    ANTONYMS,
    COPULA,
    INTRANSITIVE_VERBS,
    LETTERS,
    THING_NOUNS,
    TOPICS,
    TRANSITIVE_VERBS,
    _pairs,
)

IclTask = Literal[
    "plural",
    "singular",
    "verb_plural",
    "verb_singular",
    "antonym",
    "noun_topic",
    "verb_topic",
    "adjective_topic",
    "noun_copula",
    "verb_copula",
    "noun_demonstrative",
    "next_letter",
]
_NOUNS = _pairs(ANIMATE_NOUNS) + _pairs(THING_NOUNS)
DEMONSTRATIVES = ("this", "these")  # the determiners that agree in number: this dog, these dogs
_VERBS = _pairs(INTRANSITIVE_VERBS) + _pairs(TRANSITIVE_VERBS)


def _topical(lexicon: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """(word, its topic) for both forms of every topical pair but the topic's own (``seas -> sea``
    would also be the singular)."""
    return [(w, t) for t in TOPICS for pair in lexicon[t] if t not in pair for w in pair]


ICL_TASKS: dict[IclTask, list[tuple[str, str]]] = {
    "plural": _NOUNS,
    "singular": [(pl, sg) for sg, pl in _NOUNS],
    "verb_plural": _VERBS,
    "verb_singular": [(pl, sg) for sg, pl in _VERBS],
    "antonym": ANTONYMS + [(b, a) for a, b in ANTONYMS],
    "noun_topic": _topical(ANIMATE_NOUNS) + _topical(THING_NOUNS),
    "verb_topic": _topical(INTRANSITIVE_VERBS) + _topical(TRANSITIVE_VERBS),
    "adjective_topic": [(w, t) for t in TOPICS for w in ADJECTIVES[t]],
    "noun_copula": [(w, COPULA[number]) for pair in _NOUNS for number, w in enumerate(pair)],
    "verb_copula": [(w, COPULA[number]) for pair in _VERBS for number, w in enumerate(pair)],
    "noun_demonstrative": [(w, DEMONSTRATIVES[number]) for pair in _NOUNS for number, w in enumerate(pair)],
    "next_letter": list(zip(LETTERS, LETTERS[1:])),
}
"""Word-pair maps for few-shot in-context tasks (``hot -> cold , big -> small , wet ->``). Nine
of the twelve share their queries, so a query alone does not say which task is meant: a noun is
pluralised, singularised, mapped to its topic, to the copula or to the demonstrative that agrees
with it; a verb form goes to the other form, its topic or its copula. The antonyms (the
adjectives no topic has), the topical adjectives' topic and the next letter have queries of their
own. Number and topic come from the base language; the word pairs and the alphabet only from
these tasks."""
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


def few_shot(shots: list[tuple[str, str]], query: str | None = None) -> str:
    """The few-shot format: ``x -> y , x -> y`` and, given a query, ``, query ->`` after them
    (``query ->`` alone without shots)."""
    text = " , ".join(f"{x} -> {y}" for x, y in shots)
    if query is None:
        return text
    return f"{text} , {query} ->" if shots else f"{query} ->"


def few_shot_prompt(task: IclTask, n_shots: int, seed: int) -> tuple[str, str]:
    """A prompt of ``n_shots`` pairs of :data:`ICL_TASKS` ``task`` and a query, and the answer:
    (``"hot -> cold , big -> small , wet ->"``, ``"dry"``)."""
    if task not in ICL_TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(ICL_TASKS)}")
    pairs = _shuffled(random.Random(seed), ICL_TASKS[task])[: n_shots + 1]
    return few_shot(pairs[:-1], pairs[-1][0]), pairs[-1][1]


def sort_prompt(n_letters: int, seed: int) -> tuple[str, str]:
    """A sorting problem over distinct letters and its checkable answer:
    (``"sort : c a b ="``, ``"a b c"``)."""
    letters = _shuffled(random.Random(seed), list(LETTERS))[:n_letters]
    return sort_problem(letters), " ".join(sorted(letters))


def sort_problem(letters: tuple[str, ...] | list[str]) -> str:
    """The sorting format: ``sort : c a b =``."""
    return f"sort : {' '.join(letters)} ="
