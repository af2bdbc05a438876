"""lib.saes.training: the cache against TransformerLens's full cache, the batches, a short SAELens run."""

import itertools

import pytest
import torch
from sae_cases import BOS, LAYER, make_random_sae
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
    with torch.no_grad():  # as the book's setup leaves every chapter
        sae, log = saes.train(acts, spec, seed=0, log_every=25)
    assert [row["step"] for row in log] == [25, 50, 75, 100]
    assert log[-1]["mse_loss"] < 0.6 * log[0]["mse_loss"]
    assert {row["l0"] for row in log} == {4.0}
    codes = saes.encode(sae, acts)
    assert ((codes > 0).sum(-1) <= 4).all()
    with pytest.raises(ValueError, match="batch_size 2048 exceeds"):
        saes.train(acts, saes.Spec("topk", 32, 4), seed=0)


def test_resampling_points_dead_latents_at_the_worst_reconstructed_input(model):
    """Three inputs far off everything the SAE reconstructs carry almost all the squared-error
    mass, so the three dead latents are reborn along them, one each; live latents and their Adam
    moments stay."""
    sae = make_random_sae(model.cfg.d_model)  # a fresh one: this test changes it
    g = torch.Generator().manual_seed(0)
    sae_in = torch.randn(64, sae.cfg.d_in, generator=g)
    sae_in[[7, 20, 41]] *= 100
    optimizer = torch.optim.Adam(sae.parameters())
    sae(sae_in).pow(2).sum().backward()
    optimizer.step()
    dead = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    dead[[1, 5, 30]] = True
    before = {name: p.detach().clone() for name, p in sae.named_parameters()}
    moments = {name: optimizer.state[p]["exp_avg"].clone() for name, p in sae.named_parameters()}
    dec_norm = before["W_dec"][~dead].norm(dim=-1).mean()
    enc_norm = before["W_enc"][:, ~dead].norm(dim=0).mean()
    assert saes.resample_dead(sae, optimizer, dead, sae_in, torch.Generator().manual_seed(1)) == 3
    directions = sae_in - before["b_dec"]
    directions /= directions.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        rows = [int((directions @ sae.W_dec[i]).argmax()) for i in (1, 5, 30)]
        assert sorted(rows) == [7, 20, 41]
        for i, row in zip((1, 5, 30), rows):
            assert torch.allclose(sae.W_dec[i], directions[row] * dec_norm, atol=1e-5)
            assert torch.allclose(sae.W_enc[:, i], directions[row] * 0.2 * enc_norm, atol=1e-5)
            assert sae.b_enc[i] == 0
        assert torch.equal(sae.W_dec[~dead], before["W_dec"][~dead])
        assert torch.equal(sae.W_enc[:, ~dead], before["W_enc"][:, ~dead])
        assert torch.equal(sae.b_dec, before["b_dec"])
    for name, p in sae.named_parameters():
        m = optimizer.state[p]["exp_avg"]
        if name in ("W_dec", "b_enc"):
            assert (m[dead] == 0).all() and torch.equal(m[~dead], moments[name][~dead])
        elif name == "W_enc":
            assert (m[:, dead] == 0).all() and torch.equal(m[:, ~dead], moments[name][:, ~dead])
        else:
            assert torch.equal(m, moments[name])
    assert saes.resample_dead(sae, optimizer, torch.zeros_like(dead), sae_in, g) == 0


def test_a_spec_with_resampling_resamples_after_its_steps():
    acts = torch.randn(3000, 8) * torch.linspace(0.1, 3, 8)
    spec = saes.Spec(
        "topk", 64, 3, steps=30, batch_size=256, aux_coefficient=0, resample_at=(10, 20), dead_window=2
    )
    assert spec.name == "topk-64-k3-noaux-resample"
    assert saes.Spec("topk", 64, 3, aux_coefficient=0, resample_at=(1,), resample_scale=1.0).name.endswith(
        "-x1"
    )
    _, log = saes.train(acts, spec, seed=0, log_every=10)
    resampled = [row for row in log if "resampled" in row]
    assert [row["step"] for row in resampled] == [10, 20] and resampled[0]["resampled"] > 0
