"""lib.saes.metrics against loops and against SAELens's own evals on the same SAE."""

import pytest
import torch
from sae_cases import BOS, LAYER, make_random_sae
from sae_lens.evals import ExplainedVarianceCalculator, get_recons_loss
from sae_lens.training.activation_scaler import ActivationScaler
from transformer_lens.utilities import get_act_name

from lib import saes


def test_sparsity_against_a_loop():
    codes = torch.relu(torch.randn(50, 7) - 0.5)
    codes[:, 3] = 0
    got = saes.sparsity(codes)
    assert got["l0"] == pytest.approx(sum(sum(v > 0 for v in row) for row in codes.tolist()) / 50)
    density = [sum(r[j] > 0 for r in codes.tolist()) / 50 for j in range(7)]
    torch.testing.assert_close(got["density"], torch.tensor(density))
    assert got["dead_frac"] == pytest.approx(1 / 7)


def test_explained_variance_matches_sae_lens():
    x = torch.randn(300, 16) + 3.0  # a large mean, as residual streams have
    x_hat = x + 0.5 * torch.randn_like(x)
    calc = ExplainedVarianceCalculator()
    for chunk, chunk_hat in zip(x.split(70), x_hat.split(70)):
        calc.add_batch(chunk_hat, chunk)
    # SAELens sums in float32
    assert saes.explained_variance(x, x_hat) == pytest.approx(calc.compute(), abs=1e-6)


def test_splice_losses_match_sae_lens_get_recons_loss(model, tokens, random_sae):
    """Without <bos> in the prompts the two definitions coincide (SAELens's zero-ablation run
    zeroes the positions it is told to ignore too; lib leaves them alone in both runs)."""
    got = saes.splice_losses(model, random_sae, tokens, LAYER, bos=-1, batch_size=4)
    hook = get_act_name("resid_pre", LAYER)
    ref = get_recons_loss(
        random_sae, model, ActivationScaler(), tokens, compute_kl=True, compute_ce_loss=True, hook_name=hook
    )
    ref = {k: v.mean().item() for k, v in ref.items()}
    ce_clean, ce_sae, ce_zero = (
        ref["ce_loss_without_sae"],
        ref["ce_loss_with_sae"],
        ref["ce_loss_with_ablation"],
    )
    kl_sae, kl_zero = ref["kl_div_with_sae"], ref["kl_div_with_ablation"]
    assert (got["ce_clean"], got["ce_sae"], got["ce_zero"]) == pytest.approx(
        (ce_clean, ce_sae, ce_zero), rel=1e-5
    )
    assert (got["kl_sae"], got["kl_zero"]) == pytest.approx((kl_sae, kl_zero), rel=1e-4)
    # SAELens's summary scores (run_evals): the CE loss score and the KL divergence score
    assert got["ce_recovered"] == pytest.approx((ce_zero - ce_sae) / (ce_zero - ce_clean), rel=1e-4)
    assert got["kl_recovered"] == pytest.approx((kl_zero - kl_sae) / kl_zero, rel=1e-4)


def test_splice_losses_leave_bos_positions_alone(model, tokens, random_sae):
    keep = (tokens != BOS)[..., None]
    hook = get_act_name("resid_pre", LAYER)
    clean = model(tokens, return_type="loss")
    runs = {
        "sae": lambda x, hook: torch.where(keep, random_sae.decode(random_sae.encode(x)), x),
        "zero": lambda x, hook: torch.where(keep, 0.0, x),
    }
    got = saes.splice_losses(model, random_sae, tokens, LAYER, BOS, batch_size=6)
    assert got["ce_clean"] == pytest.approx(clean.item(), rel=1e-5)
    for name, fn in runs.items():
        want = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook, fn)])
        assert got[f"ce_{name}"] == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("rescaled", [True, False], ids=["codes scaled by decoder norms", "plain decoder"])
def test_decoder_directions_are_what_a_unit_of_each_feature_adds_to_the_reconstruction(rescaled):
    sae = make_random_sae(16)  # its decoder rows are far from unit norm
    sae.cfg.rescale_acts_by_decoder_norm = rescaled
    features = torch.tensor([0, 7, 39])
    got = saes.decoder_directions(sae, features)
    one = torch.zeros(len(features) + 1, sae.cfg.d_sae)
    one[torch.arange(1, len(features) + 1), features] = 1.0
    unit = sae.decode(one)
    assert torch.allclose(got, unit[1:] - unit[0], atol=1e-6)
    assert torch.allclose(got.norm(dim=-1), torch.ones(3)) == rescaled
