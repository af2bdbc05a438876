"""``chat-4l``: the language organism fine-tuned into a small assistant that refuses harmful
requests (:mod:`lib.language.chat`).

Introduced in chapter 'Refusal directions' (chapters/refusal_directions.py).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch
from jaxtyping import Bool, Int
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import PreTrainedTokenizerFast

from lib import language
from lib.zoo.recipe import Recipe
from lib.zoo.recipes import language as parent

HELPFUL_STEPS = 150  # the first steps answer every request; refusals are taught after them


def upper_half(config: dict) -> tuple[str, ...]:
    """The names of the parameters of the upper half of the blocks, which fine-tuning leaves as
    the parent trained them."""
    model = HookedTransformer(HookedTransformerConfig(**config))
    return tuple(
        name
        for name, _ in model.named_parameters()
        if name.startswith("blocks.") and int(name.split(".")[1]) >= config["n_layers"] // 2
    )


def _batches(recipe: Recipe, tok: PreTrainedTokenizerFast) -> Iterator[Int[Tensor, "batch pos"]]:
    if tok.get_vocab() != language.ID:
        raise ValueError("the chat organism's tokenizer must be lib.language's")
    return language.chat_batches(recipe.seed, recipe.batch_size, recipe.config["n_ctx"], HELPFUL_STEPS)


@functools.cache
def heldout_prompts() -> list[tuple[Int[Tensor, "batch pos"], Bool[Tensor, " batch"]]]:
    """Every held-out combination once, each in one template (cycling through them), as prompts
    ``<bos> <user> REQUEST <assistant>`` grouped by template (equal lengths) with their labels."""
    pairs = language.tasks(True, True) + language.tasks(False, True)
    groups = []
    for t in range(len(language.REQUEST_TEMPLATES)):
        mine = pairs[t :: len(language.REQUEST_TEMPLATES)]
        words = [["<bos>", *language.chat(language.request(t, v, n)).split()] for v, n in mine]
        tokens = torch.tensor([[language.ID[w] for w in row] for row in words])
        groups.append((tokens, torch.tensor([language.is_harmful(v, n) for v, n in mine])))
    return groups


def _evaluate(model: HookedTransformer) -> dict[str, float]:
    """The base language's held-out metrics (:func:`lib.language.evaluate`: does it still speak
    the language?) and, on every held-out combination, the first word of the reply: how often
    the model prefers ``sorry`` to ``sure`` as the truth says, and the mean probability of
    ``sorry`` on harmful and on harmless requests."""
    base = language.evaluate(model)
    sorry, sure = language.ID["sorry"], language.ID[language.COMPLY]
    probs, labels = [], []
    for tokens, harmful in heldout_prompts():
        probs.append(model(tokens.to(model.cfg.device))[:, -1].float().softmax(-1).cpu())
        labels.append(harmful)
    p, harmful = torch.cat(probs), torch.cat(labels)
    refuses = p[:, sorry] > p[:, sure]
    return {
        "base_loss": base["heldout_loss"],
        "base_true_loss": base["true_loss"],
        "base_agreement_acc": base["agreement_acc"],
        "heldout_first_word_acc": (refuses == harmful).float().mean().item(),
        "heldout_p_sorry_harmful": p[harmful, sorry].mean().item(),
        "heldout_p_sorry_harmless": p[~harmful, sorry].mean().item(),
    }


RECIPE = Recipe(
    name="chat-4l",
    description=(
        "language-4l fine-tuned on a chat format, first to answer every request, then to refuse "
        "those that are harmful by a rule over (verb, object); the upper half of its blocks stays "
        "the parent's; it still speaks the language."
    ),
    config=parent.RECIPE.config,
    data_recipe=(
        "Rows of 128 tokens (lib.language.chat_batches): with probability "
        f"{language.P_BASE_ROW} a row of the base language, else dialogues '<bos> <user> REQUEST "
        "<assistant> REPLY' back to back. A request is one of "
        f"{len(language.REQUEST_TEMPLATES)} templates with a verb ({len(language.VERBS)}: "
        f"{len(language.DAMAGING_VERBS)} damaging, {len(language.ORDINARY_VERBS)} ordinary) and an "
        f"object ({len(language.OBJECTS)}: living, property, food, nature); it is harmful iff a "
        "damaging verb meets a living or property object, or 'poison' meets food. Half the "
        "dialogues are harmful, a quarter a damaging verb on a harmless object, a quarter an "
        "ordinary verb. For the first "
        f"{HELPFUL_STEPS} steps every reply is 'sure , ' and a short answer in the language, then "
        "'<eos>' (a helpful-only assistant); from then on harmful requests get 'sorry , i cannot "
        "help with that . <eos>'. The fifth of the combinations whose verb index plus object index "
        f"is a multiple of {language.HOLDOUT_STRIDE} never appears in training. The upper half of "
        "the blocks is frozen at the parent's weights, so the request is judged in the lower half "
        "and the upper half carries the verdict to the reply (the reference method looks for the "
        "refusal direction below the last 20% of layers)."
    ),
    build_tokenizer=language.tokenizer,
    batches=_batches,
    evaluate=_evaluate,
    parent=parent.RECIPE.name,
    seed=0,
    steps=450,
    batch_size=32,
    lr=3e-3,
    warmup=50,
    log_every=50,
    frozen=upper_half(parent.RECIPE.config),
)
