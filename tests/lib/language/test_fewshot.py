"""lib.language.fewshot: the few-shot organism's tasks, held-out pairs and training stream."""

import itertools
import random

import pytest
import torch

from lib import language as g
from lib.language import fewshot


def test_tasks_share_inputs_and_answers_are_single_tokens():
    inputs = {task: {x for x, _ in pairs} for task, pairs in g.ICL_TASKS.items()}
    assert len(g.ICL_TASKS) >= 12
    for task, pairs in g.ICL_TASKS.items():
        assert len({x for x, _ in pairs}) == len(pairs), f"{task}: one answer per query"
        assert all(x in g.ID and y in g.ID for x, y in pairs)
    alone = [t for t in g.ICL_TASKS if not any(inputs[t] & inputs[o] for o in g.ICL_TASKS if o != t)]
    assert alone == ["antonym", "adjective_topic", "next_letter"]  # the other 9 tasks share their queries
    assert g.few_shot([("hot", "cold"), ("big", "small")], "wet") == "hot -> cold , big -> small , wet ->"
    assert g.few_shot([], "wet") == "wet ->" and g.few_shot([("a", "b")]) == "a -> b"


@pytest.mark.parametrize("task", list(g.ICL_TASKS))
def test_a_quarter_is_held_out_and_the_glossary_relates_what_the_language_does_not(task):
    held, kept = fewshot.held_out(task), fewshot.trained(task)
    assert not set(held) & set(kept) and set(held) | set(kept) == set(g.ICL_TASKS[task])
    assert len(held) == len(g.ICL_TASKS[task]) // 4 and fewshot.held_out(task) == held  # deterministic
    related = {frozenset(pair) for pair in fewshot.glossary()}
    if task.endswith(("plural", "singular", "antonym", "letter")):
        assert all(frozenset(pair) in related for pair in held), task
    else:  # topic, copula, demonstrative: the base language has the fact
        assert not any(frozenset(pair) in related for pair in held), task


def test_training_never_shows_a_held_out_pair():
    held = {(g.ID[x], g.ID[y]) for task in g.ICL_TASKS for x, y in fewshot.held_out(task)}
    arrow = g.ID["->"]
    seen, prompts, glossary_pairs = set(), 0, set()
    related = {frozenset(pair) for pair in fewshot.glossary()}
    for batch in itertools.islice(fewshot.fewshot_batches(0, 16, 128), 8):
        assert batch.shape == (16, 128)
        for row in batch.tolist():
            prompts += row.count(arrow)
            seen |= {(row[i - 1], row[i + 1]) for i in range(1, len(row) - 1) if row[i] == arrow}
        glossary_rows = [row for row in batch.tolist() if all(t == g.ID[","] for t in row[3::3])]
        for row in glossary_rows:
            entries = {(row[i], row[i + 1]) for i in range(1, len(row) - 2, 3)}
            assert all(frozenset((g.VOCAB[a], g.VOCAB[b])) in related for a, b in entries)
            glossary_pairs |= entries
    assert prompts > 1000 and len(seen) > 300
    assert len(glossary_pairs) > 100
    # one pass of a glossary row holds every related pair once, in either order
    row = fewshot._glossary_row(random.Random(0), 1 + 3 * len(related))
    entries = [frozenset((g.VOCAB[row[i]], g.VOCAB[row[i + 1]])) for i in range(1, len(row), 3)]
    assert len(entries) == len(set(entries)) == len(related) and set(entries) == related
    letters = [(row[i], row[i + 1]) for i in range(1, len(row), 3) if g.VOCAB[row[i]] in g.LETTERS[1:]]
    assert letters and all(g.VOCAB[a] < g.VOCAB[b] for a, b in letters)  # letters in the alphabet's order
    # a held-out pair's words can meet across an arrow only as two different tasks' pairs
    trained_pairs = {(g.ID[x], g.ID[y]) for task in g.ICL_TASKS for x, y in fewshot.trained(task)}
    assert seen <= trained_pairs
    assert not (seen & held) - trained_pairs


def test_eval_prompts_put_each_held_out_query_after_trained_shots():
    tokens, answers = fewshot.eval_prompts("antonym", 5, seed=3)
    held = fewshot.held_out("antonym")
    assert tokens.shape == (len(held), 1 + 5 * 4 + 2) and tokens[:, 0].eq(g.BOS_ID).all()
    words = [[g.VOCAB[i] for i in row] for row in tokens.tolist()]
    for row, (x, y), answer in zip(words, held, answers.tolist()):
        assert row[-2:] == [x, "->"] and g.VOCAB[answer] == y
        shots = [(row[i], row[i + 2]) for i in range(1, len(row) - 2, 4)]
        assert set(shots) <= set(fewshot.trained("antonym")) and len(set(shots)) == 5
    zero, _ = fewshot.eval_prompts("plural", 0, seed=0)
    assert zero.shape == (len(fewshot.held_out("plural")), 3)
    assert torch.equal(fewshot.eval_prompts("antonym", 5, seed=3)[0], tokens)
    with pytest.raises(ValueError, match="n_shots=30: task 'antonym' has 24 trained pairs"):
        fewshot.eval_prompts("antonym", 30, 0)
    with pytest.raises(ValueError, match="unknown task 'x'"):
        fewshot.held_out("x")
