"""lib.patching against TransformerLens's one-forward-per-patch loops (transformer_lens.patching),
against hand-written hooked loops where TransformerLens has no sweep, and attribution patching
against finite differences."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import patching as tl_patching
from transformer_lens.utilities import get_act_name

from lib import models, patching, zoo

TL_SWEEPS = {  # TransformerLens's sweep for each (site, sweep)
    ("resid_pre", "layer_pos"): tl_patching.get_act_patch_resid_pre,
    ("resid_mid", "layer_pos"): tl_patching.get_act_patch_resid_mid,
    ("attn_out", "layer_pos"): tl_patching.get_act_patch_attn_out,
    ("mlp_out", "layer_pos"): tl_patching.get_act_patch_mlp_out,
    ("z", "head_pos"): tl_patching.get_act_patch_attn_head_out_by_pos,
    ("z", "head"): tl_patching.get_act_patch_attn_head_out_all_pos,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.no_grad():
        yield
    torch.set_num_threads(threads)


def tiny(**overrides) -> HookedTransformer:
    """A random-weight GPT-2-architecture model: LayerNorm, GELU MLP, learned positions."""
    torch.manual_seed(0)
    cfg = dict(n_layers=3, d_model=64, n_heads=4, d_head=16, d_mlp=256, n_ctx=32, d_vocab=100, act_fn="gelu",
               normalization_type="LN")
    return HookedTransformer(HookedTransformerConfig(**(cfg | overrides))).eval()


MODELS = {
    "gpt2-arch": lambda: tiny(),
    # rotary positions, RMSNorm, gated MLP, grouped-query attention: the key-value prefix path
    "rotary-gqa": lambda: tiny(positional_embedding_type="rotary", rotary_dim=16, normalization_type="RMS",
                               act_fn="silu", gated_mlp=True, n_key_value_heads=2),
    # shortformer positions (added to queries and keys only) and parallel attention + MLP
    "shortformer-parallel": lambda: tiny(positional_embedding_type="shortformer", parallel_attn_mlp=True),
    # the zoo organisms: attention-only (induction-2l) and GPT-2-style with MLPs (language-4l)
    **{name: (lambda name=name: models.load_model(name, device="cpu")) for name in zoo.RECIPES},
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


def every_position_metric(logits):
    """Reads every position, so positions before a patch come from the target run's logits."""
    return logits.log_softmax(-1)[..., :5].sum((-1, -2)).mean()


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("site, by", list(TL_SWEEPS))
def test_equals_transformer_lens(name, site, by):
    model = get_model(name)
    if site in ("mlp_out", "resid_mid") and model.cfg.attn_only or site == "resid_mid" and model.cfg.parallel_attn_mlp:
        pytest.skip(f"no {site} in this architecture")
    corrupted, cache, metric = runs(model)
    expected = TL_SWEEPS[site, by](model, corrupted, cache, lambda logits: metric(logits).mean())
    stats: dict = {}
    got = patching.patch_sweep(model, corrupted, cache, site, by, metric, logit_positions=[-1], stats=stats)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-4
    # the prompts agree on positions 0-2: nothing to patch there
    assert stats["skipped"] > 0 if by.endswith("pos") else min(start for _, start, _, _ in stats["groups"]) == 3
    # every patch computed; and one forward pass per position (no merged positions)
    got = patching.patch_sweep(model, corrupted, cache, site, by, metric, skip_identical=False)
    assert (got - expected).abs().max() <= 1e-4
    got = patching.patch_sweep(model, corrupted, cache, site, by, metric, logit_positions=[-1], min_rows=1, stats=stats)
    assert (got - expected).abs().max() <= 1e-4
    if by.endswith("pos"):
        assert all(end - start == 1 for _, start, end, _ in stats["groups"] if end < corrupted.shape[1])
    if name != "gpt2-arch":
        return
    # a metric reading every position of the full logits: earlier positions are the target run's
    expected = TL_SWEEPS[site, by](model, corrupted, cache, every_position_metric)
    got = patching.patch_sweep(model, corrupted, cache, site, by, every_position_metric)
    assert (got - expected).abs().max() <= 1e-4


def test_drop_in_functions_and_block_every():
    model = get_model("gpt2-arch")
    corrupted, cache, metric = runs(model)
    tl_metric = lambda logits: metric(logits).mean()  # noqa: E731
    expected = tl_patching.get_act_patch_block_every(model, corrupted, cache, tl_metric)
    got = patching.get_act_patch_block_every(model, corrupted, cache, tl_metric)
    assert got.shape == expected.shape == (3, model.cfg.n_layers, corrupted.shape[1])
    assert (got - expected).abs().max() <= 1e-4
    for name in ("resid_mid", "attn_head_out_all_pos"):
        expected = getattr(tl_patching, f"get_act_patch_{name}")(model, corrupted, cache, tl_metric)
        got = getattr(patching, f"get_act_patch_{name}")(model, corrupted, cache, tl_metric)
        assert (got - expected).abs().max() <= 1e-4


