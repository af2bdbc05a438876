"""``induction-2l``: a 2-layer attention-only transformer that learns a genuine induction circuit.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast

from lib import attention, data
from lib.word_tokenizer import word_tokenizer
from lib.zoo.recipe import Recipe

VOCAB = 512  # ordinary tokens t000 .. t511; then <bos>, <unk>, <pad>
EVAL_SEQ_LEN = 50  # the chapter's default SEQ_LEN
P_SKIP, SKIP_SEED = 0.3, 1234  # the skip-bigram rule of lib.data.induction_batch


def _tokenizer(path: Path) -> PreTrainedTokenizerFast:
    return word_tokenizer([f"t{i:03d}" for i in range(VOCAB)] + ["<bos>", "<unk>", "<pad>"], path)


def _batches(recipe: Recipe, tok: PreTrainedTokenizerFast) -> Iterator[Int[Tensor, "batch pos"]]:
    return data.induction_batches(
        recipe.seed,
        VOCAB,
        tok.bos_token_id,
        recipe.batch_size,
        recipe.config["n_ctx"],
        p_skip=P_SKIP,
        skip_seed=SKIP_SEED,
    )


def _evaluate(model: HookedTransformer) -> dict[str, float]:
    """In-context metrics on a fixed batch of repeated random tokens."""
    tokens = data.repeated_tokens(
        torch.arange(VOCAB), model.tokenizer.bos_token_id, EVAL_SEQ_LEN, 16, seed=12345
    ).to(model.cfg.device)
    logprobs = model(tokens).log_softmax(-1)[:, :-1]
    correct = logprobs.gather(-1, tokens[:, 1:, None])[..., 0]  # [batch, pos-1]
    scores = attention.head_scores(model, tokens, ("previous", "induction"))
    return {
        "loss_first_half": -correct[:, :EVAL_SEQ_LEN].mean().item(),
        "loss_second_half": -correct[:, EVAL_SEQ_LEN:].mean().item(),
        "top_induction_score": scores["induction"][-1].max().item(),
        "top_prev_token_score": scores["previous"][0].max().item(),
    }


RECIPE = Recipe(
    name="induction-2l",
    description=(
        "2-layer attention-only transformer (4 heads of width 16, d_model 64, learned "
        "positions, LayerNorm) trained on random tokens with copied spans."
    ),
    config=dict(
        n_layers=2,
        d_model=64,
        n_heads=4,
        d_head=16,
        n_ctx=128,
        d_vocab=VOCAB + 3,
        attn_only=True,
        normalization_type="LN",
        positional_embedding_type="standard",
        act_fn=None,
    ),
    data_recipe=(
        "Rows of 128 tokens: <bos>, then runs of 1-16 tokens, each followed by a span of 8-48 "
        "tokens copied from a random earlier position of the row (lib.data.induction_batch). "
        "A run's tokens are fresh (drawn without replacement from 512 ids), except that with "
        f"probability {P_SKIP} a token is pi(the token two positions back) for a fixed random "
        "permutation pi: a skip-bigram rule, so that the previous token is worth knowing at "
        "every position, as in language."
    ),
    build_tokenizer=_tokenizer,
    batches=_batches,
    evaluate=_evaluate,
    seed=0,
    steps=4000,
    lr=3e-3,
)
