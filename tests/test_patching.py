"""lib.patching against TransformerLens's one-forward-per-patch loops (transformer_lens.patching)."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import patching as tl_patching

from lib import patching, zoo

TL_SWEEPS = {
    ("resid_pre", "layer_pos"): tl_patching.get_act_patch_resid_pre,
    ("resid_mid", "layer_pos"): tl_patching.get_act_patch_resid_mid,
    ("attn_out", "layer_pos"): tl_patching.get_act_patch_attn_out,
    ("mlp_out", "layer_pos"): tl_patching.get_act_patch_mlp_out,
    ("z", "head_pos"): tl_patching.get_act_patch_attn_head_out_by_pos,
    ("z", "head"): tl_patching.get_act_patch_attn_head_out_all_pos,
}


def gpt2_like(pos_type: str = "standard") -> HookedTransformer:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=3, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=16, d_vocab=50,
                                  act_fn="gelu_new", normalization_type="LN", positional_embedding_type=pos_type)
    return HookedTransformer(cfg).eval()


def models():
    yield "gpt2-like", gpt2_like()
    yield "shortformer", gpt2_like("shortformer")
    if (zoo.ORGANISMS_DIR / "induction-2l").exists():
        yield "induction-2l", zoo.load("induction-2l")


def runs(model: HookedTransformer):
    g = torch.Generator().manual_seed(1)
    clean = torch.randint(model.cfg.d_vocab, (2, 7), generator=g)
    corrupted = torch.randint(model.cfg.d_vocab, (2, 7), generator=g)
    answer = clean[:, -1]
    _, cache = model.run_with_cache(clean)

    def metric(logits):  # per-sequence log-prob of the clean run's last token at the second-to-last position
        return logits[:, -2].log_softmax(-1).gather(-1, patching.tile(answer, len(logits))[:, None])[:, 0]

    return corrupted, cache, metric


@pytest.mark.parametrize("name, model", list(models()), ids=lambda x: x if isinstance(x, str) else "")
@pytest.mark.parametrize("site, by", list(TL_SWEEPS))
def test_equals_transformer_lens(name, model, site, by):
    if site in ("mlp_out", "resid_mid") and model.cfg.attn_only:
        pytest.skip("attention-only model")
    corrupted, cache, metric = runs(model)
    expected = TL_SWEEPS[site, by](model, corrupted, cache, lambda logits: metric(logits).mean())
    got = patching.patch_sweep(model, corrupted, cache, site, by, metric)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected.float(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("site", ["resid_post", "attn_out"])
def test_by_layer_equals_a_plain_hooked_loop(site):
    """Whole-layer patches (TransformerLens has no such sweep): a per-layer hooked forward."""
    model = gpt2_like()
    corrupted, cache, metric = runs(model)
    expected = torch.stack([
        metric(model.run_with_hooks(corrupted, fwd_hooks=[(f"blocks.{layer}.hook_{site}", lambda act, hook: cache[hook.name])])).mean()
        for layer in range(model.cfg.n_layers)
    ])
    torch.testing.assert_close(patching.patch_sweep(model, corrupted, cache, site, "layer", metric), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("site, by", [("resid_pre", "layer_pos"), ("z", "head_pos"), ("z", "head")])
def test_chunks_do_not_change_results(site, by):
    model = gpt2_like()
    corrupted, cache, metric = runs(model)
    whole = patching.patch_sweep(model, corrupted, cache, site, by, metric)
    one_at_a_time = patching.patch_sweep(model, corrupted, cache, site, by, metric, memory_budget=1)
    torch.testing.assert_close(one_at_a_time, whole, atol=1e-6, rtol=0)


def test_positions_subset_matches_the_full_sweep():
    model = gpt2_like()
    corrupted, cache, metric = runs(model)
    full = patching.patch_sweep(model, corrupted, cache, "attn_out", "layer_pos", metric)
    part = patching.patch_sweep(model, corrupted, cache, "attn_out", "layer_pos", metric, positions=[2, 5])
    torch.testing.assert_close(part, full[:, [2, 5]], atol=1e-6, rtol=0)


@pytest.mark.parametrize("site, by", [("resid_pre", "layer_pos"), ("attn_out", "layer"), ("z", "head_pos"), ("z", "head")])
def test_attribution_patching_is_the_first_order_term(site, by):
    """Against exact patching of a source that is a tiny step from the target run, where the
    first-order estimate must agree to second order."""
    model = gpt2_like()
    corrupted, _, metric = runs(model)
    _, target = model.run_with_cache(corrupted)
    g = torch.Generator().manual_seed(2)
    eps = 1e-3
    source = {name: act + eps * torch.randn(act.shape, generator=g) for name, act in target.items()}
    exact = patching.patch_sweep(model, corrupted, source, site, by, metric) - metric(model(corrupted)).mean()
    approx = patching.attribution_patch(model, corrupted, source, site, by, metric)
    assert approx.shape == exact.shape
    torch.testing.assert_close(approx, exact, atol=5e-5, rtol=1e-2)


def test_bad_input_is_refused():
    model = gpt2_like()
    corrupted, cache, metric = runs(model)
    with pytest.raises(ValueError, match="unknown sweep 'pos'"):
        patching.patch_sweep(model, corrupted, cache, "z", "pos", metric)
    with pytest.raises(ValueError, match="site 'resid_pre' cannot be swept by 'head'"):
        patching.patch_sweep(model, corrupted, cache, "resid_pre", "head", metric)
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 7\)"):
        patching.patch_sweep(model, corrupted, cache, "attn_out", "layer_pos", metric, positions=[7])
    with pytest.raises(ValueError, match="source has no activation 'blocks.0.hook_mlp_out'"):
        patching.patch_sweep(model, corrupted, {}, "mlp_out", "layer", metric)
