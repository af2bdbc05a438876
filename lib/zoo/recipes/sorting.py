"""``sort-4l``: the language organism fine-tuned on the reserved sorting format
(:mod:`lib.language.sorting`) to partial skill, so that RL has something to improve.

Introduced in chapter 'RLVR subnetworks' (chapters/rlvr_subnetworks.py).
"""

from __future__ import annotations

from collections.abc import Iterator

from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast

from lib import language
from lib.language import sorting
from lib.rl.rollout import exact_accuracy
from lib.rl.runs import eval_problems
from lib.rl.task import organism_task
from lib.zoo.recipe import Recipe
from lib.zoo.recipes import language as parent

N_EVAL = 512


def _batches(recipe: Recipe, tok: PreTrainedTokenizerFast) -> Iterator[Int[Tensor, "batch pos"]]:
    if tok.get_vocab() != language.ID:
        raise ValueError("the sorting organism's tokenizer must be lib.language's")
    return sorting.sort_batches(recipe.seed, recipe.batch_size, recipe.config["n_ctx"])


def _evaluate(model: HookedTransformer) -> dict[str, float]:
    """Greedy exact accuracy on the 512 held-out problems of 5-8 letters the RL chapter evaluates
    on (seeded 2001), per length, and the base language's held-out loss."""
    held, task = eval_problems(N_EVAL), organism_task()
    by_length = {
        f"sort_exact_{n}": exact_accuracy(model, task, [p for p in held if len(p) == n])
        for n in range(sorting.EVAL_LENGTHS[0], sorting.EVAL_LENGTHS[1] + 1)
    }
    return {
        "sort_exact": exact_accuracy(model, task, held),
        **by_length,
        "base_loss": language.evaluate(model)["heldout_loss"],
    }


RECIPE = Recipe(
    name="sort-4l",
    description=(
        "language-4l fine-tuned on sorting letters ('sort : c a b = a b c') to partial skill, "
        "the starting point of the RLVR chapter's GRPO runs; it still speaks the language."
    ),
    config=parent.RECIPE.config,
    data_recipe=(
        "Rows of 128 tokens (lib.language.sorting.sort_batches): with probability "
        f"{language.P_BASE_ROW} a row of the base language; else '<bos>' then problems back to "
        f"back, each 'sort : LETTERS = SORTED <bos>' with {sorting.TRAIN_LENGTHS[0]}-"
        f"{sorting.TRAIN_LENGTHS[1]} distinct letters in a random order (the answer's '<bos>' "
        "opens the next problem). A quarter of all problems (by a hash of the letters in their "
        "order) never appears: the evaluation's."
    ),
    build_tokenizer=language.tokenizer,
    batches=_batches,
    evaluate=_evaluate,
    parent=parent.RECIPE.name,
    seed=0,
    steps=350,
    schedule_steps=450,
    batch_size=32,
    lr=2e-3,
    warmup=30,
    log_every=50,
)
