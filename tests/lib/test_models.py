"""lib.models and lib.env: names, devices and dtypes, refused clearly before loading."""

import pytest
import torch

from lib import data, language, models


def test_zoo_config_without_loading():
    cfg = models.model_config("induction-2l")
    assert cfg.n_layers == 2 and cfg.attn_only and cfg.n_ctx == 128


@pytest.mark.parametrize("call", [models.model_config, models.load_model])
def test_unknown_model_lists_the_zoo(call):
    with pytest.raises(ValueError, match=r"MODEL_NAME='gpt-7' is neither a zoo organism \(induction-2l"):
        call("gpt-7")


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
