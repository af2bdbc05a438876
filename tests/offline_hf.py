"""The offline real-model path (DESIGN.md section 9) and reading glued values.

Small randomly initialised Hugging Face checkpoints of three architectures, each with a real
byte-level BPE tokenizer trained on the book's language (so that its words are mostly whole tokens,
as common English words are for GPT-2):

- ``gpt2``: GPT-2 (learned positions, LayerNorm, GELU MLP), BOS ``<|endoftext|>``;
- ``neox``: GPT-NeoX as Pythia (rotary on a quarter of each head, parallel attention and MLP),
  which TransformerLens loads with ``default_prepend_bos=False``;
- ``qwen2``: Qwen2 (RMSNorm, gated MLP, grouped-query attention with half as many key/value heads
  as query heads, ``default_prepend_bos=False``), whose tokenizer has no BOS token, as Qwen2's.

``offline_gpt2`` makes MODEL_NAME="gpt2-small" resolve, through TransformerLens
``from_pretrained``, to the GPT-2 checkpoint in a local Hugging Face cache with the hub offline;
``checkpoints`` saves all three as local folders (MODEL_NAME may be a folder);
``offline_chat_model`` makes "gpt2-small" a random GPT-2 whose tokenizer has a chat template and
end-of-turn tokens, as a chat model's has. The fixtures are registered in tests/conftest.py.
"""

import ast
from pathlib import Path

import nbformat
import pytest
import torch
from sae_lens import TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from lib import language
from lib.word_tasks import WORD_TASKS

N_CTX, N_LAYERS, N_HEADS, N_KV_HEADS, D_MODEL, VOCAB = 64, 2, 4, 2, 64, 900
CHAT_N_CTX = 160  # the chat model's context: a sorting request in its template and the reply
ARCHITECTURES = ("gpt2", "neox", "qwen2")
END = "<|endoftext|>"


