"""What the lib.saes tests share besides fixtures: the <bos> id and layer of the token rows, and a
random SAELens TopK SAE."""

import torch
from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig

BOS, LAYER = 0, 1


def make_random_sae(d_in: int, d_sae: int = 40, k: int = 5) -> TopKTrainingSAE:
    torch.manual_seed(2)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k))
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return sae
