"""lib.saes.training: the cache against TransformerLens's full cache, the batches, a short SAELens run."""

import itertools

import pytest
import torch
from sae_cases import BOS, LAYER
from transformer_lens.utilities import get_act_name

from lib import saes


@pytest.mark.parametrize("hook", [get_act_name("resid_pre", LAYER), get_act_name("post", 0)])
def test_cache_activations_are_the_hook_at_every_non_bos_position(model, tokens, hook):
    _, cache = model.run_with_cache(tokens)
    want = [cache[hook][b, p] for b, p in itertools.product(range(6), range(12))]
    want = torch.stack([w for w, t in zip(want, tokens.flatten()) if t != BOS])
    got = saes.cache_activations(model, tokens, hook, BOS, batch_size=4)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_activation_batches_cover_each_epoch_once():
    acts = torch.arange(10.0)[:, None]
    stream = saes.activation_batches(acts, 3, seed=0)
    for _ in range(2):  # two epochs: 3 batches each, the 10th row dropped
        rows = torch.cat([next(stream) for _ in range(3)]).flatten()
        assert len(set(rows.tolist())) == 9
    with pytest.raises(ValueError, match="batch_size 11 exceeds the 10"):
        next(saes.activation_batches(acts, 11, seed=0))


def test_training_lowers_the_loss_and_topk_keeps_k_latents(model, tokens):
    acts = torch.randn(2000, 8) @ torch.randn(8, model.cfg.d_model)  # 8 directions span the data
    spec = saes.Spec("topk", d_sae=32, sparsity=4, steps=100, batch_size=256, lr=3e-3, dead_window=20)
    sae, log = saes.train(acts, spec, seed=0, log_every=25)
    assert [row["step"] for row in log] == [25, 50, 75, 100]
    assert log[-1]["mse_loss"] < 0.6 * log[0]["mse_loss"]
    assert {row["l0"] for row in log} == {4.0}
    codes = saes.encode(sae, acts)
    assert ((codes > 0).sum(-1) <= 4).all()
    with pytest.raises(ValueError, match="batch_size 2048 exceeds"):
        saes.train(acts, saes.Spec("topk", 32, 4), seed=0)