def hooked_loop(model, corrupted, source, site, layers, positions, metric):
    """The obvious reference: one hooked forward per (layer, position); position None: all."""
    out = []
    for layer in layers:
        row = []
        for pos in positions:
            def hook(act, hook, pos=pos):
                act = act.clone()
                act[:, slice(None) if pos is None else pos] = source[hook.name][:, slice(None) if pos is None else pos]
                return act
            row.append(metric(model.run_with_hooks(corrupted, fwd_hooks=[(get_act_name(site, layer), hook)])).mean())
        out.append(torch.stack(row))
    return torch.stack(out)


@pytest.mark.parametrize("site", ["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"])
def test_layer_sweeps_and_resid_post_equal_a_hooked_loop(site):
    """Sweeps TransformerLens has no function for: whole layers, and resid_post by position."""
    model = get_model("gpt2-arch")
    corrupted, cache, metric = runs(model)
    layers = range(model.cfg.n_layers)
    expected = hooked_loop(model, corrupted, cache, site, layers, [None], metric)[:, 0]
    assert (patching.patch_sweep(model, corrupted, cache, site, "layer", metric) - expected).abs().max() <= 1e-4
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
        tl_metric = lambda logits: metric(logits).mean()  # noqa: E731
        for (site, by), source in [(("z", "head"), mean_z), (("z", "head_pos"), cache), (("attn_out", "layer_pos"), cache)]:
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


@pytest.mark.parametrize("site, by", [("resid_pre", "layer_pos"), ("mlp_out", "layer_pos"), ("z", "head_pos"), ("z", "head")])
def test_chunks_do_not_change_results(site, by):
    model = get_model("gpt2-arch")
    corrupted, cache, metric = runs(model, batch=4)
    whole_stats: dict = {}
    whole = patching.patch_sweep(model, corrupted, cache, site, by, metric, stats=whole_stats)
    split_stats: dict = {}
    split = patching.patch_sweep(model, corrupted, cache, site, by, metric, memory_budget=1, stats=split_stats)
    computed = split_stats["patches"] - split_stats["skipped"]
    assert split_stats["chunks"] == split_stats["unembeds"] == computed  # one patch at a time
    assert whole_stats["unembeds"] < computed and whole_stats["chunks"] <= computed
    # a chunk changes only how many rows each matrix multiply sees: equal up to BLAS rounding
    torch.testing.assert_close(split, whole, atol=1e-6, rtol=0)


def test_subsets_per_prompt_and_unvmappable_metrics():
    model = get_model("gpt2-arch")
    corrupted, cache, metric = runs(model)
    full = patching.patch_sweep(model, corrupted, cache, "z", "head_pos", metric)
    part = patching.patch_sweep(model, corrupted, cache, "z", "head_pos", metric, layers=[2, 0], positions=[-1, 3],
                                heads=[1])
    assert part.shape == (2, 2, 1)
    assert (part - full[[2, 0]][:, [6, 3]][:, :, [1]]).abs().max() <= 1e-6
    per_prompt = patching.patch_sweep(model, corrupted, cache, "z", "head_pos", metric, per_prompt=True)
    assert per_prompt.shape == (*full.shape, 2)
    assert (per_prompt.mean(-1) - full).abs().max() <= 1e-6
    first = tl_patching.get_act_patch_attn_head_out_by_pos(model, corrupted, cache, lambda logits: metric(logits)[0])
    assert (per_prompt[..., 0] - first).abs().max() <= 1e-4
    item = patching.patch_sweep(model, corrupted, cache, "z", "head_pos", lambda x: metric(x).mean().item())
    assert (item - full).abs().max() <= 1e-6


# --------------------------------------------------------------------------------------------
# attribution patching


def finite_difference(model, corrupted, source, site, layer, index, metric, eps=1e-4):
    """d metric / d t at t = 0 of the corrupted run with t * (source - corrupted) added to the
    site at ``index`` (positions, heads): a central difference in float64."""
    name = get_act_name(site, layer)

    def value(t):
        def hook(act, hook):
            delta = torch.zeros_like(act)
            delta[index] = (source[name] - act)[index]
            return act + t * delta
        return metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)])).mean()

    return (value(eps) - value(-eps)) / (2 * eps)


