"""lib.hooks.reduce_pass against run_with_cache: the same activations, none kept."""

import torch

from lib import models
from lib.hooks import every_layer, reduce_pass


def test_reducers_see_exactly_the_cached_activations():
    model = models.load_model("induction-2l", "cpu")
    tokens = torch.randint(0, 512, (3, 20))
    _, cache = model.run_with_cache(tokens)
    seen: dict[str, torch.Tensor] = {}

    def keep(act, hook):
        assert not act.requires_grad
        seen[hook.name] = act.clone()

    reduce_pass(model, tokens, [(every_layer(model, "pattern"), keep), (every_layer(model, "v"), keep)])
    expected = {f"blocks.{layer}.attn.hook_{a}" for layer in range(2) for a in ("pattern", "v")}
    assert set(seen) == expected
    for name in expected:
        torch.testing.assert_close(seen[name], cache[name], rtol=0, atol=0)


def test_every_layer_names_one_activation_per_layer():
    model = models.load_model("language-4l", "cpu")
    accepts = every_layer(model, "resid_pre")
    assert [accepts(f"blocks.{layer}.hook_resid_pre") for layer in range(5)] == [True] * 4 + [False]
    assert not accepts("blocks.0.hook_resid_post")
