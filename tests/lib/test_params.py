"""lib.params: a parameters cell's declarations, typed values, one clear message per bad value."""

import re
from types import SimpleNamespace

import pytest

from lib import params

CELL = """SEED: int = 0  # [0, 2**32 - 1]: seed of every random token
SEQ_LEN: int = 50  # [12, (n_ctx - 1) // 2]: length of each half
DEVICE: str = "auto"  # {"auto", "cpu", "cuda"}: where the model runs
RATE: float = 0.5  # [0, 1]: a fraction
WINDOW_LEN: int = 0  # 0 or [32, n_ctx]: input length (0: the model's context)
WINDOW: int = 16  # [2, (WINDOW_LEN or n_ctx) // 4]: window
N_SINK: int = 4  # [1, min(8, WINDOW)]: sinks
TRAIN: bool = False  # retrain: about 12 minutes
MODEL_NAME: str = "a#b"  # a zoo organism or a TransformerLens name
LONG: int = (
    3  # [1, 9]: a line the formatter wrapped
)
"""
DECLARED = params.declared(CELL)
DEFAULTS = {name: p.default for name, p in DECLARED.items()}
CONFIG = SimpleNamespace(n_ctx=128)


def refusal(name, value, config=None, **others):
    with pytest.raises(ValueError) as err:
        params.check(DECLARED[name], value, DEFAULTS | others | {name: value}, config)
    return str(err.value)


def test_declared_reads_types_defaults_allowed_and_help():
    assert list(DECLARED) == [*DEFAULTS]
    seed, device, train, model = (DECLARED[n] for n in ("SEED", "DEVICE", "TRAIN", "MODEL_NAME"))
    assert (seed.type, seed.default, seed.help) == (int, 0, "seed of every random token")
    assert (
        device.allowed == (params.Choices(("auto", "cpu", "cuda")),) and device.help == "where the model runs"
    )
    assert (train.type, train.allowed, train.help) == (bool, (), "retrain: about 12 minutes")
    assert (model.default, model.allowed) == ("a#b", ())  # a '#' inside the value is not the comment
    assert DECLARED["RATE"].type is float and DECLARED["LONG"].help == "a line the formatter wrapped"
    assert params.describe(DECLARED["WINDOW_LEN"]) == "0 or an integer in [32, n_ctx]"
    assert params.describe(DECLARED["SEED"]) == "an integer in [0, 4294967295]"


@pytest.mark.parametrize(
    "cell, message",
    [
        ("x = 3", "line 1: expected NAME: type = literal"),
        ("N = 3  # no annotation", "line 1: expected NAME: type = literal"),
        ("N: list = []  # a list", "type 'list' is not one of int, float, str, bool"),
        ("N: int = 2 + 1  # arithmetic", "the default 2 \\+ 1 is not a literal"),
    ],
)
def test_declared_refuses_anything_but_annotated_literals(cell, message):
    with pytest.raises(ValueError, match=message):
        params.declared(cell)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("SEED", 1.5, r"SEED=1.5 is not allowed; expected an integer in \[0, 4294967295\]"),
        ("SEED", "abc", r"SEED='abc' is not allowed; expected an integer in \[0, 4294967295\]"),
        ("SEED", -1, r"SEED=-1 is not allowed; expected an integer in \[0, 4294967295\]"),
        ("SEED", True, r"SEED=True is not allowed"),
        ("TRAIN", 1, r"TRAIN=1 is not allowed; expected True or False"),
        ("MODEL_NAME", 1, r"MODEL_NAME=1 is not allowed; expected a string"),
        ("DEVICE", "tpu", r"DEVICE='tpu' is not allowed; expected one of 'auto', 'cpu', 'cuda'"),
        ("RATE", 2, r"RATE=2 is not allowed; expected a number in \[0, 1\]"),
        ("WINDOW_LEN", 8, r"WINDOW_LEN=8 is not allowed; expected 0 or an integer in \[32, n_ctx\]"),
        ("N_SINK", 9, r"N_SINK=9 is not allowed; expected an integer in \[1, 8\]"),
        ("SEQ_LEN", 5, r"SEQ_LEN=5 is not allowed; expected an integer in \[12, \(n_ctx - 1\) // 2\]"),
    ],
)
def test_check_refuses_with_one_line_naming_the_value_and_what_is_allowed(name, value, message):
    text = refusal(name, value)
    assert "\n" not in text
    assert re.fullmatch(message + ".*", text), text


