"""The residual stream as a sum of components: decomposition, direct logit attribution with the
final LayerNorm scale frozen, component mean-ablation, residual norms, and subject-verb agreement
prompts built from the book's language (the logit and tuned lenses are in :mod:`lib.lens`).

Introduced in chapter 'Residual stream' (chapters/residual_stream.py).

Every block of a transformer *adds* its output to the residual stream, so the final residual is
``embed + pos_embed + sum(attention outputs) + sum(MLP outputs)``, and each attention output is
the sum of its heads' outputs ``z_h W_O^h`` plus ``b_O``. The final LayerNorm is not linear, but
once its scale (one number per position) is frozen, the logits are a sum of one term per
component: direct logit attribution.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from lib import language, patching
from lib.hooks import reduce_pass

CENTERED_NORMS = ("LN", "LNPre")  # final norms that subtract the mean over d_model


def _has_pos_embed(model: HookedTransformer) -> bool:
    """Whether the positional embedding is added to the residual stream (not for rotary or
    shortformer positions, which enter the attention only)."""
    return model.cfg.positional_embedding_type == "standard"


def _final_norm(model: HookedTransformer) -> Callable[[Tensor], Tensor]:
    """The final LayerNorm, or the identity in a model without one."""
    return getattr(model, "ln_final", torch.nn.Identity())


def _mlp_layers(model: HookedTransformer) -> range:
    return range(0 if model.cfg.attn_only else model.cfg.n_layers)


def _component_names(model: HookedTransformer) -> list[str]:
    names = ["hook_embed"] + (["hook_pos_embed"] if _has_pos_embed(model) else [])
    names += [get_act_name("z", layer) for layer in range(model.cfg.n_layers)]
    return names + [get_act_name("mlp_out", layer) for layer in _mlp_layers(model)]


def _stack(
    model: HookedTransformer, cache: dict[str, Tensor]
) -> tuple[Float[Tensor, "component batch pos d_model"], list[str]]:
    """The components of the final residual stream from a cache of :func:`_component_names`."""
    cfg = model.cfg
    parts = [cache["hook_embed"]] + (
        [cache["hook_pos_embed"].expand_as(cache["hook_embed"])] if _has_pos_embed(model) else []
    )
    labels = ["embed"] + (["pos_embed"] if _has_pos_embed(model) else [])
    for layer in range(cfg.n_layers):
        heads = einops.einsum(cache[get_act_name("z", layer)], model.W_O[layer], "b p h e, h e m -> h b p m")
        parts += [*heads, model.b_O[layer].expand_as(cache["hook_embed"])]
        labels += [f"L{layer}H{head}" for head in range(cfg.n_heads)] + [f"L{layer} b_O"]
        if layer in _mlp_layers(model):
            parts.append(cache[get_act_name("mlp_out", layer)])
            labels.append(f"MLP{layer}")
    return torch.stack(parts), labels


def decompose(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> tuple[Float[Tensor, "component batch pos d_model"], list[str]]:
    """Every additive component of the final residual stream, and their labels: ``embed``,
    ``pos_embed`` (when positions are added to the stream), each head's output ``LlHh``
    (``z_h W_O^h``), each layer's attention bias ``Ll b_O`` and each MLP's output ``MLPl``,
    in the order they are added. They sum to the final ``resid_post``.
    """
    names = _component_names(model)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    return _stack(model, cache)


def _max_relative_error(
    approx: Float[Tensor, "... d_model"], exact: Float[Tensor, "... d_model"]
) -> Float[Tensor, ""]:
    return ((approx - exact).float().norm(dim=-1) / exact.float().norm(dim=-1).clamp_min(1e-12)).max()


def decomposition_errors(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> dict[str, float]:
    """How exactly the two sums hold, as the largest relative error ``|sum - actual| / |actual|``
    over positions: ``resid`` for the final residual stream against the sum of
    :func:`decompose`'s components, ``attn`` for every layer's attention output against the sum
    of its heads' outputs plus ``b_O``."""
    n = model.cfg.n_layers
    final, attn = get_act_name("resid_post", n - 1), [get_act_name("attn_out", layer) for layer in range(n)]
    names = set(_component_names(model) + [final] + attn)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    stack, labels = _stack(model, cache)
    stack = stack.float()  # the sums in float32: what is measured is the model's own rounding
    heads_and_bias = torch.stack(
        [
            stack[
                [
                    i
                    for i, label in enumerate(labels)
                    if label.startswith(f"L{layer}H") or label == f"L{layer} b_O"
                ]
            ].sum(0)
            for layer in range(n)
        ]
    )
    errors = torch.stack(
        [
            _max_relative_error(stack.sum(0), cache[final]),
            _max_relative_error(heads_and_bias, torch.stack([cache[name] for name in attn])),
        ]
    )
    return dict(zip(("resid", "attn"), errors.tolist()))


