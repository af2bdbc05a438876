"""Loading a model by name: a zoo organism offline, or any TransformerLens model.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py); every chapter's
``MODEL_NAME`` parameter goes through :func:`load_model`.
"""

from __future__ import annotations

import warnings

from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import loading_from_pretrained as loading

from lib import env, zoo

warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)


def _unknown(name: str) -> ValueError:
    return ValueError(
        f"MODEL_NAME={name!r} is neither a zoo organism ({', '.join(zoo.ORGANISMS)}) nor a "
        "TransformerLens model name (e.g. gpt2-small, pythia-160m, gemma-2-2b-it; the full list "
        "is transformer_lens.loading_from_pretrained.OFFICIAL_MODEL_NAMES)"
    )


def model_config(name: str) -> HookedTransformerConfig:
    """The config of a model without loading its weights, so chapters can validate their
    parameters (e.g. sequence length against ``n_ctx``) before any heavy work."""
    if name in zoo.ORGANISMS:
        return HookedTransformerConfig(**zoo.manifest(name)["config"])
    try:
        loading.get_official_model_name(name)
    except ValueError:
        raise _unknown(name) from None
    return loading.get_pretrained_model_config(name)


def load_model(name: str, device: str = "auto", dtype: str = "float32") -> HookedTransformer:
    """Load ``name`` on ``device`` in ``dtype``, in eval mode.

    Zoo organisms load from the committed files (hash-checked); any other name goes through
    ``HookedTransformer.from_pretrained`` exactly as on Colab, so with ``HF_HUB_OFFLINE=1`` it
    reads the local Hugging Face cache. Unknown names, devices and dtypes raise a ``ValueError``
    saying what is allowed, before anything is loaded.
    """
    torch_device, torch_dtype = env.pick_device(device), env.pick_dtype(dtype)
    if name in zoo.ORGANISMS:
        return zoo.load(name, torch_device, torch_dtype)
    try:
        loading.get_official_model_name(name)
    except ValueError:
        raise _unknown(name) from None
    return HookedTransformer.from_pretrained(name, device=torch_device, dtype=torch_dtype).eval()


def describe(name: str, model: HookedTransformer, n_ordinary: int | None = None) -> str:
    """One line on the loaded model, printed under every chapter's load cell: layers, heads,
    widths, vocabulary (with how many ordinary tokens random inputs draw from, when given) and
    context."""
    cfg = model.cfg
    mlp = "" if cfg.attn_only else f", d_mlp {cfg.d_mlp}"
    ordinary = "" if n_ordinary is None else f" ({n_ordinary} ordinary tokens)"
    return (
        f"{name}: {cfg.n_layers} layers x {cfg.n_heads} heads, d_model {cfg.d_model}{mlp}, "
        f"vocabulary {cfg.d_vocab}{ordinary}, context {cfg.n_ctx}"
    )
