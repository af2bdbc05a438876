"""Models, prompts and metrics the patching tests share, and TransformerLens's sweep for each
(site, sweep) they compare against."""

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import patching as tl_patching

from lib import models, zoo

TL_SWEEPS = {  # TransformerLens's sweep for each (site, sweep)
    ("resid_pre", "layer_pos"): tl_patching.get_act_patch_resid_pre,
    ("resid_mid", "layer_pos"): tl_patching.get_act_patch_resid_mid,
    ("attn_out", "layer_pos"): tl_patching.get_act_patch_attn_out,
    ("mlp_out", "layer_pos"): tl_patching.get_act_patch_mlp_out,
    ("z", "head_pos"): tl_patching.get_act_patch_attn_head_out_by_pos,
    ("z", "head"): tl_patching.get_act_patch_attn_head_out_all_pos,
}


def tiny(**overrides) -> HookedTransformer:
    """A random-weight GPT-2-architecture model: LayerNorm, GELU MLP, learned positions."""
    torch.manual_seed(0)
    cfg = dict(
        n_layers=3,
        d_model=64,
        n_heads=4,
        d_head=16,
        d_mlp=256,
        n_ctx=32,
        d_vocab=100,
        act_fn="gelu",
        normalization_type="LN",
    )
    return HookedTransformer(HookedTransformerConfig(**(cfg | overrides))).eval()


MODELS = {
    "gpt2-arch": lambda: tiny(),
    # rotary positions, RMSNorm, gated MLP, grouped-query attention: the key-value prefix path
    "rotary-gqa": lambda: tiny(
        positional_embedding_type="rotary",
        rotary_dim=16,
        normalization_type="RMS",
        act_fn="silu",
        gated_mlp=True,
        n_key_value_heads=2,
    ),
    # shortformer positions (added to queries and keys only) and parallel attention + MLP
    "shortformer-parallel": lambda: tiny(positional_embedding_type="shortformer", parallel_attn_mlp=True),
    # the zoo organisms: attention-only (induction-2l) and GPT-2-style with MLPs (language-4l)
    **{name: (lambda name=name: models.load_model(name, device="cpu")) for name in zoo.ORGANISMS},
}
_cache: dict = {}


def get_model(name: str) -> HookedTransformer:
    if name not in _cache:
        _cache[name] = MODELS[name]()
    return _cache[name]


def runs(model: HookedTransformer, batch: int = 2, n_pos: int = 7):
    """Clean and corrupted prompts that differ at position 3 in prompt 0 and at 5 in prompt 1
    (so some patches change nothing and are skipped), the clean cache, and a per-prompt metric
    at the last position (TransformerLens gets its mean)."""
    g = torch.Generator().manual_seed(1)
    clean = torch.randint(min(model.cfg.d_vocab, 512), (batch, n_pos), generator=g)
    corrupted = clean.clone()
    for b in range(batch):
        pos = 3 + 2 * (b % 2)
        corrupted[b, pos] = (clean[b, pos] + 1 + b) % min(model.cfg.d_vocab, 512)
    answer = clean[:, 1]
    _, cache = model.run_with_cache(clean)

    def metric(logits):  # [batch]
        return logits[:, -1].log_softmax(-1).gather(-1, answer[:, None])[:, 0]

    return corrupted, cache, metric