@pytest.mark.parametrize("site, by", [("resid_pre", "layer_pos"), ("resid_mid", "layer"), ("resid_post", "layer_pos"),
                                      ("attn_out", "layer_pos"), ("mlp_out", "layer"), ("z", "head_pos"), ("z", "head")])
def test_attribution_patching_is_the_gradient_times_the_difference(site, by, monkeypatch):
    model = tiny(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=64, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    clean, corrupted = torch.randint(100, (2, 2, 5), generator=g)
    answer = clean[:, -1]

    def metric(logits):
        return logits[:, -1].log_softmax(-1).gather(-1, answer[:, None])[:, 0]

    forwards, backwards = [], []
    model.blocks[0].hook_resid_pre.add_hook(lambda act, hook: forwards.append(1))
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: backwards.append(1) or grad(*a, **k))
    try:
        got = patching.attribution_patch(model, corrupted, clean, site, by, metric)
    finally:
        model.reset_hooks()
    assert len(forwards) == 2 and len(backwards) == 1  # the clean run, the corrupted run, one backward
    assert all(p.grad is None for p in model.parameters())

    _, source = model.run_with_cache(clean)
    n_pos, heads = corrupted.shape[1], range(model.cfg.n_heads)
    index = {"layer": [(slice(None),)], "layer_pos": [(slice(None), p) for p in range(n_pos)],
             "head": [(slice(None), slice(None), h) for h in heads],
             "head_pos": [(slice(None), p, h) for p in range(n_pos) for h in heads]}[by]
    expected = torch.stack([
        torch.stack([finite_difference(model, corrupted, source, site, layer, i, metric) for i in index])
        for layer in range(model.cfg.n_layers)
    ]).view(got.shape)
    torch.testing.assert_close(got, expected.float(), atol=1e-6, rtol=1e-4)
    # the same from cached source activations, per prompt
    per_prompt = patching.attribution_patch(model, corrupted, source, site, by, metric, per_prompt=True)
    torch.testing.assert_close(per_prompt.mean(-1), got, atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_input_is_refused_before_any_forward_pass(monkeypatch):
    model = get_model("gpt2-arch")
    corrupted, cache, metric = runs(model)

    def no_forward(*args, **kwargs):
        raise AssertionError("a forward pass ran before the input was checked")

    monkeypatch.setattr(model, "forward", no_forward)
    cases = [
        (dict(by="pos"), "unknown sweep 'pos'; allowed: layer, layer_pos, head, head_pos"),
        (dict(site="q"), "unknown site 'q'; allowed: resid_pre"),
        (dict(site="resid_pre", by="head"), "site 'resid_pre' cannot be swept by 'head'; allowed: z"),
        (dict(layers=[3]), r"layers must lie in \[0, 3\) .*; got \[3\]"),
        (dict(heads=[4]), r"heads must lie in \[0, 4\) .*; got \[4\]"),
        (dict(positions=[7]), r"positions must lie in \[0, 7\) .*; got \[7\]"),
        (dict(logit_positions=[-8]), r"logit_positions must lie in \[0, 7\)"),
        (dict(by="head", positions=[1]), "positions only apply to the sweeps 'layer_pos' and 'head_pos'"),
        (dict(source={}), "source has no activation 'blocks.0.attn.hook_z'"),
        (dict(source={k: cache[k][:1] for k in cache}), r"source\['blocks.0.attn.hook_z'\] has shape \(1, 7, 4, 16\); "
                                                         r"the target run's is \(2, 7, 4, 16\)"),
        (dict(tokens=corrupted.float()), "tokens must be integer token ids"),
        (dict(tokens=torch.zeros(2, 33, dtype=torch.long)), "sequence length 33 exceeds the model's context n_ctx=32"),
        (dict(tokens=corrupted + 100), r"token ids must lie in \[0, d_vocab=100\)"),
        (dict(heads=[]), "heads is empty"),
        (dict(memory_budget=0), "memory_budget must be a positive number of bytes"),
    ]
    for overrides, message in cases:
        kwargs = dict(model=model, tokens=corrupted, source=cache, site="z", by="head_pos", metric=metric) | overrides
        with pytest.raises(ValueError, match=message):
            patching.patch_sweep(**kwargs)
    with pytest.raises(ValueError, match="site 'mlp_out' does not exist in an attention-only model"):
        patching.patch_sweep(tiny(attn_only=True), corrupted, cache, "mlp_out", "layer", metric)
    with pytest.raises(ValueError, match="heads must lie in"):
        patching.attribution_patch(model, corrupted, cache, "z", "head", metric, heads=[-5])
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"per_prompt=True needs a metric returning one value per prompt, shape \[2\]"):
        patching.patch_sweep(model, corrupted, cache, "z", "head", lambda x: metric(x).mean(), per_prompt=True)