@dataclass
class Attribution:
    """Direct logit attribution of a logit difference at each of ``site`` positions: one term per
    component. Without centring, the terms and ``constant`` sum to
    ``total``, the model's own logit difference."""

    embed: Float[Tensor, " site"]
    pos_embed: Float[Tensor, " site"]  # zeros when positions are not added to the stream
    heads: Float[Tensor, "layer head site"]
    attn_bias: Float[Tensor, "layer site"]  # each layer's b_O
    mlps: Float[Tensor, "mlp_layer site"]  # no rows in an attention-only model
    constant: Float[Tensor, " site"]  # the final LayerNorm's bias and the unembedding's bias
    total: Float[Tensor, " site"]  # the model's logit difference

    def summed(self) -> Float[Tensor, " site"]:
        """The sum of every term: equals ``total`` up to rounding (uncentred attribution)."""
        return (
            self.embed
            + self.pos_embed
            + self.heads.sum((0, 1))
            + self.attn_bias.sum(0)
            + self.mlps.sum(0)
            + self.constant
        )

    def stacked(self) -> tuple[Float[Tensor, "component site"], list[str]]:
        """The terms of the components one could ablate, one row each: embeddings, heads and
        MLPs, with labels ``embed``, ``pos_embed``, ``LlHh``, ``MLPl``."""
        n_layers, n_heads = self.heads.shape[:2]
        labels = ["embed", "pos_embed"] + [
            f"L{layer}H{head}" for layer in range(n_layers) for head in range(n_heads)
        ]
        labels += [f"MLP{layer}" for layer in range(len(self.mlps))]
        rows = torch.cat([self.embed[None], self.pos_embed[None], self.heads.flatten(0, 1), self.mlps])
        return rows, labels


def direct_logit_attribution(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    batch_idx: Int[Tensor, " site"],
    pos_idx: Int[Tensor, " site"],
    correct: Int[Tensor, " site"],
    wrong: Int[Tensor, " site"],
    center: bool = False,
) -> Attribution:
    """Each component's direct contribution to ``logit[correct] - logit[wrong]`` at the sites
    ``(batch_idx, pos_idx)`` (the logits there predict the next token), with the final
    LayerNorm's scale frozen at its value in the run.

    A component ``c`` contributes ``(c - mean_d(c)) / scale . (w * (W_U[:, correct] - W_U[:,
    wrong]))``; the final LayerNorm's bias and ``b_U`` give the constant. Per-head terms are
    contracted with ``W_O`` directly, so no [head, d_model] tensor is built per site.

    ``center=True`` replaces every component ``c`` by ``c - c_mean`` (its mean over the batch at
    the same position, as :func:`mean_ablation` uses): each term is then minus the *direct* effect of
    mean-ablating that component (the attention biases and the constant become zero).

    Computed in float32 whatever the model's dtype (the final LayerNorm's scale is float32 in
    half-precision TransformerLens models too); ``total`` is the model's own logit difference.
    """
    cfg = model.cfg
    names = _component_names(model) + ["ln_final.hook_scale"] * (cfg.normalization_type is not None)
    logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    device = logits.device
    b, p = batch_idx.to(device), pos_idx.to(device)
    correct, wrong = correct.to(device), wrong.to(device)
    unembed = model.W_U[:, correct].float() - model.W_U[:, wrong].float()  # [d_model, site]
    direction = einops.rearrange(unembed, "m s -> s m")
    ln = _final_norm(model)
    if getattr(ln, "w", None) is not None:
        direction = direction * ln.w
    if cfg.normalization_type in CENTERED_NORMS:  # (c - mean(c)) . u == c . (u - mean(u))
        direction = direction - direction.mean(-1, keepdim=True)
    if cfg.normalization_type is not None:
        direction = direction / cache["ln_final.hook_scale"][b, p].float()  # frozen scale, [site, 1]
    constant = model.b_U[correct].float() - model.b_U[wrong].float()
    if getattr(ln, "b", None) is not None:
        constant = constant + unembed.T @ ln.b.float()

    def at_sites(act: Float[Tensor, "batch pos ..."]) -> Float[Tensor, "site ..."]:
        act = act.float()
        return (act - act.mean(0, keepdim=True) if center else act)[b, p]

    def project(act: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, " site"]:
        return einops.einsum(at_sites(act), direction, "s m, s m -> s")

    heads = torch.stack(
        [
            einops.einsum(
                at_sites(cache[get_act_name("z", layer)]),
                model.W_O[layer].float(),
                direction,
                "s h e, h e m, s m -> h s",
            )
            for layer in range(cfg.n_layers)
        ]
    )
    bias = einops.einsum(model.b_O.float(), direction, "l m, s m -> l s")
    sites = len(b)
    return Attribution(
        embed=project(cache["hook_embed"]),
        pos_embed=(
            project(cache["hook_pos_embed"].expand_as(cache["hook_embed"]))
            if _has_pos_embed(model)
            else torch.zeros(sites, device=device)
        ),
        heads=heads,
        attn_bias=torch.zeros_like(bias) if center else bias,
        mlps=torch.stack([project(cache[get_act_name("mlp_out", layer)]) for layer in _mlp_layers(model)])
        if not cfg.attn_only
        else torch.zeros(0, sites, device=device),
        constant=torch.zeros_like(constant) if center else constant,
        total=logits[b, p, correct].float() - logits[b, p, wrong].float(),
    )


