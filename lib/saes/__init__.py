"""Sparse autoencoders on the language organism: the glue to SAELens.

Introduced in chapter 'Sparse autoencoders' (chapters/sparse_autoencoders.py). The SAE classes,
losses and trainer are SAELens's; the book adds, one concept per module:

- :mod:`lib.saes.training`: activations cached once and fed to SAELens's trainer, the spec of a
  training run;
- :mod:`lib.saes.metrics`: L0, density, explained variance and the loss recovered when the SAE
  is spliced in (tested against ``sae_lens.evals``);
- :mod:`lib.saes.matching`: the best feature for every value of the language's latents, with
  F1, MCC and AUROC, and the baselines' directions;
- :mod:`lib.saes.absorption`: feature absorption as SAEBench measures it, against the labels;
- :mod:`lib.saes.dashboards`: a feature's density, logit effects and top contexts as HTML;
- :mod:`lib.saes.steering`: a feature clamped to a value while the model generates.
"""

from lib.saes.absorption import absorption_fractions, main_latents, probe_direction
from lib.saes.dashboards import dashboard, logit_effects, token_strings, top_activations
from lib.saes.matching import (
    LABELLED,
    auroc,
    best_thresholds,
    latent_labels,
    match,
    matched_fraction,
    pca_directions,
    precise_features,
)
from lib.saes.metrics import decoder_directions, encode, explained_variance, sparsity, splice_losses
from lib.saes.steering import clamp_hook, steered_texts
from lib.saes.training import (
    Spec,
    activation_batches,
    cache_activations,
    describe,
    hook_name,
    resample_dead,
    train,
    untrained,
)

__all__ = [
    "absorption_fractions",
    "LABELLED",
    "Spec",
    "activation_batches",
    "auroc",
    "best_thresholds",
    "cache_activations",
    "dashboard",
    "clamp_hook",
    "describe",
    "decoder_directions",
    "encode",
    "explained_variance",
    "hook_name",
    "latent_labels",
    "logit_effects",
    "main_latents",
    "match",
    "matched_fraction",
    "pca_directions",
    "precise_features",
    "probe_direction",
    "resample_dead",
    "sparsity",
    "splice_losses",
    "steered_texts",
    "token_strings",
    "top_activations",
    "train",
    "untrained",
]
