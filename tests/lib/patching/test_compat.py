"""lib.patching.compat: the drop-ins for transformer_lens.patching's functions give its results
and carry its names."""

from patching_cases import TL_SWEEPS, get_model, runs
from transformer_lens import patching as tl_patching

from lib import patching


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


def test_generated_drop_ins_are_named_after_what_they_replace():
    assert {getattr(tl_patching, name) for name in patching.TL_FUNCTIONS} == set(TL_SWEEPS.values())
    for name, (site, by) in patching.TL_FUNCTIONS.items():
        assert getattr(tl_patching, name) is TL_SWEEPS[site, by]
        ours = getattr(patching, name)
        assert (ours.__name__, ours.__qualname__, ours.__module__) == (name, name, "lib.patching.compat")
        assert ours.__doc__.startswith(f"Drop-in for ``transformer_lens.patching.{name}``")