def mean_ablation(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    metric: patching.Metric,
    logit_positions: list[int] | None = None,
) -> tuple[Float[Tensor, "layer head"], Float[Tensor, " mlp_layer"]]:
    """The metric's change when each head's output, and each MLP's output, is replaced at every
    position by its mean over the batch *at that position*, one component at a time: the *total*
    effect of the component. Per-position means keep what every position has in common (position
    0's output above all, which is unlike any other's) instead of pooling it into one mean.
    Batched by :func:`lib.patching.patch_sweep`."""
    names = [get_act_name("z", layer) for layer in range(model.cfg.n_layers)]
    names += [get_act_name("mlp_out", layer) for layer in _mlp_layers(model)]
    logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    means = {name: cache[name].mean(0, keepdim=True).expand_as(cache[name]) for name in names}
    clean = metric(logits if logit_positions is None else logits[:, logit_positions]).float().mean()
    heads = (
        patching.patch_sweep(model, tokens, means, "z", "head", metric, logit_positions=logit_positions)
        - clean
    )
    mlps = (
        patching.patch_sweep(
            model, tokens, means, "mlp_out", "layer", metric, logit_positions=logit_positions
        )
        - clean
        if not model.cfg.attn_only
        else torch.zeros(0, device=heads.device)
    )
    return heads, mlps


def residual_names(model: HookedTransformer) -> list[str]:
    """The hooks of the residual stream entering every layer, then leaving the last."""
    n = model.cfg.n_layers
    return [get_act_name("resid_pre", layer) for layer in range(n)] + [get_act_name("resid_post", n - 1)]


def residual_norms(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "layer batch pos"]:
    """The L2 norm of the residual stream at every token, at each of :func:`residual_names`
    (rows ``0 .. n_layers - 1`` entering each layer, row ``n_layers`` leaving the last)."""
    names = residual_names(model)
    norms = torch.zeros(len(names), *tokens.shape, device=model.cfg.device)

    def reduce(resid: Float[Tensor, "batch pos d_model"], hook) -> None:
        norms[names.index(hook.name)] = resid.float().norm(dim=-1)

    reduce_pass(model, tokens, [(names.__contains__, reduce)])
    return norms


# --------------------------------------------------------------------------------------------
# Text of the book's language, for the organism or any model.


def language_tokens(model: HookedTransformer, corpus: language.Corpus) -> Int[Tensor, "batch pos"]:
    """The corpus's rows as the model's tokens: the rows themselves for a model of the language;
    for any other model, each row's words as text (``<bos>`` between texts becomes the model's
    BOS token) re-tokenized by its tokenizer after its BOS token (prepended explicitly, also for
    models TransformerLens runs without one) and cut to the row's length (every word is at least
    one token)."""
    if language.speaks_language(model):
        return corpus.tokens.to(model.cfg.device)
    bos = model.tokenizer.bos_token
    texts = [
        " ".join(bos if t == language.BOS_ID else language.VOCAB[t] for t in row[1:])
        for row in corpus.tokens.tolist()
    ]
    return model.to_tokens(texts, prepend_bos=True)[:, : corpus.tokens.shape[1]]


