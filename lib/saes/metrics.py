"""The standard measures of an SAE: sparsity, reconstruction, and what splicing it into the
model costs.

Introduced in chapter 'Sparse autoencoders' (chapters/sparse_autoencoders.py). Definitions as in
SAELens's ``evals`` (tested against it), on activations ``x`` (``<bos>`` left out), codes
``f = encode(x)`` and reconstructions ``x_hat = decode(f)``:

- L0: the mean number of latents with ``f > 0`` per token;
- density of a latent: the fraction of tokens on which it fires; dead: density 0 on the
  evaluation tokens;
- explained variance: ``1 - E||x - x_hat||^2 / (E||x||^2 - ||E x||^2)``;
- CE loss recovered: ``(CE_zero - CE_sae) / (CE_zero - CE_clean)``, the model's next-token loss
  with the SAE's reconstruction spliced in at its hook (``<bos>`` positions keep their own
  activations) against the clean run and against zero-ablating the hook; the KL version puts
  ``KL(clean || run)`` in place of each ``CE - CE_clean``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from lib.saes.training import hook_name


def decoder_directions(sae: SAE, features: Int[Tensor, " n"]) -> Float[Tensor, "n d_in"]:
    """The vector one unit of each feature adds to the SAE's reconstruction: its decoder row, or
    the row over its norm where the SAE scales its codes by the rows' norms (SAELens's
    ``rescale_acts_by_decoder_norm``, on while a TopK SAE trains; saving folds the norms in)."""
    rows = sae.W_dec[features]
    if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):
        rows = rows / rows.norm(dim=-1, keepdim=True)
    return rows


@torch.no_grad()
def encode(
    sae: SAE, acts: Float[Tensor, "token d_model"], batch_size: int = 8192
) -> Float[Tensor, "token d_sae"]:
    """The SAE's codes of ``acts``, in batches on the SAE's device, returned on ``acts``'s."""
    return torch.cat([sae.encode(chunk.to(sae.device)).to(acts.device) for chunk in acts.split(batch_size)])


@torch.no_grad()
def sparsity(codes: Float[Tensor, "token d_sae"]) -> dict[str, Tensor | float]:
    """L0, every latent's density and the dead fraction."""
    active = codes > 0
    density = active.float().mean(0)
    return {
        "l0": float(active.sum(-1).float().mean()),
        "density": density,
        "dead_frac": float((density == 0).float().mean()),
    }


@torch.no_grad()
def explained_variance(acts: Float[Tensor, "token d_model"], recon: Float[Tensor, "token d_model"]) -> float:
    """``1 - E||x - x_hat||^2 / (E||x||^2 - ||E x||^2)``, in float64."""
    x, x_hat = acts.double(), recon.double()
    total = x.pow(2).sum(-1).mean() - x.mean(0).pow(2).sum()
    return float(1 - (x - x_hat).pow(2).sum(-1).mean() / total)


def _kl(
    clean: Float[Tensor, "batch pos vocab"], other: Float[Tensor, "batch pos vocab"]
) -> Float[Tensor, "batch pos"]:
    p = clean.log_softmax(-1)
    return (p.exp() * (p - other.log_softmax(-1))).sum(-1)


@torch.no_grad()
def splice_losses(
    model: HookedTransformer,
    sae: SAE,
    tokens: Int[Tensor, "batch pos"],
    layer: int,
    bos: int,
    batch_size: int = 64,
) -> dict[str, float]:
    """The model's mean next-token loss clean, with the SAE's reconstruction in place of the
    residual stream entering ``layer`` and with it zero-ablated (``<bos>`` positions untouched
    in both), the mean KL from the clean distribution of the two, and the fractions of loss and
    KL recovered (NaN if zero-ablating the hook leaves the loss, or the distribution, as it was)."""
    sums = dict.fromkeys(["ce_clean", "ce_sae", "ce_zero", "kl_sae", "kl_zero"], 0.0)
    n_loss = n_kl = 0
    for chunk in tokens.split(batch_size):
        chunk = chunk.to(model.cfg.device)
        keep = (chunk != bos)[..., None]

        def splice(resid, hook, keep=keep):
            return torch.where(keep, sae.decode(sae.encode(resid.float())).to(resid.dtype), resid)

        def zero(resid, hook, keep=keep):
            return torch.where(keep, torch.zeros_like(resid), resid)

        clean, ce_clean = model(chunk, return_type="both", loss_per_token=True)
        runs = {}
        for name, hook in (("sae", splice), ("zero", zero)):
            runs[name] = model.run_with_hooks(
                chunk, return_type="both", loss_per_token=True, fwd_hooks=[(hook_name(layer), hook)]
            )
        sums["ce_clean"] += float(ce_clean.sum())
        for name, (logits, ce) in runs.items():
            sums[f"ce_{name}"] += float(ce.sum())
            sums[f"kl_{name}"] += float(_kl(clean.float(), logits.float()).sum())
        n_loss, n_kl = n_loss + ce_clean.numel(), n_kl + chunk.numel()
    out = {k: v / (n_kl if k.startswith("kl") else n_loss) for k, v in sums.items()}
    gap = out["ce_zero"] - out["ce_clean"]  # 0 where zero-ablating the hook changes nothing
    out["ce_recovered"] = (out["ce_zero"] - out["ce_sae"]) / gap if gap else float("nan")
    out["kl_recovered"] = 1 - out["kl_sae"] / out["kl_zero"] if out["kl_zero"] else float("nan")
    return out
