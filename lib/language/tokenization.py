"""The tokenizer of the book's synthetic language, one token per word, and how to tell whether a
model reads the language with it.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).
"""

from __future__ import annotations

from pathlib import Path

from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast

from lib.language.lexicon import ID, VOCAB
from lib.word_tokenizer import word_tokenizer


def tokenizer(path: Path) -> PreTrainedTokenizerFast:
    """The language's word-level HF tokenizer (``<bos>`` prepended), saved to ``path``."""
    return word_tokenizer(VOCAB, path)


def speaks_language(model: HookedTransformer) -> bool:
    """Whether the model's tokenizer is the book's language's, one token per word."""
    return model.tokenizer is not None and model.tokenizer.get_vocab() == ID
