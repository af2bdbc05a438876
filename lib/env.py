"""Where the code runs: device choice, seeding, determinism, plotly renderer, Colab detection.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py), whose setup cell calls
:func:`setup`; every chapter does the same.
"""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


def progress_disabled() -> bool:
    """True when progress bars should be hidden: under test and in the book build, where the
    variable ``IBE_DISABLE_TQDM=1`` is set."""
    return os.environ.get("IBE_DISABLE_TQDM", "") not in ("", "0")


def pick_device(name: str = "auto") -> torch.device:
    """Resolve a device name: ``auto`` takes CUDA when present, else the CPU.

    Raises ``ValueError`` naming the allowed values for anything else, and for ``cuda`` on a
    machine without a GPU.
    """
    if name not in DEVICES:
        raise ValueError(f"DEVICE={name!r} is not a device; allowed: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("DEVICE='cuda' but no CUDA GPU is visible; use 'cpu' or 'auto'")
    return torch.device(name)


def pick_dtype(name: str) -> torch.dtype:
    """Resolve a dtype name (``float32``, ``float16``, ``bfloat16``) or raise a ``ValueError``
    listing them."""
    if name not in DTYPES:
        raise ValueError(f"DTYPE={name!r} is not supported; allowed: {', '.join(DTYPES)}")
    return DTYPES[name]


def tolerance(dtype: str | torch.dtype, float32: float = 1e-4) -> float:
    """The relative tolerance of an identity (a sum that holds exactly but for rounding, an
    attention mass that is at most 1) computed in ``dtype``: ``float32`` (the tolerance in float32),
    or four units of the dtype's rounding (``torch.finfo(dtype).eps``: 0.0039 for float16, 0.031
    for bfloat16) where that is looser. Check cells take their bands from here, so every chapter
    runs in every dtype of :data:`DTYPES`."""
    return max(float32, 4 * torch.finfo(pick_dtype(dtype) if isinstance(dtype, str) else dtype).eps)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed: int = 0, deterministic: bool = True) -> None:
    """Prepare a chapter's kernel: seeds, deterministic kernels, plotly renderer, no grad.

    Plotly figures use plotly's ``colab`` renderer on Colab; elsewhere its JSON mimetype (read by
    JupyterLab and VS Code) and the book's HTML (:class:`lib.figures.BookRenderer`: no CDN, the
    same ids on every run), and circuitsvis widgets are told whether they run on Colab.
    """
    import plotly.io as pio

    from lib import figures

    seed_everything(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    torch.set_grad_enabled(False)
    pio.renderers["book"] = figures.BookRenderer()
    pio.renderers.default = "colab" if in_colab() else "plotly_mimetype+book"
    figures.Widget.colab = in_colab()


def sig(x: float) -> float | None:
    """``x`` to three significant digits, so printed and glued numbers read the same on every
    machine (float rounding differs across CPUs and GPUs); None for NaN (an empty average).
    """
    return None if x != x else float(f"{x:.3g}")
