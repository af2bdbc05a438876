"""The logit lens and the tuned lens: the residual stream entering every layer, decoded as the last.

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).

The logit lens decodes the residual stream entering layer ``l`` with the final LayerNorm (its scale
recomputed from that residual) and the unembedding, as if the remaining layers added nothing. The
tuned lens (Belrose et al. 2023, "Eliciting latent predictions from transformers with the tuned
lens") first maps it through an affine translator ``x A_l + b_l`` trained, with the model frozen, to
minimise the KL divergence from the model's final next-token distribution; initialised at the
identity, it starts as the logit lens. Lenses decode in float32 whatever the model's dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.components import LayerNorm, LayerNormPre

from lib import residual


@dataclass
class Lens:
    """A lens on a batch: row ``l < n_layers`` decodes ``resid_pre`` of layer ``l``, the last row the
    final ``resid_post`` (which gives the model's own logits)."""

    top1: Int[Tensor, "layer batch pos"]  # the lens's top-1 token
    logprob_next: Float[Tensor, "layer batch pos_minus_1"]  # its log-prob of the actual next token
    kl_to_final: Float[Tensor, "layer batch pos"]  # KL(final distribution || lens distribution)

    def mean_kl(self) -> Float[Tensor, " layer"]:
        """Each row's KL to the final distribution, averaged over the batch and positions (nats)."""
        return self.kl_to_final.mean((1, 2))


@dataclass
class TunedLens:
    """One affine translator per layer, ``x A_l + b_l`` for ``resid_pre`` of layer ``l``."""

    A: Float[Tensor, "layer d_model d_model"]
    b: Float[Tensor, "layer d_model"]

    def translate(
        self, layer: int, resid: Float[Tensor, "batch pos d_model"]
    ) -> Float[Tensor, "batch pos d_model"]:
        return resid.float() @ self.A[layer] + self.b[layer]


@torch.no_grad()
def _stream(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "layer batch pos d_model"]:
    """The residual stream at each of :func:`lib.residual.residual_names`, in float32, from one
    forward pass caching only those."""
    names = residual.residual_names(model)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    return torch.stack([cache[name] for name in names]).float()


def _decoder(
    model: HookedTransformer,
) -> Callable[[Float[Tensor, "batch pos d_model"]], Float[Tensor, "batch pos d_vocab"]]:
    """The final norm and the unembedding, as log-probs, with float32 copies of the model's weights,
    detached (a lens trains nothing of the model). The operations are TransformerLens's, in its
    order, so a float32 model decodes exactly as it runs."""
    ln, eps = getattr(model, "ln_final", None), model.cfg.eps
    w, b = (getattr(ln, name, None) for name in ("w", "b"))
    w, b = (None if p is None else p.detach().float() for p in (w, b))
    W_U, b_U = model.W_U.detach().float().T.contiguous(), model.b_U.detach().float()

    def decode(resid: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        x = resid.float()
        if isinstance(ln, (LayerNorm, LayerNormPre)):
            x = x - x.mean(-1, keepdim=True)
        if ln is not None:
            x = x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
        x = x if w is None else x * w
        x = x if b is None else x + b
        return torch.nn.functional.linear(x, W_U, b_U).log_softmax(-1)

    return decode


def _kl(
    final: Float[Tensor, "batch pos d_vocab"], logprobs: Float[Tensor, "batch pos d_vocab"]
) -> Float[Tensor, "batch pos"]:
    """KL(final || lens) from log-probs."""
    return (final.exp() * (final - logprobs)).sum(-1)


def _lens(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    stream: Float[Tensor, "layer batch pos d_model"],
) -> Lens:
    """Decode every row of ``stream``; the vocabulary-sized logits exist for one row at a time."""
    decode = _decoder(model)
    final = decode(stream[-1])
    top1, logprob_next, kl = [], [], []
    for resid in stream:
        logprobs = decode(resid)
        top1.append(logprobs.argmax(-1))
        logprob_next.append(logprobs[:, :-1].gather(-1, tokens[:, 1:, None].to(logprobs.device))[..., 0])
        kl.append(_kl(final, logprobs))
    return Lens(torch.stack(top1), torch.stack(logprob_next), torch.stack(kl))


def logit_lens(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> Lens:
    """Decode the residual stream entering every layer, and leaving the last, with the final
    LayerNorm (its scale recomputed from that residual) and the unembedding. One forward pass
    caching only the residual streams."""
    return _lens(model, tokens, _stream(model, tokens))


def fit_tuned_lens(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], steps: int = 250, lr: float = 1e-3
) -> TunedLens:
    """Train a translator for every layer at once, with Adam on the full batch (deterministic), to
    minimise the mean over positions of KL(final distribution || decoded translated ``resid_pre``).
    The translators start at the identity (the logit lens). The model is frozen and run once;
    autograd is on for the translators, even where it is off globally. Each layer's loss is
    back-propagated on its own, so the vocabulary-sized logits exist for one layer at a time; the
    gradients are those of the summed loss."""
    stream, decode = _stream(model, tokens), _decoder(model)
    final = decode(stream[-1])
    n, d = model.cfg.n_layers, model.cfg.d_model
    eye = torch.eye(d, device=stream.device)
    lens = TunedLens(
        eye.repeat(n, 1, 1).requires_grad_(), torch.zeros(n, d, device=stream.device).requires_grad_()
    )
    optimizer = torch.optim.Adam([lens.A, lens.b], lr=lr)
    with torch.enable_grad():  # the book's setup turns autograd off
        for _ in range(steps):
            optimizer.zero_grad()
            for layer in range(n):
                _kl(final, decode(lens.translate(layer, stream[layer]))).mean().backward()
            optimizer.step()
    return TunedLens(lens.A.detach(), lens.b.detach())


@torch.no_grad()
def tuned_lens(model: HookedTransformer, translators: TunedLens, tokens: Int[Tensor, "batch pos"]) -> Lens:
    """The tuned lens: :func:`logit_lens` with ``resid_pre`` of each layer translated first (the last
    row, the final ``resid_post``, unchanged)."""
    stream = _stream(model, tokens)
    translated = [translators.translate(layer, resid) for layer, resid in enumerate(stream[:-1])]
    return _lens(model, tokens, torch.stack([*translated, stream[-1]]))
