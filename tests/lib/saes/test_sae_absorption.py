"""lib.saes.absorption: SAEBench's absorption measures against a per-token loop written from its
definitions, and the probe and main latents on data whose answer is known."""

import torch

from lib.saes import absorption as ab


def absorption_loop(acts, codes, decoder, direction, main):
    """SAEBench's FeatureAbsorptionCalculator.calculate_absorption, token by token."""
    cos = [float(torch.nn.functional.cosine_similarity(row, direction, dim=0)) for row in decoder]
    fractions, fulls = [], []
    for x, f in zip(acts, codes):
        act = float(x @ direction)
        proj = [float(f[j]) * cos[j] for j in range(len(cos))]
        main_proj = sum(proj[j] for j in main)
        others = sorted(
            (proj[j] for j in range(len(cos)) if j not in main and cos[j] >= 0.1 and proj[j] > 0),
            reverse=True,
        )
        total = sum(others[:3])
        if main_proj >= act or total / act < 0.4:
            fraction = 0.0
        elif main_proj <= 0:
            fraction = 1.0
        else:
            absorbed = min(total, act - main_proj)
            fraction = min(max(absorbed / (absorbed + main_proj), 0.0), 1.0)
        top = max(range(len(cos)), key=lambda j: proj[j])
        full = (
            all(float(f[j]) < 1e-8 for j in main)
            and cos[top] >= 0.025
            and act >= 0
            and proj[top] / act >= 0.4
        )
        fractions.append(fraction)
        fulls.append(full)
    return torch.tensor(fractions), torch.tensor(fulls)


def test_absorption_matches_saebench_token_by_token():
    g = torch.Generator().manual_seed(0)
    d_model, d_sae, n = 6, 12, 300
    direction = torch.randn(d_model, generator=g)
    direction /= direction.norm()
    decoder = torch.randn(d_sae, d_model, generator=g)
    decoder[:4] += 2 * direction  # latents aligned with the probe: main 0 and 1, absorbers 2 and 3
    codes = torch.relu(torch.randn(n, d_sae, generator=g)) * (torch.rand(n, d_sae, generator=g) < 0.4)
    codes[: n // 3, :2] = 0  # the main latents silent on a third of the tokens
    acts = codes @ decoder + 0.3 * torch.randn(n, d_model, generator=g)
    main = torch.tensor([0, 1])
    got = ab.absorption_fractions(acts, codes, decoder, direction, main)
    fraction, full = absorption_loop(acts, codes, decoder, direction, main.tolist())
    assert torch.allclose(got["fraction"], fraction, atol=1e-5)
    assert torch.equal(got["full"], full)
    assert 0 < float(got["fraction"].mean()) < 1 and 0 < int(got["full"].sum()) < n  # both kinds occur


def test_probe_direction_and_main_latents_find_the_planted_answer():
    g = torch.Generator().manual_seed(1)
    n, d_model, d_sae = 2000, 8, 20
    v = torch.randn(d_model, generator=g)
    acts = torch.randn(n, d_model, generator=g)
    label = acts @ v > 0.5
    train = torch.arange(n) % 2 == 0
    direction, predicted = ab.probe_direction(acts, label, train)
    assert float(direction @ v / v.norm()) > 0.95 and float((predicted == label).float().mean()) > 0.95
    codes = torch.relu(torch.randn(n, d_sae, generator=g)) * 0.1
    half = torch.rand(n, generator=g) < 0.5
    codes[:, 3] += 3.0 * (label & half)  # two latents split the label between them
    codes[:, 7] += 3.0 * (label & ~half)
    assert sorted(ab.main_latents(codes, label, train).tolist()) == [3, 7]
    codes[:, 7] = 0.0
    codes[:, 3] += 3.0 * label  # now one latent carries it all
    assert ab.main_latents(codes, label, train).tolist() == [3]
