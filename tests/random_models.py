"""Random HookedTransformers for the lib tests: one builder for every test that needs a model
whose weights do not matter (its Hugging Face checkpoint counterpart, for the real-model path, is
in tests/offline_hf.py)."""

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

SIZES = {"n_layers": 3, "d_model": 32, "n_heads": 4, "d_head": 8, "d_mlp": 64, "n_ctx": 24, "d_vocab": 30}


def _is_bias_or_norm(name: str) -> bool:
    """Biases (``b_Q``, ``_b_V``, ``b_in``, ``b_U``, a LayerNorm's ``b``) and norm weights (``w``)."""
    last = name.rsplit(".", 1)[-1]
    return last in ("b", "w") or last.lstrip("_").startswith("b_")


def random_model(
    normalization_type: str | None = "LN", perturb: float = 0.1, seed: int = 0, **config
) -> HookedTransformer:
    """A random model in eval mode: :data:`SIZES` with GELU MLPs, unless ``config`` (any
    ``HookedTransformerConfig`` field: ``attn_only``, ``n_key_value_heads``, ``dtype``, sizes ...)
    says otherwise. ``perturb`` adds Gaussian noise of that size to every bias and norm weight, so
    that no bias is zero and no norm weight one, and every term of a sum is exercised."""
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        **(SIZES | {"act_fn": "gelu_new", "normalization_type": normalization_type} | config)
    )
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if _is_bias_or_norm(name):
                p.add_(perturb * torch.randn_like(p))
    return model
