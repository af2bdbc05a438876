"""The sorting organism's task: letters in the reserved format ``sort : c a b =``, answered by the
letters in alphabetical order and a ``<bos>`` that ends the answer (``a b c <bos>``), which a
program checks exactly: the verifiable reward of RL.

Held out (:func:`held_out`): a fixed quarter of all problems, chosen by a hash of the letters in
their order, never appears in training (supervised or RL); every evaluation draws from them.
Introduced in chapter 'RLVR subnetworks' (chapters/rlvr_subnetworks.py).
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
from lib.language.formats import _shuffled, sort_problem
from lib.language.lexicon import BOS_ID, ID, LETTERS

HELD_OUT_EVERY = 4  # a quarter of all problems is held out
TRAIN_LENGTHS = (2, 8)  # the organism is fine-tuned on problems of 2 to 8 letters
EVAL_LENGTHS = (5, 8)  # RL trains and every evaluation tests on 5 to 8 letters, as the post's task
Problem = tuple[str, ...]
LETTER_OF = {ID[c]: c for c in LETTERS}  # token id -> letter


def held_out(letters: Problem) -> bool:
    """Whether a problem (its letters in their order) is held out of every training set."""
    return zlib.crc32(" ".join(letters).encode()) % HELD_OUT_EVERY == 0


def problems(n: int, seed: int, held: bool, lengths: tuple[int, int] = EVAL_LENGTHS) -> list[Problem]:
    """``n`` problems drawn from ``seed``: distinct letters, a length uniform in ``lengths``
    (inclusive), held out or trained as ``held`` says (repeats allowed)."""
    lo, hi = lengths
    if not 1 <= lo <= hi <= len(LETTERS):
        raise ValueError(f"lengths={lengths}: need 1 <= lo <= hi <= {len(LETTERS)}")
    rng, out = random.Random(seed), []
    while len(out) < n:
        letters = tuple(_shuffled(rng, list(LETTERS))[: lo + int(rng.random() * (hi - lo + 1))])
        if held_out(letters) == held:
            out.append(letters)
    return out


def prompt_ids(letters: Problem) -> list[int]:
    """``<bos> sort : c a b =`` as token ids."""
    return [BOS_ID] + [ID[w] for w in sort_problem(letters).split()]


def answer_ids(letters: Problem) -> list[int]:
    """The answer's ids: the letters sorted, then the ``<bos>`` that ends it."""
    return [ID[c] for c in sorted(letters)] + [BOS_ID]


def sort_batches(seed: int, batch_size: int, n_ctx: int) -> Iterator[Int[Tensor, "batch n_ctx"]]:
    """The sorting organism's endless, deterministic training stream: each row is, with
    probability :data:`~lib.language.chat.P_BASE_ROW`, a row of the base language, else trained
    problems of :data:`TRAIN_LENGTHS` letters with their answers, back to back (each answer's
    closing ``<bos>`` opens the next problem), cut at ``n_ctx``."""
    rng = random.Random(seed)

    def problems_row() -> list[int]:
        tokens = [BOS_ID]
        while len(tokens) < n_ctx:
            (letters,) = problems(1, int(rng.random() * 2**31), held=False, lengths=TRAIN_LENGTHS)
            tokens += prompt_ids(letters)[1:] + answer_ids(letters)
        return tokens[:n_ctx]

    while True:
        yield torch.tensor(
            [_row(rng, n_ctx)[0] if rng.random() < P_BASE_ROW else problems_row() for _ in range(batch_size)]
        )
