"""The offline real-model path (DESIGN.md section 9) and reading glued values.

``offline_gpt2`` makes MODEL_NAME="gpt2-small" resolve, through TransformerLens
``from_pretrained``, to a small randomly initialised GPT-2-architecture checkpoint with a real
byte-level BPE tokenizer in a local Hugging Face cache, with the hub offline. Chapter tests
(tests/test_real_model.py and each chapter's own; the fixture is registered in
tests/conftest.py) execute chapters on it with small sizes.
"""

import ast

import nbformat
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

N_CTX, N_LAYERS, N_HEADS = 64, 2, 4


@pytest.fixture(scope="session")
def offline_gpt2(tmp_path_factory):
    """A local HF cache in which ``gpt2`` (TransformerLens's ``gpt2-small``) is a random tiny
    GPT-2; the environment points at it with the hub offline, as a Colab cache would be used."""
    home = tmp_path_factory.mktemp("hf")
    snapshot = home / "hub" / "models--gpt2" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (home / "hub" / "models--gpt2" / "refs").mkdir()
    (home / "hub" / "models--gpt2" / "refs" / "main").write_text("0" * 40)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    text = ["the cat sat on the mat and the dog ran to the park"] * 20
    core.train_from_iterator(
        text,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = GPT2TokenizerFast(
        tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    tok.save_pretrained(snapshot)
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=N_LAYERS,
        n_head=N_HEADS,
        n_embd=64,
        n_positions=N_CTX,
        n_ctx=N_CTX,
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


def glued(nb: nbformat.NotebookNode) -> dict[str, object]:
    """The values a notebook glued with ``myst_nb.glue``."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                values[name] = ast.literal_eval(out["data"]["application/papermill.record/text/plain"])
    return values
