"""lib.models and lib.env: names, devices and dtypes, refused clearly before loading; local
checkpoint folders mapped to TransformerLens by their config; hub models that cannot be had
refused in seconds, without the network."""

import json
import shutil
import time

import pytest
import torch
from huggingface_hub import constants as hub
from offline_hf import N_CTX, N_KV_HEADS, N_LAYERS, VOCAB
from transformers import AutoModelForCausalLM

from lib import data, language, models


def test_zoo_config_without_loading():
    cfg = models.model_config("induction-2l")
    assert cfg.n_layers == 2 and cfg.attn_only and cfg.n_ctx == 128


@pytest.mark.parametrize("call", [models.model_config, models.load_model])
def test_unknown_model_lists_the_zoo(call):
    with pytest.raises(ValueError, match=r"MODEL_NAME='gpt-7' is neither a zoo organism \(induction-2l"):
        call("gpt-7")


def test_a_typo_gets_the_nearest_names():
    with pytest.raises(ValueError, match=r"did you mean gpt2-small\b"):
        models.model_config("gpt2-smal")
    with pytest.raises(ValueError, match=r"did you mean induction-2l\?"):
        models.load_model("induction-2")


@pytest.mark.parametrize(
    "arch, expected",
    [
        (
            "gpt2",
            {
                "original_architecture": "GPT2LMHeadModel",
                "normalization_type": "LN",
                "default_prepend_bos": True,
            },
        ),
        (
            "neox",
            {
                "original_architecture": "GPTNeoXForCausalLM",
                "positional_embedding_type": "rotary",
                "rotary_dim": 4,
            }
            | {"parallel_attn_mlp": True, "default_prepend_bos": False},
        ),
        (
            "qwen2",
            {"original_architecture": "Qwen2ForCausalLM", "normalization_type": "RMS", "gated_mlp": True}
            | {"n_key_value_heads": N_KV_HEADS, "default_prepend_bos": False},
        ),
    ],
)
def test_a_local_folder_maps_to_its_architecture(checkpoints, arch, expected):
    cfg = models.model_config(str(checkpoints[arch]))
    assert (cfg.n_layers, cfg.n_ctx, cfg.d_vocab) == (N_LAYERS, N_CTX, VOCAB)
    assert {key: getattr(cfg, key) for key in expected} == expected
    assert cfg.model_name == f"random-{arch}" and cfg.tokenizer_name == str(checkpoints[arch])


def test_a_folder_is_read_by_its_config_not_its_name(checkpoints, tmp_path):
    """TransformerLens guesses Llama from "llama" in a name; a folder's config.json decides."""
    folder = shutil.copytree(checkpoints["gpt2"], tmp_path / "my-llama-finetune")
    assert models.model_config(str(folder)).original_architecture == "GPT2LMHeadModel"


@pytest.mark.parametrize("arch", ["gpt2", "neox", "qwen2"])
def test_a_local_folder_loads_with_the_checkpoints_logits(checkpoints, arch):
    """The converted model predicts what the Hugging Face model predicts (TransformerLens centres
    the unembedding, which shifts every logit of a position alike: compare log-probabilities)."""
    model = models.load_model(str(checkpoints[arch]), "cpu")
    tokens = model.to_tokens(["there was a cow named tom . the dogs near the tree"], prepend_bos=True)
    expected = AutoModelForCausalLM.from_pretrained(checkpoints[arch])(tokens).logits.log_softmax(-1)
    torch.testing.assert_close(model(tokens).log_softmax(-1), expected, atol=1e-4, rtol=1e-4)
    assert tokens[0, 0] == model.tokenizer.bos_token_id and not model.training


@pytest.mark.parametrize(
    "arch, first",
    [
        ("gpt2", "position 0 is the BOS token '<|endoftext|>'"),
        (
            "neox",
            "position 0 is the BOS token '<|endoftext|>', prepended here "
            "(TransformerLens runs this model without it)",
        ),
        (
            "qwen2",
            "position 0 is '<|endoftext|>': the tokenizer has no BOS token; "
            "TransformerLens uses its end-of-text token",
        ),
    ],
)
def test_describe_says_what_position_0_is(checkpoints, arch, first):
    model = models.load_model(str(checkpoints[arch]), "cpu", "bfloat16")
    assert model.W_Q.dtype == torch.bfloat16
    line = models.describe("m", model)
    assert line.startswith(f"m: 2 layers x 4 heads{' (2 key/value heads)' * (arch == 'qwen2')}, d_model 64")
    assert line.endswith(f"context 64; {first}")


