"""``language-4l``: a small GPT-2-style model of the book's synthetic language (:mod:`lib.language`).

Introduced in chapter 'Residual stream' (chapters/residual_stream.py); the parent of the
fine-tuned organisms.
"""

from __future__ import annotations

from collections.abc import Iterator

from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast

from lib import attention, data, language, sinks
from lib.zoo.recipe import Recipe

EVAL_SEQ_LEN, EVAL_ROWS, EVAL_SEED = 30, 16, 12345  # repeated random words of the language, 30 per half
SINK_LEN = 64  # Gu et al.'s Sink_1 is measured on 64 tokens


def _batches(recipe: Recipe, tok: PreTrainedTokenizerFast) -> Iterator[Int[Tensor, "batch pos"]]:
    return language.batches(recipe.seed, recipe.batch_size, recipe.config["n_ctx"], tok)


def _evaluate(model: HookedTransformer) -> dict[str, float]:
    """:func:`lib.language.evaluate`, and what copying and sinks look like as training goes: on
    repeated random words of the language, the second half's loss and top-1 accuracy, the best
    induction and previous-token scores and their layers; Sink_1 on the language's text."""
    tokens = data.repeated_tokens(language.WORD_IDS, language.BOS_ID, EVAL_SEQ_LEN, EVAL_ROWS, EVAL_SEED)
    logits = model(tokens.to(model.cfg.device))
    nll = data.second_half_nll(logits, tokens, EVAL_SEQ_LEN)
    top1 = logits[:, EVAL_SEQ_LEN + 1 : -1].argmax(-1).cpu() == tokens[:, EVAL_SEQ_LEN + 2 :]
    scores = attention.head_scores(model, tokens, ("previous", "induction"))
    best = {kind: divmod(int(s.argmax()), model.cfg.n_heads) for kind, s in scores.items()}
    text = sinks.text_stream(EVAL_SEED, EVAL_ROWS, SINK_LEN)
    return {
        **language.evaluate(model),
        "repeated_loss_second_half": nll.mean().item(),
        "repeated_top1_second_half": top1.float().mean().item(),
        "top_induction_score": scores["induction"].max().item(),
        "top_induction_layer": best["induction"][0],
        "top_prev_token_score": scores["previous"].max().item(),
        "top_prev_token_layer": best["previous"][0],
        "sink1_text": sinks.sink_rate(sinks.token_importance(model, text)),
    }


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
        f"phrases; a sentence may be 'again ,' and an earlier sentence word for word (probability "
        f"{language.P_AGAIN} at each sentence start). A row is instead, with probability "
        f"{language.P_RANDOM_ROW}, <bos> and N random words of the language (N uniform in "
        f"{language.RANDOM_PERIOD[0]}-{language.RANDOM_PERIOD[1]}) repeated to fill it. No padding."
    ),
    build_tokenizer=language.tokenizer,
    batches=_batches,
    evaluate=_evaluate,
    seed=0,
    steps=4000,
    batch_size=32,
    lr=2e-3,
    warmup=200,
    log_every=100,
)
