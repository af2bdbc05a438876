"""lib.env: devices, dtypes, seeding, rounding."""

import pytest
import torch

from lib import env, models


def test_devices_and_dtypes():
    assert env.pick_device("cpu") == torch.device("cpu")
    assert env.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert env.pick_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="DEVICE='tpu' is not a device; allowed: auto, cpu, cuda"):
        models.load_model("induction-2l", device="tpu")
    with pytest.raises(
        ValueError, match="DTYPE='half' is not supported; allowed: float32, float16, bfloat16"
    ):
        models.load_model("induction-2l", dtype="half")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            env.pick_device("cuda")


def test_setup_seeds_and_picks_the_renderer():
    import plotly.io as pio

    env.setup(3)
    a = torch.rand(2)
    env.setup(3)
    assert torch.equal(a, torch.rand(2))
    assert pio.renderers.default == "plotly_mimetype+book"
    assert not torch.is_grad_enabled()
    torch.set_grad_enabled(True)


def test_sig_rounds_to_three_significant_digits():
    assert [env.sig(x) for x in (0.123456, 123456.0, -0.0009876, 0.0)] == [0.123, 123000.0, -0.000988, 0.0]
    assert env.sig(float("nan")) is None


def test_tolerance_follows_the_dtype():
    assert env.tolerance("float32") == 1e-4 and env.tolerance(torch.float32, 1e-3) == 1e-3
    assert env.tolerance("float16") == 4 * torch.finfo(torch.float16).eps == 2**-8
    assert env.tolerance("bfloat16", 1e-3) == 4 * torch.finfo(torch.bfloat16).eps == 2**-5
    assert env.tolerance(torch.bfloat16, 0.1) == 0.1  # never tighter than the float32 tolerance
    with pytest.raises(ValueError, match="DTYPE='half' is not supported"):
        env.tolerance("half")