@dataclass
class AgreementPrompts:
    """Subject-verb agreement prompts ending at the subject (``... the dogs near the tree``),
    each with a corrupted twin whose subject noun has the other number, and the verb (or
    copula) pair to compare: ``correct`` agrees with the clean subject, ``wrong`` with the
    corrupted one."""

    clean: Int[Tensor, "prompt pos"]
    corrupt: Int[Tensor, "prompt pos"]
    correct: Int[Tensor, " prompt"]
    wrong: Int[Tensor, " prompt"]
    attractor: Tensor  # bool [prompt]: the prepositional phrase's noun has the other number
    paired: Tensor  # bool [prompt]: the corrupted twin has the clean prompt's length (else it is a copy)
    texts: list[str]


def agreement_prompts(model: HookedTransformer, n: int, seed: int) -> AgreementPrompts:
    """``n`` candidate prompts ``there was a NOUN named NAME . the SUBJECT PREP the NOUN`` from
    the book's language (a sentence the language can produce, next token a verb or copula).
    Answers are the copula (``is``/``are``, half the prompts) or a verb pair (``runs``/``run``),
    compared by their first token. Every prompt starts with the model's BOS token (prepended
    explicitly, as in :func:`language_tokens`). Kept: prompts whose answers have distinct first
    tokens and whose length is the most common one; ``paired`` marks those whose corrupted twin
    has that length too. Under the language's own tokenizer, and GPT-2's on these common words, every
    word is one token: all prompts are kept and paired."""
    rng = random.Random(seed)
    animate = [pair for topic in language.ANIMATE_NOUNS.values() for pair in topic]
    things = [pair for topic in language.THING_NOUNS.values() for pair in topic]
    verbs = language.INTRANSITIVE_VERBS[language.SHARED] + language.TRANSITIVE_VERBS[language.SHARED]
    rows = []
    for _ in range(n):
        subject, place = rng.choice(animate), rng.choice(things)
        verb = language.COPULA if rng.random() < 0.5 else rng.choice(verbs)
        number, place_number = rng.randrange(2), rng.randrange(2)
        intro = f"there was a {rng.choice(animate)[0]} named {rng.choice(language.NAMES)} . the"
        tail = f"{rng.choice(language.PREPOSITIONS)} the {place[place_number]}"
        rows.append(
            (
                f"{intro} {subject[number]} {tail}",
                f"{intro} {subject[1 - number]} {tail}",
                verb[number],
                verb[1 - number],
                number != place_number,
            )
        )

    def answer_ids(right: str, other: str) -> tuple[int, int] | None:
        """The answers' first tokens, spelled after a space or else bare, where they differ."""
        for space in (" ", ""):
            a, b = (int(model.to_tokens(space + word, prepend_bos=False)[0, 0]) for word in (right, other))
            if a != b:
                return a, b
        return None

    encoded = [
        (
            model.to_tokens(clean, prepend_bos=True)[0],
            model.to_tokens(corrupt, prepend_bos=True)[0],
            answer_ids(right, other),
            attractor,
            clean,
        )
        for clean, corrupt, right, other, attractor in rows
    ]
    encoded = [(c, k, *ids, a, t) for c, k, ids, a, t in encoded if ids is not None]
    if not encoded:
        raise ValueError("no agreement prompt has distinct answer tokens under this tokenizer")
    length = Counter(len(e[0]) for e in encoded).most_common(1)[0][0]
    kept = [e for e in encoded if len(e[0]) == length]
    clean, corrupt, right, other, attractor, texts = zip(*kept)
    paired = [len(c) == length for c in corrupt]
    device = model.cfg.device
    clean = torch.stack(clean).to(device)
    corrupt = torch.stack([c if ok else s for c, s, ok in zip(corrupt, clean, paired)]).to(device)
    return AgreementPrompts(
        clean,
        corrupt,
        torch.tensor(right, device=device),
        torch.tensor(other, device=device),
        torch.tensor(attractor),
        torch.tensor(paired),
        list(texts),
    )


def logit_diff_metric(
    correct: Int[Tensor, " prompt"], wrong: Int[Tensor, " prompt"]
) -> Callable[[Float[Tensor, "prompt pos d_vocab"]], Float[Tensor, " prompt"]]:
    """A patching metric: ``logit[correct] - logit[wrong]`` at the last position the metric is
    given, per prompt."""

    def metric(logits: Float[Tensor, "prompt pos d_vocab"]) -> Float[Tensor, " prompt"]:
        last = logits[:, -1].float()
        return (last.gather(-1, correct[:, None]) - last.gather(-1, wrong[:, None]))[:, 0]

    return metric
