"""Feature absorption (Chanin et al. 2024), measured as SAEBench measures it, with the language's
labels as the ground truth.

Introduced in chapter 'Sparse autoencoders' (chapters/sparse_autoencoders.py). A general feature
("plural noun") is *absorbed* where it should fire but does not, because a more specific latent
fires instead and carries the general direction. For one label:

- the **probe direction** ``p`` is a logistic-regression probe for the label on the activations
  (:func:`probe_direction`), the ground-truth direction;
- the **main latents** are the few that represent the label, chosen by k-sparse probing
  (:func:`main_latents`): latents ranked by the difference of their mean code on and off the
  label, and ``k`` grown from 1 while a probe on the top ``k`` gains at least 0.03 held-out F1
  (at most 10);
- on every token where the label is on and the probe says so (:func:`absorption`), each latent's
  projection on the probe is its code times the cosine of its decoder row with ``p``. The
  **absorption fraction** is the share of the activation's probe projection that up to three
  other latents (cosine at least 0.1) carry in place of the main ones (0 unless they carry at
  least 0.4 of it, 1 if the main latents carry none); **full absorption** is a token where no
  main latent fires and the single largest projecting latent (cosine at least 0.025) carries at
  least 0.4 of the projection.

The thresholds are SAEBench's (``sae_bench.evals.absorption``). SAEBench reads them on
first-letter features of real models' tokens, with a probe as its only ground truth; here the
label is known at every token.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from lib.probes import fit_probes

F1_JUMP, MAX_MAIN = 0.03, 10
ABSORBER_COS, FULL_COS, PROPORTION, MAX_ABSORBERS = 0.1, 0.025, 0.4, 3


def _f1(predicted: Bool[Tensor, " n"], truth: Bool[Tensor, " n"]) -> float:
    tp = float((predicted & truth).sum())
    return 2 * tp / max(float(predicted.sum() + truth.sum()), 1.0)


def probe_direction(
    acts: Float[Tensor, "token d_model"], label: Bool[Tensor, " token"], train: Bool[Tensor, " token"]
) -> tuple[Float[Tensor, " d_model"], Bool[Tensor, " token"]]:
    """The unit direction of a logistic-regression probe for ``label`` fitted on ``train``, in
    the activations' own coordinates, and its prediction at every token."""
    probe = fit_probes(acts[None], label.long(), 2, train)
    direction = (probe.weight[0, :, 1] - probe.weight[0, :, 0]) / probe.std[0]
    return direction / direction.norm(), probe.predict(acts[None])[0].bool()


def main_latents(
    codes: Float[Tensor, "token d_sae"], label: Bool[Tensor, " token"], train: Bool[Tensor, " token"]
) -> Int[Tensor, " k"]:
    """The latents that represent ``label``, by k-sparse probing on ``train`` and F1 on the rest."""
    on, off = codes[train & label].mean(0), codes[train & ~label].mean(0)
    ranked = (on - off).argsort(descending=True)[:MAX_MAIN]
    test = ~train

    def f1(k: int) -> float:
        sparse = codes[:, ranked[:k]][None]
        predicted = fit_probes(sparse, label.long(), 2, train).predict(sparse[:, test])[0].bool()
        return _f1(predicted, label[test])

    k, score = 1, f1(1)
    while k < len(ranked) and (grown := f1(k + 1)) - score >= F1_JUMP:
        k, score = k + 1, grown
    return ranked[:k]


@torch.no_grad()
def absorption_fractions(
    acts: Float[Tensor, "token d_model"],
    codes: Float[Tensor, "token d_sae"],
    decoder: Float[Tensor, "d_sae d_model"],
    direction: Float[Tensor, " d_model"],
    main: Int[Tensor, " k"],
) -> dict[str, Tensor]:
    """Per token: the absorption fraction and whether the label is fully absorbed (see the
    module's docstring), for tokens where the label is on and the probe finds it."""
    cos = torch.nn.functional.cosine_similarity(decoder, direction[None], dim=-1)  # [d_sae]
    latent_proj = codes * cos  # [token, d_sae]
    act_proj = acts @ direction  # [token]
    is_main = torch.zeros_like(cos, dtype=torch.bool)
    is_main[main] = True
    main_proj = latent_proj[:, main].sum(-1)
    candidate = (~is_main & (cos >= ABSORBER_COS))[None] & (latent_proj > 0)
    absorbers = latent_proj.where(candidate, 0).topk(min(MAX_ABSORBERS, len(cos)), dim=-1).values.sum(-1)
    absorbed = torch.minimum(absorbers, act_proj - main_proj)
    fraction = (absorbed / (absorbed + main_proj)).clamp(0, 1)
    fraction = torch.where(main_proj <= 0, 1.0, fraction)
    fraction = torch.where((main_proj >= act_proj) | (absorbers / act_proj < PROPORTION), 0.0, fraction)
    top = latent_proj.max(-1)
    full = (
        (codes[:, main] <= 1e-8).all(-1)
        & (cos[top.indices] >= FULL_COS)
        & (act_proj >= 0)
        & (top.values >= PROPORTION * act_proj)
    )
    return {"fraction": fraction, "full": full}
