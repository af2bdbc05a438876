"""``language-4l``: a small GPT-2-style model of the book's synthetic language (:mod:`lib.language`).

Introduced in chapter 'Residual stream' (chapters/residual_stream.py); the parent of the
fine-tuned organisms.
"""

from __future__ import annotations

from collections.abc import Iterator

from jaxtyping import Int
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from lib import language
from lib.zoo.recipe import Recipe


def _batches(recipe: Recipe, tok: PreTrainedTokenizerFast) -> Iterator[Int[Tensor, "batch pos"]]:
    return language.batches(recipe.seed, recipe.batch_size, recipe.config["n_ctx"], tok)


RECIPE = Recipe(
    name="language-4l",
    description=(
        "4-layer GPT-2-style transformer (d_model 128, 4 heads of width 32, GELU MLPs of width "
        "512, LayerNorm, learned positions) trained on the book's synthetic language."
    ),
    config=dict(
        n_layers=4,
        d_model=128,
        n_heads=4,
        d_head=32,
        d_mlp=512,
        n_ctx=128,
        d_vocab=len(language.VOCAB),
        act_fn="gelu_new",
        normalization_type="LN",
        positional_embedding_type="standard",
    ),
    data_recipe=(
        "Rows of 128 tokens packed with texts of the synthetic language (lib.language, a seeded "
        "stream from the recipe's seed): <bos> opens every text; a text is 7-12 sentences "
        "(~77 words) on one of 5 topics, introduces 1-3 characters named from a pool of 64 and "
        "refers back to them by name, and has subject-verb agreement across prepositional "
        "phrases. No padding."
    ),
    build_tokenizer=language.tokenizer,
    batches=_batches,
    evaluate=language.evaluate,
    seed=0,
    steps=2400,
    batch_size=8,
    lr=2e-3,
    warmup=100,
    log_every=100,
)
