"""Random models and tokens the residual-stream tests (test_residual, test_lens) share."""

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

NORMS = ["LN", "LNPre", "RMS", None]


def random_model(
    norm: str | None = "LN", use_attn_result: bool = False, d_vocab: int = 30, **kw
) -> HookedTransformer:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=3,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        n_ctx=24,
        d_vocab=d_vocab,
        act_fn="gelu_new",
        normalization_type=norm,
        use_attn_result=use_attn_result,
        **kw,
    )
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():  # non-zero biases and LayerNorm weights, so every term is exercised
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def random_tokens(d_vocab: int = 30) -> torch.Tensor:
    return torch.randint(0, d_vocab, (3, 14), generator=torch.Generator().manual_seed(1))
