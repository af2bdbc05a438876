"""lib.patching.request: bad input is refused, with a message saying what is wrong, before any
forward pass."""

import pytest
import torch
from patching_cases import get_model, runs, tiny

from lib import patching


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
        (
            dict(source={k: cache[k][:1] for k in cache}),
            r"source\['blocks.0.attn.hook_z'\] has shape \(1, 7, 4, 16\); "
            r"the target run's is \(2, 7, 4, 16\)",
        ),
        (dict(tokens=corrupted.float()), "tokens must be integer token ids"),
        (
            dict(tokens=torch.zeros(2, 33, dtype=torch.long)),
            "sequence length 33 exceeds the model's context n_ctx=32",
        ),
        (dict(tokens=corrupted + 100), r"token ids must lie in \[0, d_vocab=100\)"),
        (dict(heads=[]), "heads is empty"),
        (dict(memory_budget=0), "memory_budget must be a positive number of bytes"),
    ]
    defaults = dict(model=model, tokens=corrupted, source=cache, site="z", by="head_pos", metric=metric)
    for overrides, message in cases:
        kwargs = defaults | overrides
        with pytest.raises(ValueError, match=message):
            patching.patch_sweep(**kwargs)
    with pytest.raises(ValueError, match="site 'mlp_out' does not exist in an attention-only model"):
        patching.patch_sweep(tiny(attn_only=True), corrupted, cache, "mlp_out", "layer", metric)
    with pytest.raises(ValueError, match="heads must lie in"):
        patching.attribution_patch(model, corrupted, cache, "z", "head", metric, heads=[-5])
    monkeypatch.undo()
    mean_metric = lambda x: metric(x).mean()  # noqa: E731
    with pytest.raises(
        ValueError,
        match=r"per_prompt=True needs a metric returning one value per prompt, "
        r"shape \[2\]",
    ):
        patching.patch_sweep(model, corrupted, cache, "z", "head", mean_metric, per_prompt=True)
