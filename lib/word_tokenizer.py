"""Word-level Hugging Face tokenizers for the zoo's organisms: one token per whitespace-separated
word, ``<bos>`` prepended to every encoding, saved to disk (TransformerLens reloads a tokenizer by
its path). The tokenizers of ``induction-2l`` and of the synthetic language are such.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast


def word_tokenizer(words: list[str], path: Path) -> PreTrainedTokenizerFast:
    """A word-level HF tokenizer over ``words`` (which must hold ``<bos>``, ``<unk>`` and
    ``<pad>``) with ``<bos>`` prepended to every encoding, saved to ``path`` and reloaded from it."""
    vocab = {w: i for i, w in enumerate(words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", unk_token="<unk>", pad_token="<pad>"
    )
    path.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)