def test_loading_is_quiet(checkpoints, capsys, caplog):
    """TransformerLens prints "Moving model to device" and warns against folding LayerNorm in
    half precision; transformers shows a weight-loading progress bar: none of it reaches a chapter."""
    models.load_model("induction-2l", "cpu", "bfloat16")
    models.load_model(str(checkpoints["qwen2"]), "cpu", "bfloat16")
    out, err = capsys.readouterr()
    assert out == err == "" and not caplog.records


def test_a_folder_that_is_not_a_checkpoint(checkpoints, tmp_path):
    with pytest.raises(
        ValueError, match="is a folder without a config.json; a local model is a Hugging Face"
    ):
        models.model_config(str(tmp_path))
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["MambaForCausalLM"], "model_type": "mamba"})
    )
    with pytest.raises(
        ValueError, match=r"TransformerLens cannot load this folder's architecture \(MambaForCausalLM"
    ):
        models.load_model(str(tmp_path), "cpu")
    with pytest.raises(
        ValueError, match=r"nor a local checkpoint folder \(there is no folder .*no-such-folder\)$"
    ):
        models.model_config(str(tmp_path / "no-such-folder"))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache and a hub endpoint that refuses connections at once (a closed
    local port), read by huggingface_hub at call time; no proxy in the way."""
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    for proxy in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    return tmp_path


@pytest.mark.parametrize("call", [models.model_config, models.load_model])
def test_an_unreachable_hub_is_refused_in_seconds(hub_cache, call):
    start = time.monotonic()
    with pytest.raises(ValueError) as refused:
        call("gpt2-small")
    assert time.monotonic() - start < 5
    message = str(refused.value)
    assert message.startswith("MODEL_NAME='gpt2-small' is the Hugging Face model gpt2, and the hub ")
    assert "http://127.0.0.1:9 cannot be reached (127.0.0.1:9: " in message
    assert "it needs the network (e.g. Colab), or give a local copy: a Hugging Face cache" in message
    assert "or a checkpoint folder (config.json, weights and tokenizer" in message


def test_offline_without_a_cached_copy(hub_cache, monkeypatch):
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        ValueError,
        match=r"gpt2, which is not in the local Hugging Face cache \(.*\) and HF_HUB_OFFLINE is set",
    ):
        models.model_config("gpt2-small")


def test_an_unreachable_hub_with_a_cached_copy_says_to_go_offline(hub_cache):
    snapshot = hub_cache / "models--gpt2" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (hub_cache / "models--gpt2" / "refs").mkdir()
    (hub_cache / "models--gpt2" / "refs" / "main").write_text("0" * 40)
    with pytest.raises(
        ValueError, match=r"it is in the local Hugging Face cache \(.*\): set HF_HUB_OFFLINE=1"
    ):
        models.load_model("gpt2-small")


def test_load_model_dtype_and_eval_mode():
    model = models.load_model("induction-2l", device="cpu", dtype="bfloat16")
    assert model.W_Q.dtype == torch.bfloat16 and not model.training


@pytest.mark.parametrize("name", ["induction-2l", "language-4l"])
def test_ordinary_tokens_are_the_trained_non_special_ids(name):
    model = models.load_model(name, "cpu")
    got = data.ordinary_tokens(model).tolist()
    special = set(model.tokenizer.all_special_ids)
    if name == "language-4l":  # the words the language produces: no <bos>, no reserved ids
        assert language.speaks_language(model)
        classes = [language.WORD_CLASSES[c] for c in language.WORD_CLASS_OF.tolist()]
        assert got == [i for i, c in enumerate(classes) if c not in ("bos", "reserved")]
    else:
        assert not language.speaks_language(model)
        assert got == [i for i in range(len(model.tokenizer)) if i not in special]
    assert not special & set(got)