def language_tokenizer(with_bos: bool = True, word_lists: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a few hundred texts of the book's language, with
    ``<|endoftext|>`` as end-of-text (and as BOS when ``with_bos``, as GPT-2's and Pythia's); with
    ``word_lists`` also on the word lists of :mod:`lib.word_tasks`, with room for 500 more tokens
    (so most of their words are single tokens, as they are for GPT-2)."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    rows = language.sample_corpus(0, 64, 128).tokens.tolist()
    text = [" ".join(language.VOCAB[t] for t in row if t != language.BOS_ID) for row in rows]
    if word_lists:
        text += [" ".join(w for pair in pairs for w in pair) for pairs in WORD_TASKS.values()] * 8
    core.train_from_iterator(
        text,
        trainers.BpeTrainer(
            vocab_size=VOCAB + 500 * word_lists,
            special_tokens=[END],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    special = {"bos_token": END} if with_bos else {}
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=END, pad_token=END, **special)


def save_checkpoint(folder: Path, architecture: str, word_lists: bool = False) -> Path:
    """A random checkpoint of ``architecture`` (one of :data:`ARCHITECTURES`) and its tokenizer
    (:func:`language_tokenizer`), saved into ``folder`` as ``save_pretrained`` writes them
    (float32 weights)."""
    tok = language_tokenizer(with_bos=architecture != "qwen2", word_lists=word_lists)
    ids = {"vocab_size": len(tok), "eos_token_id": tok.eos_token_id, "bos_token_id": tok.bos_token_id}
    if architecture == "gpt2":  # transformers 5 does not write n_ctx, which TransformerLens reads
        config = GPT2Config(
            n_layer=N_LAYERS, n_head=N_HEADS, n_embd=D_MODEL, n_positions=N_CTX, n_ctx=N_CTX, **ids
        )
        make = GPT2LMHeadModel
    elif architecture == "neox":
        config = GPTNeoXConfig(
            num_hidden_layers=N_LAYERS,
            num_attention_heads=N_HEADS,
            hidden_size=D_MODEL,
            intermediate_size=4 * D_MODEL,
            max_position_embeddings=N_CTX,
            rotary_pct=0.25,
            use_parallel_residual=True,
            **ids,
        )
        make = GPTNeoXForCausalLM
    elif architecture == "qwen2":
        config = Qwen2Config(
            num_hidden_layers=N_LAYERS,
            num_attention_heads=N_HEADS,
            num_key_value_heads=N_KV_HEADS,
            hidden_size=D_MODEL,
            intermediate_size=2 * D_MODEL,
            max_position_embeddings=N_CTX,
            tie_word_embeddings=False,
            **ids,
        )
        make = Qwen2ForCausalLM
    else:
        raise ValueError(f"unknown architecture {architecture!r}; allowed: {', '.join(ARCHITECTURES)}")
    torch.manual_seed(0)
    make(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_random_sae(folder: Path, layer: int = 1, d_sae: int = 128, k: int = 8) -> Path:
    """A TopK SAE with random weights reading ``blocks.{layer}.hook_resid_pre`` of the random
    checkpoints (d_in :data:`D_MODEL`), saved into ``folder`` as SAELens saves one."""
    torch.manual_seed(0)
    cfg = TopKSAEConfig(
        d_in=D_MODEL, d_sae=d_sae, k=k, metadata=SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_pre")
    )
    sae = TopKSAE(cfg)
    with torch.no_grad():
        for param in sae.parameters():
            param.normal_(0, 0.1)
    sae.save_model(folder)
    return folder


@pytest.fixture(scope="session")
def offline_gpt2(tmp_path_factory):
    """A local HF cache in which ``gpt2`` (TransformerLens's ``gpt2-small``) is the random GPT-2
    checkpoint; the environment points at it with the hub offline, as a Colab cache would be used.
    Yields the vocabulary size."""
    home = tmp_path_factory.mktemp("hf")
    repo = home / "hub" / "models--gpt2"
    snapshot = save_checkpoint(repo / "snapshots" / ("0" * 40), "gpt2")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield len(PreTrainedTokenizerFast.from_pretrained(snapshot))


CHAT_TEMPLATE = (  # a chat model's template: roles in special tokens, each turn ended by <|end|>
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(scope="module")  # module: its HF_HOME must not outlive the tests that asked for it
def offline_chat_model(tmp_path_factory):
    """A local HF cache in which ``gpt2`` (TransformerLens's ``gpt2-small``) is a random tiny GPT-2
    whose tokenizer (byte-level BPE trained on the book's language and its chat requests) has a
    chat template; the hub is offline."""
    home = tmp_path_factory.mktemp("hf-chat")
    repo = home / "hub" / "models--gpt2"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    rows = language.sample_corpus(0, 32, 128).tokens.tolist()
    text = [" ".join(language.VOCAB[t] for t in row if t != language.BOS_ID) for row in rows]
    text += language.requests(True)[:300] + language.requests(False)[:300] + ["I cannot. Sure, Sorry"] * 20
    specials = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=900, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(text, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|end|>")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(snapshot)
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=3,
        n_head=4,
        n_embd=64,
        n_positions=CHAT_N_CTX,
        n_ctx=CHAT_N_CTX,
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(snapshot)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield len(tok)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Each architecture of :data:`ARCHITECTURES` saved as a local checkpoint folder."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {arch: save_checkpoint(root / f"random-{arch}", arch) for arch in ARCHITECTURES}


@pytest.fixture(scope="session")
def word_list_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """:func:`checkpoints` with tokenizers that also know the word lists of :mod:`lib.word_tasks`."""
    root = tmp_path_factory.mktemp("word-list-checkpoints")
    return {arch: save_checkpoint(root / f"random-{arch}", arch, word_lists=True) for arch in ARCHITECTURES}


def glued(nb: nbformat.NotebookNode) -> dict[str, object]:
    """The values a notebook glued with ``myst_nb.glue``."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                values[name] = ast.literal_eval(out["data"]["application/papermill.record/text/plain"])
    return values
