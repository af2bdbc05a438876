"""The sorting task as RL sees it: token ids in, a verifiable reward out, on the sorting organism
(its reserved format) or on a real chat model (the problem in its chat template, the answer read
from the decoded reply).

Introduced in chapter 'RLVR subnetworks' (chapters/rlvr_subnetworks.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from lib.language import BOS_ID, sorting
from lib.language.sorting import Problem

CHAT_REQUEST = "Sort these letters alphabetically. Reply with the sorted letters separated by spaces: {}"


@dataclass(frozen=True)
class SortTask:
    """How a model is asked a problem and how its reply is scored.

    ``stop_id`` ends a completion; ``reference`` is the completion a supervised run imitates (and
    its length plus ``slack`` the most a sampled completion may take).
    """

    tokenizer: PreTrainedTokenizerBase | None  # None: the organism's reserved format
    stop_id: int
    slack: int = 0

    def prompt(self, letters: Problem) -> list[int]:
        if self.tokenizer is None:
            return sorting.prompt_ids(letters)
        messages = [{"role": "user", "content": CHAT_REQUEST.format(" ".join(letters))}]
        # return_dict=False: transformers 5 otherwise returns a BatchEncoding (list() of it is its keys)
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        return list(ids)

    def reference(self, letters: Problem) -> list[int]:
        if self.tokenizer is None:
            return sorting.answer_ids(letters)
        return self.tokenizer.encode(" ".join(sorted(letters)), add_special_tokens=False) + [self.stop_id]

    def max_new(self, letters: Problem) -> int:
        return len(self.reference(letters)) + self.slack

    def reward(self, letters: Problem, completion: list[int]) -> tuple[float, float]:
        """(exact, partial): 1 if the completion is the sorted letters and its end, else 0; and the
        fraction of the answer's places that hold the right letter."""
        want, ended = sorted(letters), completion[-1:] == [self.stop_id]
        body = completion[:-1] if ended else completion
        if self.tokenizer is None:
            got = [sorting.LETTER_OF.get(t, "?") for t in body]
        else:
            got = self.tokenizer.decode(body).split()
        return float(ended and got == want), sum(a == b for a, b in zip(got, want)) / len(want)


def organism_task() -> SortTask:
    """The sorting organism's task: ``<bos> sort : c a b =`` answered ``a b c <bos>``."""
    return SortTask(tokenizer=None, stop_id=BOS_ID)


def chat_task(tokenizer: PreTrainedTokenizerBase) -> SortTask:
    """A chat model's task: the request in its chat template, the reply ended by its end token."""
    if tokenizer.chat_template is None:
        raise ValueError("MODEL_NAME: the model's tokenizer has no chat template; use an instruct model")
    return SortTask(tokenizer=tokenizer, stop_id=tokenizer.eos_token_id, slack=8)
