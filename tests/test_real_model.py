"""The real-model path, offline: MODEL_NAME="gpt2-small" resolved through TransformerLens
``from_pretrained`` against a local Hugging Face cache holding a small randomly initialised
GPT-2-architecture checkpoint and a real byte-level BPE tokenizer. Random weights prove only that
the path runs and that outputs have the right shapes and ranges (DESIGN.md section 9)."""

import ast
import subprocess
import sys

import nbformat
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

from lib import book

N_CTX, N_LAYERS, N_HEADS = 64, 2, 4


@pytest.fixture(scope="module")
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
    core.train_from_iterator(text, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = GPT2TokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                            unk_token="<|endoftext|>")
    tok.save_pretrained(snapshot)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=N_LAYERS, n_head=N_HEADS, n_embd=64, n_positions=N_CTX, n_ctx=N_CTX, vocab_size=len(tok),
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
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


def test_load_model_reads_the_local_cache(offline_gpt2):
    """In a fresh process, since huggingface_hub reads HF_HOME and HF_HUB_OFFLINE on import."""
    script = ("from lib.models import load_model, model_config; m = load_model('gpt2-small', 'cpu'); "
              "print(m.cfg.n_layers, m.cfg.n_heads, m.cfg.n_ctx, m.cfg.d_vocab, model_config('gpt2-small').n_ctx)")
    done = subprocess.run([sys.executable, "-c", script], cwd=book.ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1].split() == [str(v) for v in (N_LAYERS, N_HEADS, N_CTX, offline_gpt2, N_CTX)]


def test_induction_chapter_runs_on_gpt2_small(offline_gpt2, tmp_path):
    out = book.execute("induction_heads", tmp_path / "gpt2.ipynb",
                       {"MODEL_NAME": "gpt2-small", "DEVICE": "cpu", "SEQ_LEN": 10, "BATCH": 3})
    values = glued(nbformat.read(out, as_version=4))
    for half in ("first", "second"):
        assert -20 < values[f"rep_logprob_{half}"] < 0
        assert 0 <= values[f"rep_acc_{half}"] <= 1
    assert 0 <= values["top_induction_score"] <= 1 and 0 <= values["top_prev_token_score"] <= 1
    assert 0 <= values["kcomp_top1_acc"] <= 1
    assert values["ind_head"].startswith("L") and "phase_change_step" not in values
