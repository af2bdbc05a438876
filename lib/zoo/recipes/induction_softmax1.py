"""``induction-2l-softmax1``: ``induction-2l`` with one change, an attention that needs no sink.

Each head's softmax gets an extra logit fixed at zero beside the keys' ("softmax1", Miller 2023):
``softmax([scores, 0])`` without its last entry, which is ``softmax(scores) * sigmoid(logsumexp(
scores))`` per query, so a head with nothing to do can give its attention to no position instead
of parking it on one. TransformerLens computes it with ``use_attention_sinks`` (GPT-OSS's learned
sink logit per head, appended after ``hook_attn_scores``), here frozen at its initial zero. The
data, seed, initial weights of every other parameter, optimiser and steps are ``induction-2l``'s.

Introduced in chapter 'Attention sinks' (chapters/attention_sinks.py).
"""

from __future__ import annotations

import dataclasses

from lib.zoo.recipes import induction

RECIPE = dataclasses.replace(
    induction.RECIPE,
    name="induction-2l-softmax1",
    description=(
        "induction-2l with softmax1 attention: each head's softmax has an extra logit fixed at 0, "
        "so a head can attend to no position (pattern rows sum to less than 1); otherwise the same "
        "recipe (data, seed, optimiser, steps)."
    ),
    config={**induction.RECIPE.config, "use_attention_sinks": True},
    frozen=("attn.sinks",),
)
