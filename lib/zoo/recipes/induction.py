"""``induction-2l``: a 2-layer attention-only transformer that learns a genuine induction circuit.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast

from lib import attention, data, sinks
from lib.word_tokenizer import word_tokenizer
from lib.zoo.recipe import Recipe

VOCAB = 512  # ordinary tokens t000 .. t511; then <bos>, <unk>, <pad>
EVAL_SEQ_LEN = 50  # the chapter's default SEQ_LEN
P_SKIP, SKIP_SEED = 0.3, 1234  # the skip-bigram rule of lib.data.induction_batch
HELDOUT_ROWS, HELDOUT_SEED = 128, 54321  # held-out rows of the training distribution
# Olsson et al.'s in-context-learning score is the loss at token 500 minus the loss at token 50
# of an 8192-token context; the organism's context is 128 tokens, so the same tenfold ratio of
# positions at its scale: the loss at token 100 minus the loss at token 10.
ICL_EARLY, ICL_LATE = 10, 100
SINK_LEN, SINK_ROWS, SINK_SEED = 64, 16, 23456  # Gu et al.'s 64 tokens, here random without repeats


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


@cache
def heldout_tokens(bos_id: int, n_ctx: int) -> Int[Tensor, "row n_ctx"]:
    """Fixed held-out rows of the training distribution (their own seed, never trained on)."""
    g = torch.Generator().manual_seed(HELDOUT_SEED)
    return data.induction_batch(VOCAB, bos_id, HELDOUT_ROWS, n_ctx, g, p_skip=P_SKIP, skip_seed=SKIP_SEED)


def heldout_loss_by_position(model: HookedTransformer) -> Float[Tensor, " n_ctx-1"]:
    """Mean loss on the held-out rows of the token at each position ``1 .. n_ctx - 1``
    (entry ``t - 1`` is the loss of the token at position ``t``, BOS at position 0)."""
    tokens = heldout_tokens(model.tokenizer.bos_token_id, model.cfg.n_ctx).to(model.cfg.device)
    logprobs = model(tokens).float().log_softmax(-1)[:, :-1]
    return -logprobs.gather(-1, tokens[:, 1:, None])[..., 0].mean(0)


def _evaluate(model: HookedTransformer) -> dict[str, float]:
    """In-context metrics on a fixed batch of repeated random tokens; the held-out loss and
    in-context-learning score on the training distribution; and the attention sink on random
    tokens without repeats: Gu et al.'s Sink_1 (%), and the attention the queries after the first
    pay to the first token and to no position (:func:`lib.sinks.null_mass`), each a mean over
    every head. Every input has its own seed and no global random state is drawn, so
    evaluating does not change training."""
    tokens = data.repeated_tokens(
        torch.arange(VOCAB), model.tokenizer.bos_token_id, EVAL_SEQ_LEN, 16, seed=12345
    ).to(model.cfg.device)
    logits = model(tokens)
    logprobs = logits.float().log_softmax(-1)[:, :-1]
    correct = logprobs.gather(-1, tokens[:, 1:, None])[..., 0]  # [batch, pos-1]
    scores = attention.head_scores(model, tokens, ("previous", "induction"))
    by_position = heldout_loss_by_position(model)
    plain = data.distinct_tokens(
        torch.arange(VOCAB), model.tokenizer.bos_token_id, SINK_LEN, SINK_ROWS, SINK_SEED
    )
    later = torch.ones(plain.shape, dtype=torch.bool)
    later[:, 0] = False  # the first query can only attend to itself
    return {
        "loss_first_half": -correct[:, :EVAL_SEQ_LEN].mean().item(),
        # the predictable part of the second half: its first token, which nothing announces, left out
        "loss_second_half": data.second_half_nll(logits, tokens, EVAL_SEQ_LEN).mean().item(),
        "top_induction_score": scores["induction"][-1].max().item(),
        "top_prev_token_score": scores["previous"][0].max().item(),
        "heldout_loss": by_position.mean().item(),
        "icl_score": (by_position[ICL_LATE - 1] - by_position[ICL_EARLY - 1]).item(),
        "sink1_random": sinks.sink_rate(sinks.token_importance(model, plain)),
        "first_token_mass": sinks.first_token_mass(model, plain, later).mean().item(),
        "null_mass": sinks.null_mass(model, plain, later).mean().item(),
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
