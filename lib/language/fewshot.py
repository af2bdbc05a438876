"""The few-shot organism's data: prompts of word-pair tasks (:data:`~lib.language.formats.ICL_TASKS`)
in the reserved format ``x -> y , x -> y , x ->``, a glossary of the word pairs the base language
never relates, and the pairs held out of training.

Held out (:func:`held_out`): a seeded quarter of every task's pairs never appears in a training
prompt, neither as a demonstration nor as a query; the chapter evaluates on them. A held-out
query then needs a fact the organism has from elsewhere, as a real model's test pairs need facts
from pretraining. For the topic, copula and demonstrative tasks the fact is in the base language (the
topic of every word and the number of every noun and verb form are what its texts are made of). The base
language never relates a singular to its plural, a verb form to the other, an adjective to its
antonym or a letter to the next, so some training rows are a glossary (:func:`glossary`): such
related words side by side, ``dogs dog , d e , hot cold , ...``, with no task format and all
relations mixed. It says which words go together, not which way a task maps them (a pair of words
comes in either order; a pair of letters in the alphabet's, the one fact about letters a letter
task needs): the prompt's demonstrations must say that. Introduced in chapter 'Task vectors'
(chapters/task_vectors.py).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator

import torch
from jaxtyping import Int
from torch import Tensor

from lib.language.chat import P_BASE_ROW
from lib.language.corpus import _row
from lib.language.formats import ICL_TASKS, IclTask, _shuffled, few_shot
from lib.language.lexicon import ANTONYMS, BOS_ID, ID, LETTERS

HELD_OUT_EVERY = 4  # a quarter of each task's pairs is held out
MAX_SHOTS = 10  # a training prompt has 1 to MAX_SHOTS pairs
P_GLOSSARY_ROW = 0.25  # a training row is a glossary (of the rows that are not base language)


def split(name: str, pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A task's pairs as (trained, held out): a quarter held out, chosen by a shuffle seeded by
    the task's name; the trained pairs keep their order."""
    out = _shuffled(random.Random(zlib.crc32(name.encode())), pairs)[: len(pairs) // HELD_OUT_EVERY]
    return [pair for pair in pairs if pair not in out], out


def held_out(task: IclTask) -> list[tuple[str, str]]:
    """The pairs of ``task`` that no training prompt shows (:func:`split`)."""
    if task not in ICL_TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(ICL_TASKS)}")
    return split(task, ICL_TASKS[task])[1]


def trained(task: IclTask) -> list[tuple[str, str]]:
    """The pairs of ``task`` that training prompts use (:func:`split`)."""
    if task not in ICL_TASKS:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(ICL_TASKS)}")
    return split(task, ICL_TASKS[task])[0]


def glossary() -> list[tuple[str, str]]:
    """The related words the base language never puts together, once each: singular and plural
    nouns, the two forms of a verb, antonyms, and each letter with the next."""
    pairs = ICL_TASKS["plural"] + ICL_TASKS["verb_plural"] + ANTONYMS + ICL_TASKS["next_letter"]
    assert len(set(pairs)) == len(pairs)
    return pairs


def eval_prompts(
    task: IclTask, n_shots: int, seed: int
) -> tuple[Int[Tensor, "query pos"], Int[Tensor, " query"]]:
    """Every held-out pair of ``task`` as a query after ``n_shots`` demonstrations drawn (seeded,
    without replacement) from its trained pairs, as ``<bos>``-led token rows of equal length, and
    the answers' token ids."""
    rng, pool = random.Random(seed), trained(task)
    if n_shots > len(pool):
        raise ValueError(f"n_shots={n_shots}: task {task!r} has {len(pool)} trained pairs")
    rows = [
        [BOS_ID] + [ID[w] for w in few_shot(_shuffled(rng, pool)[:n_shots], x).split()]
        for x, _ in held_out(task)
    ]
    return torch.tensor(rows), torch.tensor([ID[y] for _, y in held_out(task)])


def _prompts_row(rng: random.Random, n_ctx: int) -> list[int]:
    """Prompts of one task each, back to back, each opened by ``<bos>``, cut at ``n_ctx``."""
    tokens: list[int] = []
    while len(tokens) < n_ctx:
        task = list(ICL_TASKS)[int(rng.random() * len(ICL_TASKS))]
        pool = trained(task)
        shots = _shuffled(rng, pool)[: 1 + int(rng.random() * min(MAX_SHOTS, len(pool)))]
        tokens += [BOS_ID] + [ID[w] for w in few_shot(shots).split()]
    return tokens[:n_ctx]


def _glossary_row(rng: random.Random, n_ctx: int) -> list[int]:
    """``<bos>`` and glossary entries ``a b ,`` in a random order, cut at ``n_ctx``: each pair of
    words in a random order, each pair of letters in the alphabet's."""
    tokens = [BOS_ID]
    while len(tokens) < n_ctx:
        for a, b in _shuffled(rng, glossary()):
            if a not in LETTERS and rng.random() < 0.5:
                a, b = b, a
            tokens += [ID[a], ID[b], ID[","]]
    return tokens[:n_ctx]


def fewshot_batches(seed: int, batch_size: int, n_ctx: int) -> Iterator[Int[Tensor, "batch n_ctx"]]:
    """The few-shot organism's endless, deterministic training stream: each row is, with
    probability :data:`~lib.language.chat.P_BASE_ROW`, a row of the base language (as its parent
    was trained on), else with probability :data:`P_GLOSSARY_ROW` a glossary row, else few-shot
    prompts of trained pairs."""
    rng = random.Random(seed)

    def row() -> list[int]:
        if rng.random() < P_BASE_ROW:
            return _row(rng, n_ctx)[0]
        return _glossary_row(rng, n_ctx) if rng.random() < P_GLOSSARY_ROW else _prompts_row(rng, n_ctx)

    while True:
        yield torch.tensor([row() for _ in range(batch_size)])
