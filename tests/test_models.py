"""lib.models and lib.env: names, devices and dtypes, refused clearly before loading."""

import pytest
import torch

from lib import env, grammar, models, params


def test_zoo_config_without_loading():
    cfg = models.model_config("induction-2l")
    assert cfg.n_layers == 2 and cfg.attn_only and cfg.n_ctx == 128


@pytest.mark.parametrize("call", [models.model_config, models.load_model])
def test_unknown_model_lists_the_zoo(call):
    with pytest.raises(ValueError, match=r"MODEL_NAME='gpt-7' is neither a zoo organism \(induction-2l"):
        call("gpt-7")


def test_devices_and_dtypes():
    assert env.pick_device("cpu") == torch.device("cpu")
    assert env.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert env.pick_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="DEVICE='tpu' is not a device; allowed: auto, cpu, cuda"):
        models.load_model("induction-2l", device="tpu")
    with pytest.raises(ValueError, match="DTYPE='half' is not supported; allowed: float32, float16, bfloat16"):
        models.load_model("induction-2l", dtype="half")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            env.pick_device("cuda")


def test_load_model_dtype_and_eval_mode():
    model = models.load_model("induction-2l", device="cpu", dtype="bfloat16")
    assert model.W_Q.dtype == torch.bfloat16 and not model.training


def test_setup_seeds_and_picks_the_renderer():
    import plotly.io as pio

    env.setup(3)
    a = torch.rand(2)
    env.setup(3)
    assert torch.equal(a, torch.rand(2))
    assert pio.renderers.default == "plotly_mimetype+notebook_connected"
    assert not torch.is_grad_enabled()
    torch.set_grad_enabled(True)


def test_sig_rounds_to_three_significant_digits():
    assert [env.sig(x) for x in (0.123456, 123456.0, -0.0009876, 0.0)] == [0.123, 123000.0, -0.000988, 0.0]
    assert env.sig(float("nan")) is None


@pytest.mark.parametrize("value", [0, 11, 2.0, True, "3"])
def test_check_int_refuses(value):
    with pytest.raises(ValueError, match=rf"N={value!r} is not allowed; expected an integer in \[1, 10\]"):
        params.check_int("N", value, 1, 10)
    assert params.check_int("N", 5, 1, 10) == 5


def test_check_choice():
    with pytest.raises(ValueError, match=r"X='c' is not allowed; expected one of \['a', 'b'\]"):
        params.check_choice("X", "c", ["a", "b"])


@pytest.mark.parametrize("name", ["induction-2l", "language-4l"])
def test_ordinary_tokens_are_the_trained_non_special_ids(name):
    model = models.load_model(name, "cpu")
    got = models.ordinary_tokens(model).tolist()
    special = set(model.tokenizer.all_special_ids)
    if name == "language-4l":  # the words the language produces: no <bos>, no reserved ids
        assert models.speaks_language(model)
        classes = [grammar.WORD_CLASSES[c] for c in grammar.WORD_CLASS_OF.tolist()]
        assert got == [i for i, c in enumerate(classes) if c not in ("bos", "reserved")]
    else:
        assert not models.speaks_language(model)
        assert got == [i for i in range(len(model.tokenizer)) if i not in special]
    assert not special & set(got)
