"""Feature dashboards: what a feature fires on and what it writes, as self-contained HTML.

Introduced in chapter 'Sparse autoencoders' (chapters/sparse_autoencoders.py). The layout is the
one of Anthropic's feature browser and SAELens's companion ``sae-dashboard``: the feature's
density and a histogram of its nonzero activations, the tokens its decoder direction promotes
and suppresses through the unembedding, and its top-activating contexts with every token shaded
by the activation. Written by hand because ``sae-dashboard`` 0.8 requires transformer-lens < 3
and datasets < 4 (the book pins 3.9 and 5.2) and its pages load d3 and plotly from CDNs; these
are plain HTML and CSS, with no script and nothing fetched.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import torch
from jaxtyping import Bool, Float
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerBase

from lib.saes.metrics import decoder_directions


def token_strings(tokenizer: PreTrainedTokenizerBase, d_vocab: int) -> list[str]:
    """Every id's string as the model's tokenizer decodes it; ids past the tokenizer (a vocabulary
    padded to a round size) as ``<id N>``."""
    n = min(len(tokenizer), d_vocab)
    return tokenizer.batch_decode([[i] for i in range(n)]) + [f"<id {i}>" for i in range(n, d_vocab)]


def top_activations(values: Float[Tensor, "batch pos"], k: int) -> list[tuple[int, int, float]]:
    """The ``k`` largest positive entries of ``values`` as (row, position, value), largest first."""
    flat = values.flatten()
    top = flat.topk(min(k, int((flat > 0).sum())))
    return [
        (int(i) // values.shape[1], int(i) % values.shape[1], float(v))
        for v, i in zip(top.values, top.indices)
    ]


@torch.no_grad()
def logit_effects(model: HookedTransformer, sae: SAE, feature: int) -> Float[Tensor, " d_vocab"]:
    """The direct effect of the feature's decoder direction on every logit, ``d_i @ W_U`` with
    ``d_i`` from :func:`lib.saes.metrics.decoder_directions` (the final LayerNorm's scale
    ignored, as dashboards do)."""
    return decoder_directions(sae, torch.tensor([feature]))[0].to(model.W_U) @ model.W_U


def _shade(value: float, top: float) -> str:
    alpha = 0 if top <= 0 else max(value, 0) / top
    return f"background: rgba(255, 120, 0, {alpha:.2f})"


def _histogram(values: Float[Tensor, " n"], bins: int = 30) -> str:
    counts = torch.histc(values, bins, 0, float(values.max())) if len(values) else torch.zeros(bins)
    peak = float(counts.max()) or 1.0
    bar = '<div style="width: 4px; height: {}px; background: #f80; margin-right: 1px"></div>'
    bars = "".join(bar.format(round(60 * float(c) / peak)) for c in counts)
    top = f"{float(values.max()):.3g}" if len(values) else "0"
    return (
        f'<div style="display: flex; align-items: flex-end; height: 62px">{bars}</div>'
        f'<div style="font-size: 80%">nonzero activations, 0 to {top}</div>'
    )


def _token_list(effects: Float[Tensor, " d_vocab"], vocab: Sequence[str], n: int, largest: bool) -> str:
    top = effects.topk(n, largest=largest)
    return "<br>".join(
        f"<code>{html.escape(vocab[int(i)])}</code> {float(v):+.3g}" for v, i in zip(top.values, top.indices)
    )


def _context(
    values: Float[Tensor, " pos"], row: Sequence[str], pos: int, span: range, describe: Callable[[int], str]
) -> str:
    """Tokens ``span`` of a row, shaded by the activation relative to the one at ``pos`` (underlined)."""
    cells = []
    for p in span:
        tip = html.escape(f"{float(values[p]):.3g} {describe(p)}".strip())
        mark = "; border-bottom: 2px solid #000" if p == pos else ""
        style = _shade(float(values[p]), float(values[pos])) + mark
        cells.append(f'<span title="{tip}" style="{style}">{html.escape(row[p])}</span>')
    return " ".join(cells)


def dashboard(
    title: str,
    values: Float[Tensor, "batch pos"],
    measured: Bool[Tensor, "batch pos"],
    tokens: Sequence[Sequence[str]],
    effects: Float[Tensor, " d_vocab"],
    vocab: Sequence[str],
    describe: Callable[[int, int], str] = lambda row, pos: "",
    n_contexts: int = 8,
    before: int = 10,
    after: int = 3,
    n_logits: int = 8,
) -> str:
    """One feature's dashboard. ``values`` is its activation at every token (0 where it is not
    ``measured``), ``tokens`` the rows as token strings, ``effects`` its logit effects over
    ``vocab``; ``describe(row, pos)`` gives a token's tooltip (e.g. the generator's latents)."""
    fired = values[measured & (values > 0)]
    contexts = "".join(
        f'<tr><td style="text-align: right">{value:.3g}</td><td style="text-align: left">'
        + _context(
            values[row],
            tokens[row],
            pos,
            range(max(pos - before, 0), min(pos + after + 1, len(tokens[row]))),
            lambda p, row=row: describe(row, p),
        )
        + "</td></tr>"
        for row, pos, value in top_activations(values * measured, n_contexts)
    )
    n = int(measured.sum())
    return (
        '<div style="border: 1px solid #ccc; padding: 8px; margin: 8px 0">'
        f"<b>{html.escape(title)}</b> &middot; density {len(fired) / n:.3g} ({len(fired)} of {n} tokens)"
        '<div style="display: flex; gap: 24px; margin-top: 6px">'
        f"<div>{_histogram(fired)}</div>"
        f"<div><i>promotes</i><br>{_token_list(effects, vocab, n_logits, True)}</div>"
        f"<div><i>suppresses</i><br>{_token_list(effects, vocab, n_logits, False)}</div>"
        f'<div><i>top activations</i><table style="font-size: 90%">{contexts}</table></div>'
        "</div></div>"
    )
