"""What it takes to train one organism from nothing (or from its parent), deterministically."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast


@dataclass(frozen=True)
class Recipe:
    """Architecture, tokenizer, seeded data, optimiser and steps of one organism.

    ``parent`` names the organism a fine-tuned recipe starts from: training loads its verified
    weights (its ``config`` must then be the parent's), the manifest records the parent's weight
    hash, and loading the child verifies the whole chain. ``frozen`` names parameters (by the
    end of their name, e.g. ``attn.sinks``) that keep their initial values: they are not trained.
    """

    name: str
    description: str
    config: dict  # HookedTransformerConfig keyword arguments
    data_recipe: str  # human-readable description of the training data
    build_tokenizer: Callable[[Path], PreTrainedTokenizerFast]
    batches: Callable[[Recipe, PreTrainedTokenizerFast], Iterator[Int[Tensor, "batch pos"]]]
    evaluate: Callable[[HookedTransformer], dict[str, float]]  # logged every ``log_every`` steps
    parent: str | None = None
    seed: int = 0
    steps: int = 3000
    schedule_steps: int | None = None  # the schedule's length, where training stops before its end
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    log_every: int = 25
    frozen: tuple[str, ...] = ()
