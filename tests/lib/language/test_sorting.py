"""lib.language.sorting: the held-out split, seeded problems, their ids, and the sorting organism's
training stream (parsed back token by token)."""

import itertools
import random

import pytest

from lib import language as g
from lib.language import sorting

pytestmark = pytest.mark.usefixtures("one_thread")

SORT, COLON, EQUALS = g.ID["sort"], g.ID[":"], g.ID["="]


def random_problem(rng: random.Random, length: int) -> tuple[str, ...]:
    return tuple(rng.sample(g.LETTERS, length))


def test_held_out_is_a_quarter_of_every_length():
    rng = random.Random(0)
    for length in range(2, 9):
        drawn = [random_problem(rng, length) for _ in range(4000)]
        fraction = sum(map(sorting.held_out, drawn)) / len(drawn)
        assert abs(fraction - 0.25) < 0.03, (length, fraction)  # binomial std 0.007


def test_held_out_is_fixed_and_depends_on_the_order():
    # pinned: the split must not move between interpreters (no salted hash()) or releases
    pinned = {"ab": False, "ba": True, "cab": False, "zyxw": True, "qwertyu": False, "mnbvcxz": True}
    pinned |= {"dgfe": False, "kj": False, "abcdefgh": True, "hgfedcba": False}
    assert {w: sorting.held_out(tuple(w)) for w in pinned} == pinned
    perms = list(itertools.permutations("abcde"))
    assert 0 < sum(sorting.held_out(p) for p in perms) < len(perms)


@pytest.mark.parametrize("held", [True, False])
@pytest.mark.parametrize("lengths", [(5, 8), (2, 8), (3, 3)])
def test_problems_respect_held_lengths_and_letters(held, lengths):
    drawn = sorting.problems(400, seed=3, held=held, lengths=lengths)
    assert len(drawn) == 400
    assert all(sorting.held_out(p) == held for p in drawn)
    assert all(len(set(p)) == len(p) and set(p) <= set(g.LETTERS) for p in drawn)
    counts = {n: sum(len(p) == n for p in drawn) for n in range(1, 27)}
    lo, hi = lengths
    assert all(counts[n] == 0 for n in counts if not lo <= n <= hi)
    expected = 400 / (hi - lo + 1)
    assert all(abs(counts[n] - expected) < 0.35 * expected for n in range(lo, hi + 1)), counts


def test_problems_are_seeded():
    a = sorting.problems(50, seed=11, held=False)
    assert a == sorting.problems(50, seed=11, held=False)
    assert a != sorting.problems(50, seed=12, held=False)
    assert sorting.problems(20, seed=11, held=False) == a[:20]  # a prefix of the same stream
    assert len(set(a)) > 40  # letter orders vary


@pytest.mark.parametrize("lengths", [(0, 3), (4, 3), (1, 27), (-1, 2)])
def test_bad_lengths_raise(lengths):
    with pytest.raises(ValueError, match="lengths="):
        sorting.problems(1, seed=0, held=False, lengths=lengths)


def test_prompt_and_answer_ids():
    rng = random.Random(5)
    for _ in range(50):
        letters = random_problem(rng, rng.randint(1, 10))
        assert [g.VOCAB[i] for i in sorting.prompt_ids(letters)] == ["<bos>", "sort", ":", *letters, "="]
        assert [g.VOCAB[i] for i in sorting.answer_ids(letters)] == [*sorted(letters), "<bos>"]
    assert all(sorting.LETTER_OF[g.ID[c]] == c for c in g.LETTERS) and len(sorting.LETTER_OF) == 26


def parse_problems_row(row: list[int]) -> list[tuple[str, ...]]:
    """Walk a problems row: each segment must be ``sort : LETTERS = SORTED <bos>`` (the last one
    possibly cut); returns the problems whose prompts are complete."""
    assert row[0] == g.BOS_ID
    complete, i = [], 1
    while i < len(row):
        assert row[i] == SORT and row[i + 1 : i + 2] in ([], [COLON]), row[i : i + 2]
        j = i + 2
        while j < len(row) and row[j] != EQUALS:
            j += 1
        letters = tuple(g.VOCAB[t] for t in row[i + 2 : j])
        assert set(letters) <= set(g.LETTERS), letters
        if j >= len(row):  # cut inside the prompt
            break
        complete.append(letters)
        expected = sorting.answer_ids(letters)
        got = row[j + 1 : j + 1 + len(expected)]
        assert got == expected[: len(got)], (letters, got)
        i = j + 1 + len(expected)
    return complete


def test_sort_batches_rows():
    n_ctx, batch = 48, 16
    stream = sorting.sort_batches(seed=4, batch_size=batch, n_ctx=n_ctx)
    rows = [r for _ in range(25) for r in next(stream).tolist()]
    base, parsed = 0, []
    for row in rows:
        assert len(row) == n_ctx and row[0] == g.BOS_ID
        if row[1] != SORT:
            base += 1
            assert SORT not in row and EQUALS not in row  # the base language never writes the format
            continue
        parsed += parse_problems_row(row)
    assert abs(base / len(rows) - g.P_BASE_ROW) < 0.08, base  # binomial std 0.019
    assert len(parsed) > 500
    assert not any(sorting.held_out(p) for p in parsed)
    assert all(len(set(p)) == len(p) and 2 <= len(p) <= 8 for p in parsed)
    assert {len(p) for p in parsed} == set(range(2, 9))


def test_sort_batches_are_seeded():
    a, b, c = (sorting.sort_batches(seed, 4, 32) for seed in (1, 1, 2))
    first = [next(a) for _ in range(3)]
    assert all(x.shape == (4, 32) for x in first)
    assert all(x.equal(next(b)) for x in first)
    assert not all(x.equal(next(c)) for x in first)
