"""``fewshot-4l``: the language organism fine-tuned on few-shot word-pair tasks
(:mod:`lib.language.fewshot`).

Introduced in chapter 'Task vectors' (chapters/task_vectors.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast

from lib import language
from lib.language import fewshot
from lib.zoo.recipe import Recipe
from lib.zoo.recipes import language as parent

N_SHOTS, EVAL_SEED = 5, 0


def _batches(recipe: Recipe, tok: PreTrainedTokenizerFast) -> Iterator[Int[Tensor, "batch pos"]]:
    if tok.get_vocab() != language.ID:
        raise ValueError("the few-shot organism's tokenizer must be lib.language's")
    return fewshot.fewshot_batches(recipe.seed, recipe.batch_size, recipe.config["n_ctx"])


def accuracy(model: HookedTransformer, task: language.IclTask, n_shots: int, seed: int = EVAL_SEED) -> float:
    """Top-1 accuracy of the next token on every held-out pair of ``task`` after ``n_shots``
    trained demonstrations."""
    tokens, answers = fewshot.eval_prompts(task, n_shots, seed)
    with torch.no_grad():
        top = model(tokens.to(model.cfg.device))[:, -1].argmax(-1).cpu()
    return (top == answers).float().mean().item()


def _evaluate(model: HookedTransformer) -> dict[str, float]:
    """The base language's held-out loss (does it still speak the language?) and, on the held-out
    pairs, the mean over tasks of the accuracy with :data:`N_SHOTS` demonstrations and zero-shot,
    and each task's few-shot accuracy."""
    icl = {task: accuracy(model, task, N_SHOTS) for task in language.ICL_TASKS}
    zero = [accuracy(model, task, 0) for task in language.ICL_TASKS]
    base = language.evaluate(model)
    return {
        "base_loss": base["heldout_loss"],
        "base_true_loss": base["true_loss"],
        "icl_acc": sum(icl.values()) / len(icl),
        "zero_shot_acc": sum(zero) / len(zero),
        **{f"icl_acc_{task}": acc for task, acc in icl.items()},
    }


RECIPE = Recipe(
    name="fewshot-4l",
    description=(
        "language-4l fine-tuned on few-shot prompts of 12 word-pair tasks, most sharing their "
        "queries (a quarter of each task's pairs held out), and a glossary of related words; it "
        "still speaks the language."
    ),
    config=parent.RECIPE.config,
    data_recipe=(
        "Rows of 128 tokens (lib.language.fewshot_batches): with probability "
        f"{language.P_BASE_ROW} a row of the base language; else with probability "
        f"{fewshot.P_GLOSSARY_ROW} a glossary row, '<bos>' then the {len(fewshot.glossary())} pairs of "
        "related words the base language never relates (singular and plural nouns, the two verb "
        "forms, antonyms, each letter and the next) shuffled, 'a b ,' after 'a b ,', each pair of "
        "words in a random order and each pair of letters in the alphabet's; else prompts back to "
        "back, each '<bos> x -> y , x -> y , ...' with "
        f"1-{fewshot.MAX_SHOTS} distinct trained pairs of one task drawn uniformly from "
        f"{len(language.ICL_TASKS)}: {', '.join(language.ICL_TASKS)}. A seeded quarter of every "
        "task's pairs never appears in a prompt."
    ),
    build_tokenizer=language.tokenizer,
    batches=_batches,
    evaluate=_evaluate,
    parent=parent.RECIPE.name,
    seed=0,
    steps=1500,
    batch_size=32,
    lr=2e-3,
    warmup=100,
    log_every=100,
)