def test_bounds_use_the_other_parameters_and_the_config_when_known():
    """Without a config, a bound that needs one is not checked (the notebook checks it); with one,
    it is shown evaluated."""
    params.check(DECLARED["SEQ_LEN"], 500, DEFAULTS)
    assert "expected an integer in [12, 63]" in refusal("SEQ_LEN", 500, CONFIG)
    assert "expected an integer in [1, 3]" in refusal("N_SINK", 4, WINDOW=3)
    params.check(DECLARED["WINDOW"], 100, DEFAULTS)  # its bound is n_ctx // 4: unknown yet
    assert "expected an integer in [2, 32]" in refusal("WINDOW", 100, CONFIG)
    assert "expected an integer in [2, 16]" in refusal("WINDOW", 17, WINDOW_LEN=64)  # known without a config
    for name, value in [
        ("SEQ_LEN", 63),
        ("WINDOW_LEN", 0),
        ("WINDOW_LEN", 128),
        ("RATE", 1),
        ("TRAIN", True),
    ]:
        params.check(DECLARED[name], value, DEFAULTS | {name: value}, CONFIG)


def test_a_bound_may_only_be_arithmetic():
    (param,) = params.declared(
        "N: int = 1  # [0, __import__('os').getpid()]: no calls but min and max"
    ).values()
    with pytest.raises(ValueError, match="a parameter bound may not contain"):
        params.check(param, 1, {})


@pytest.mark.parametrize(
    "name, text, value",
    [
        ("MODEL_NAME", "1", "1"),  # a str parameter takes the text as given
        ("SEED", "3", 3),
        ("SEED", "1.5", 1.5),  # the literal it spells, which check then refuses
        ("SEED", "abc", "abc"),
        ("TRAIN", "True", True),
        ("TRAIN", "1", 1),
        ("RATE", "1", 1.0),
    ],
)
def test_convert_types_command_line_text_by_the_annotation(name, text, value):
    converted = params.convert(DECLARED[name], text)
    assert converted == value and type(converted) is type(value)


def test_validate_reads_the_parameters_cell_from_the_notebook_history():
    """As under papermill: the parameters cell, then the injected values, then the validation cell."""
    history = ["", "import os", CELL, "# Parameters\nSEED = 7\n", "params.validate(globals(), config)"]
    params.validate({**DEFAULTS, "SEED": 7, "In": history}, CONFIG)
    with pytest.raises(ValueError, match=r"SEQ_LEN=100 is not allowed; expected an integer in \[12, 63\]"):
        params.validate({**DEFAULTS, "SEQ_LEN": 100, "In": history}, CONFIG)
    edited = "SEED: int = 0  # [0, 9]: an edited, re-run parameters cell wins"
    with pytest.raises(ValueError, match=r"SEED=12 is not allowed; expected an integer in \[0, 9\]"):
        params.validate({"SEED": 12, "In": [*history, edited]})


def test_validate_outside_a_notebook_says_why():
    with pytest.raises(RuntimeError, match="IPython's In: run it in a notebook"):
        params.validate({"SEED": 1})


def test_validate_without_history_checks_nothing():
    """nbval executes cells with store_history=False: In holds no parameters cell, even a bad value
    passes (nbval only re-runs the committed defaults)."""
    params.validate({"SEED": -1, "In": ["", "x = 1"]})
