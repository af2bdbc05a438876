"""lib.patching.engine: patch_sweep against TransformerLens's one-forward-per-patch loops
(transformer_lens.patching), and against hand-written hooked loops where TransformerLens has no
sweep."""

import pytest
import torch
from patching_cases import MODELS, TL_SWEEPS, get_model, runs, tiny
from transformer_lens import patching as tl_patching
from transformer_lens.utilities import get_act_name

from lib import patching


def every_position_metric(logits):
    """Reads every position, so positions before a patch come from the target run's logits."""
    return logits.log_softmax(-1)[..., :5].sum((-1, -2)).mean()


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("site, by", list(TL_SWEEPS))
def test_equals_transformer_lens(name, site, by):
    model = get_model(name)
    cfg = model.cfg
    if site in ("mlp_out", "resid_mid") and cfg.attn_only or site == "resid_mid" and cfg.parallel_attn_mlp:
        pytest.skip(f"no {site} in this architecture")
    corrupted, cache, metric = runs(model)
    expected = TL_SWEEPS[site, by](model, corrupted, cache, lambda logits: metric(logits).mean())
    stats: dict = {}
    got = patching.patch_sweep(model, corrupted, cache, site, by, metric, logit_positions=[-1], stats=stats)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-4
    # the prompts agree on positions 0-2: nothing to patch there
    first_start = min(start for _, start, _, _ in stats["groups"])
    assert stats["skipped"] > 0 if by.endswith("pos") else first_start == 3
    # every patch computed; and one forward pass per position (no merged positions)
    got = patching.patch_sweep(model, corrupted, cache, site, by, metric, skip_identical=False)
    assert (got - expected).abs().max() <= 1e-4
    got = patching.patch_sweep(
        model, corrupted, cache, site, by, metric, logit_positions=[-1], min_rows=1, stats=stats
    )
    assert (got - expected).abs().max() <= 1e-4
    if by.endswith("pos"):
        assert all(end - start == 1 for _, start, end, _ in stats["groups"] if end < corrupted.shape[1])
    if name != "gpt2-arch":
        return
    # a metric reading every position of the full logits: earlier positions are the target run's
    expected = TL_SWEEPS[site, by](model, corrupted, cache, every_position_metric)
    got = patching.patch_sweep(model, corrupted, cache, site, by, every_position_metric)
    assert (got - expected).abs().max() <= 1e-4


def hooked_loop(model, corrupted, source, site, layers, positions, metric):
    """The obvious reference: one hooked forward per (layer, position); position None: all."""
    out = []
    for layer in layers:
        row = []
        for pos in positions:

            def hook(act, hook, pos=pos):
                act = act.clone()
                at = slice(None) if pos is None else pos
                act[:, at] = source[hook.name][:, at]
                return act

            logits = model.run_with_hooks(corrupted, fwd_hooks=[(get_act_name(site, layer), hook)])
            row.append(metric(logits).mean())
        out.append(torch.stack(row))
    return torch.stack(out)


@pytest.mark.parametrize("site", ["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"])
def test_layer_sweeps_and_resid_post_equal_a_hooked_loop(site):
    """Sweeps TransformerLens has no function for: whole layers, and resid_post by position."""
    model = get_model("gpt2-arch")
    corrupted, cache, metric = runs(model)
    layers = range(model.cfg.n_layers)
    expected = hooked_loop(model, corrupted, cache, site, layers, [None], metric)[:, 0]
    got = patching.patch_sweep(model, corrupted, cache, site, "layer", metric)
    assert (got - expected).abs().max() <= 1e-4
    if site == "resid_post":
        expected = hooked_loop(model, corrupted, cache, site, layers, range(corrupted.shape[1]), metric)
        got = patching.patch_sweep(model, corrupted, cache, site, "layer_pos", metric, logit_positions=[-1])
        assert (got - expected).abs().max() <= 1e-4


def test_mean_ablation_source_and_bidirectional_attention():
    """A source that is no run at all (an expanded mean, as the chapter's mean-ablation), and a
    model whose attention is bidirectional (no causal prefix to reuse)."""
    for model in (get_model("gpt2-arch"), tiny(attention_dir="bidirectional")):
        corrupted, cache, metric = runs(model)
        names = [get_act_name("z", layer) for layer in range(model.cfg.n_layers)]
        mean_z = {name: cache[name].mean((0, 1), keepdim=True).expand_as(cache[name]) for name in names}
        tl_metric = lambda logits, metric=metric: metric(logits).mean()  # noqa: E731
        cases = [(("z", "head"), mean_z), (("z", "head_pos"), cache), (("attn_out", "layer_pos"), cache)]
        for (site, by), source in cases:
            expected = TL_SWEEPS[site, by](model, corrupted, source, tl_metric)
            got = patching.patch_sweep(model, corrupted, source, site, by, metric)
            assert (got - expected).abs().max() <= 1e-4, (model.cfg.attention_dir, site, by)


def test_left_padding_masks_like_transformer_lens():
    """With a left-padding tokenizer TransformerLens masks pad tokens and shifts positions."""
    model = get_model("induction-2l")
    g = torch.Generator().manual_seed(4)
    clean = torch.randint(512, (2, 8), generator=g)
    clean[0, :2] = model.tokenizer.pad_token_id  # prompt 0 is two tokens shorter
    corrupted = clean.clone()
    corrupted[:, 5] = (clean[:, 5] + 1) % 512
    answer = clean[:, 2]
    metric = lambda logits: logits[:, -1].log_softmax(-1)[torch.arange(2), answer].mean()  # noqa: E731
    side = model.tokenizer.padding_side
    model.tokenizer.padding_side = "left"
    try:
        _, cache = model.run_with_cache(clean)
        for site, by in [("resid_pre", "layer_pos"), ("z", "head_pos")]:
            expected = TL_SWEEPS[site, by](model, corrupted, cache, metric)
            got = patching.patch_sweep(model, corrupted, cache, site, by, metric)
            assert (got - expected).abs().max() <= 1e-4
    finally:
        model.tokenizer.padding_side = side


def test_subsets_per_prompt_and_unvmappable_metrics():
    model = get_model("gpt2-arch")
    corrupted, cache, metric = runs(model)
    full = patching.patch_sweep(model, corrupted, cache, "z", "head_pos", metric)
    part = patching.patch_sweep(
        model, corrupted, cache, "z", "head_pos", metric, layers=[2, 0], positions=[-1, 3], heads=[1]
    )
    assert part.shape == (2, 2, 1)
    assert (part - full[[2, 0]][:, [6, 3]][:, :, [1]]).abs().max() <= 1e-6
    per_prompt = patching.patch_sweep(model, corrupted, cache, "z", "head_pos", metric, per_prompt=True)
    assert per_prompt.shape == (*full.shape, 2)
    assert (per_prompt.mean(-1) - full).abs().max() <= 1e-6
    first_metric = lambda logits: metric(logits)[0]  # noqa: E731
    first = tl_patching.get_act_patch_attn_head_out_by_pos(model, corrupted, cache, first_metric)
    assert (per_prompt[..., 0] - first).abs().max() <= 1e-4
    item = patching.patch_sweep(model, corrupted, cache, "z", "head_pos", lambda x: metric(x).mean().item())
    assert (item - full).abs().max() <= 1e-6
