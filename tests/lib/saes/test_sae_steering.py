"""lib.saes.steering: the clamp against a per-position loop, and steered generation against plain
sampling."""

import torch
from sae_cases import LAYER

from lib import generation, language, saes

HOOK = saes.hook_name(LAYER)


def test_clamp_hook_sets_one_feature_per_row_as_the_loop_does(random_sae):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, random_sae.cfg.d_in, generator=g)
    features, values = torch.tensor([4, -1, 17]), torch.tensor([2.5, 9.0, 0.0])
    _, clamp = saes.clamp_hook(random_sae, HOOK, features, values)
    got = clamp(x, None)
    with torch.no_grad():
        for b in range(3):
            for p in range(5):
                want = x[b, p].clone()
                if features[b] >= 0:  # the change to the reconstruction when the feature is set
                    f = random_sae.encode(x[b, p][None])
                    clamped = f.clone()
                    clamped[0, features[b]] = values[b]
                    want += (random_sae.decode(clamped) - random_sae.decode(f))[0]
                assert torch.allclose(got[b, p], want, atol=1e-5)
    assert torch.equal(got[1], x[1])  # a row without a feature is left exactly alone


def test_steered_texts_are_plain_samples_without_a_feature_and_change_with_one(model, random_sae):
    unsteered = saes.steered_texts(model, random_sae, HOOK, torch.tensor([-1]), torch.zeros(1), 6, 5, seed=3)
    prompts = generation.Prompts(torch.full((6, 1), language.BOS_ID), torch.ones(6, 1, dtype=torch.long))
    plain = generation.generate(
        model, prompts, 5, stop_ids=[language.BOS_ID], generator=torch.Generator().manual_seed(3)
    )
    assert unsteered.shape == (1, 6, plain.shape[1]) and torch.equal(unsteered[0], plain)
    steered = saes.steered_texts(
        model, random_sae, HOOK, torch.tensor([2]), torch.tensor([50.0]), 6, 5, seed=3
    )
    assert not torch.equal(steered, unsteered)
