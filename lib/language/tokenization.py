"""The tokenizer of the book's synthetic language, one token per word, and how to tell whether a
model reads the language with it.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from lib.language.lexicon import BOS_ID, ID, VOCAB
from lib.word_tokenizer import word_tokenizer


def tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """The language's word-level HF tokenizer (``<bos>`` prepended), saved to ``path``."""
    return word_tokenizer(VOCAB, path)


def speaks_language(model: HookedTransformer) -> bool:
    """Whether the model's tokenizer is the book's language's, one token per word."""
    return model.tokenizer is not None and model.tokenizer.get_vocab() == ID


def retokenize(
    tokens: Int[Tensor, "batch pos"], other: PreTrainedTokenizerBase, length: int
) -> Int[Tensor, "batch length"]:
    """The rows as another model reads them: each row's words as plain text (texts joined by a
    space where a ``<bos>`` separates them), tokenized by ``other`` after its BOS token (the
    book's position 0 on every model, ``lib.models.first_token``), cut to ``length`` tokens."""
    if other.bos_token_id is None:
        raise ValueError("the tokenizer has no BOS token (TransformerLens gives it its end-of-text token)")
    rows = []
    for b, row in enumerate(tokens.tolist()):
        text = " ".join(VOCAB[t] for t in row if t != BOS_ID)
        ids = [other.bos_token_id, *other(text, add_special_tokens=False)["input_ids"]][:length]
        if len(ids) < length:
            raise ValueError(f"row {b} is {len(ids)} tokens long in the other tokenizer, under {length}")
        rows.append(ids)
    return torch.tensor(rows)
