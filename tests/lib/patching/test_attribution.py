"""lib.patching.attribution: attribution patching against finite differences."""

import pytest
import torch
from patching_cases import tiny
from transformer_lens.utilities import get_act_name

from lib import patching


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


@pytest.mark.parametrize(
    "site, by",
    [
        ("resid_pre", "layer_pos"),
        ("resid_mid", "layer"),
        ("resid_post", "layer_pos"),
        ("attn_out", "layer_pos"),
        ("mlp_out", "layer"),
        ("z", "head_pos"),
        ("z", "head"),
    ],
)
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
    index = {
        "layer": [(slice(None),)],
        "layer_pos": [(slice(None), p) for p in range(n_pos)],
        "head": [(slice(None), slice(None), h) for h in heads],
        "head_pos": [(slice(None), p, h) for p in range(n_pos) for h in heads],
    }[by]
    expected = torch.stack(
        [
            torch.stack([finite_difference(model, corrupted, source, site, layer, i, metric) for i in index])
            for layer in range(model.cfg.n_layers)
        ]
    ).view(got.shape)
    torch.testing.assert_close(got, expected.float(), atol=1e-6, rtol=1e-4)
    # the same from cached source activations, per prompt
    per_prompt = patching.attribution_patch(model, corrupted, source, site, by, metric, per_prompt=True)
    torch.testing.assert_close(per_prompt.mean(-1), got, atol=1e-6, rtol=1e-6)
