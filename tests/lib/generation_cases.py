"""Small random models and ragged random prompts, for the tests of lib.generation and
lib.directions."""

import random_models
import torch
from transformer_lens import HookedTransformer

from lib.generation import Prompts

BASE = dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=48, d_vocab=60, act_fn="gelu")


def random_model(rotary: bool = False, **extra) -> HookedTransformer:
    """A small random model (tests/random_models.py: every bias and norm weight perturbed) with
    learned positions and LayerNorm, or grouped-query attention with rotary positions, RMSNorm and
    a gated MLP."""
    kinds = (
        dict(
            normalization_type="RMS",
            positional_embedding_type="rotary",
            n_key_value_heads=2,
            gated_mlp=True,
            act_fn="silu",
        )
        if rotary
        else dict(normalization_type="LN", positional_embedding_type="standard", act_fn="gelu")
    )
    sizes = {k: v for k, v in BASE.items() if k != "act_fn"}
    return random_models.random_model(**{**sizes, **kinds, **extra})


def ragged(lengths: list[int], d_vocab: int = 60, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, d_vocab, (n,), generator=g) for n in lengths]


def padded(rows: list[torch.Tensor], pad: int = 0) -> Prompts:
    sets = [Prompts(r[None], torch.ones(1, len(r), dtype=torch.long)) for r in rows]
    return Prompts.cat(sets, pad)


CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A chat template in the style of real chat models: BOS, role headers, an end-of-turn token."""


def chat_tokenizer(path):
    """A small byte-level BPE tokenizer with special tokens and :data:`CHAT_TEMPLATE`, saved to
    ``path`` and reloaded (TransformerLens reloads tokenizers by path)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    specials = ["<|bos|>", "<|user|>", "<|assistant|>", "<|end|>"]
    text = ["how do i kill the dog ? I cannot help. Sure, here is how: bake the cake."] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(text, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|bos|>", eos_token="<|end|>")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)
