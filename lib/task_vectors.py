"""Task vectors (Hendel et al. 2023) and function vectors (Todd et al. 2024): the last position's
residual stream after each layer, patching or adding a vector there, the mean output of every
head, the causal indirect effect of every head, and the function vector of chosen heads.

Introduced in chapter 'Task vectors' (chapters/task_vectors.py). Everything here works on token
ids and a HookedTransformer, whatever its language: prompts are [batch, pos] token tensors whose
*last* position is the one that predicts the answer (a query followed by its separator, e.g.
``... wet ->``).

- Task vector (Hendel): the residual stream at the last position after layer L
  (:func:`last_residuals`), averaged over prompts of demonstrations followed by a dummy query
  (``last_residuals(model, tokens).mean(1)``, one vector per layer). It is used by *replacing*
  the output of layer L at the last position of another prompt (:func:`patch_residual`).
- Function vector (Todd): every head's mean output at the last position (its ``z``, the input to
  ``W_O``; :func:`mean_head_outputs`); the causal indirect effect of a head
  (:func:`indirect_effects`): on prompts whose labels are shuffled, the gain in probability of
  the correct answer when that head's last-position ``z`` is replaced by its mean; the function
  vector (:func:`function_vector`): the sum of the top heads' mean outputs through ``W_O``,
  *added* to the residual stream at the last position after layer L (:func:`add_at_layer`).

Speed: an edit at the last position after layer L changes nothing at earlier positions (causal
attention), so :func:`patch_residual` and :func:`add_at_layer` run the prompts once, keep their
keys and values, and recompute only the last position from layer L + 1 on, every layer's edit
stacked on the batch dimension of one forward pass (chunked to a memory budget), the
unembedding at that position only. :func:`indirect_effects` is one sweep of
:func:`lib.patching.patch_sweep` (every head's patch on the batch dimension, each forward from
the head's layer at the last position only) where the reference runs one forward pass per
prompt and head (benchmarks/task_vectors.py).

Precision: means are accumulated in float32 and every result is float32, whatever the model's
dtype (float16, bfloat16); vectors are cast to the model's dtype where they enter it.

Padding: every prompt's last position must be its answer position. Prompts of different lengths
are padded on the left with a tokenizer whose ``padding_side`` is ``"left"``: TransformerLens then
masks the pad tokens (as :mod:`lib.patching` does); or run groups of prompts of one length.
"""

from __future__ import annotations

from collections.abc import Sequence

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from lib.generation import chunks
from lib.hooks import every_layer, reduce_pass
from lib.patching import DEFAULT_MEMORY_BUDGET, patch_sweep
from lib.patching.plan import _row_bytes
from lib.patching.request import _as_tokens, _check
from lib.patching.target import _PrefixCache, _Target, _target_run

Heads = Sequence[tuple[int, int]] | Int[Tensor, "k 2"]


def _tokens(model: HookedTransformer, tokens: Tensor, layers: Sequence[int] | Tensor | None = None):
    """Token ids [batch, pos] (a 1-D tensor is one prompt) and layers (None: all; negative: from
    the end), checked before any forward pass."""
    tokens = _as_tokens(tokens)
    req = _check(model, tokens, "resid_post", "layer", layers, None, None, None)
    return tokens, req.layers


def _check_mean_z(model: HookedTransformer, mean_z: Tensor) -> None:
    cfg = model.cfg
    shape = (cfg.n_layers, cfg.n_heads, cfg.d_head)
    if not isinstance(mean_z, Tensor) or tuple(mean_z.shape) != shape:
        got = tuple(mean_z.shape) if isinstance(mean_z, Tensor) else type(mean_z).__name__
        raise ValueError(
            f"mean_z must be every head's mean z [layer, head, d_head] = {list(shape)} "
            f"(mean_head_outputs); got {got}"
        )


def last_residuals(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "layer batch d_model"]:
    """The residual stream at the last position after every layer (``resid_post``), float32, from
    one forward pass that keeps nothing else. The task vector at layer L is
    ``last_residuals(model, tokens)[L].mean(0)`` over prompts of demonstrations followed by a
    dummy query (Hendel et al.). Chapter 'Task vectors'."""
    tokens, _ = _tokens(model, tokens)
    cfg = model.cfg
    out = torch.empty(cfg.n_layers, tokens.shape[0], cfg.d_model, dtype=torch.float32, device=cfg.device)

    def read(x: Float[Tensor, "batch pos d_model"], hook: HookPoint) -> None:
        out[hook.layer()] = x[:, -1].float()

    reduce_pass(model, tokens, [(every_layer(model, "resid_post"), read)])
    return out


def _layer_vectors(
    vectors: Tensor, n_layers: int, batch: int, d_model: int
) -> Float[Tensor, "layer batch d_model"]:
    """One vector for every (layer, prompt): given as [d_model] (the same everywhere), [layer,
    d_model] (one per layer) or [layer, batch, d_model]."""
    if not isinstance(vectors, Tensor):
        raise ValueError(f"vectors must be a tensor; got {type(vectors).__name__}")
    allowed = [(d_model,), (n_layers, d_model), (n_layers, batch, d_model)]
    if tuple(vectors.shape) not in allowed:
        raise ValueError(
            f"vectors must have shape [d_model] = {list(allowed[0])}, [layer, d_model] = {list(allowed[1])} "
            f"or [layer, batch, d_model] = {list(allowed[2])} for {n_layers} layers and {batch} prompts; "
            f"got {list(vectors.shape)}"
        )
    if vectors.ndim == 1:
        return einops.repeat(vectors, "d -> n b d", n=n_layers, b=batch)
    if vectors.ndim == 2:
        return einops.repeat(vectors, "n d -> n b d", b=batch)
    return vectors


def _edit_last(
    model: HookedTransformer,
    tokens: Tensor,
    layers: Sequence[int] | Tensor | None,
    vectors: Tensor,
    add: bool,
    memory_budget: int,
) -> Float[Tensor, "layer batch d_vocab"]:
    """The last position's logits when its residual stream after each layer is replaced by (or,
    with ``add``, added to) that layer's vector; see the module docstring for how."""
    tokens, layers = _tokens(model, tokens, layers)
    cfg = model.cfg
    if cfg.attention_dir != "causal":
        raise ValueError("editing the last position alone needs a model with causal attention")
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget}")
    batch, n_pos = tokens.shape
    vectors = _layer_vectors(vectors, len(layers), batch, cfg.d_model)
    device = next(model.parameters()).device
    out = torch.empty(len(layers), batch, cfg.d_vocab, dtype=torch.float32, device=device)
    with torch.no_grad():
        target = _target_run(model, tokens.to(device), {layer + 1 for layer in layers}, {}, [n_pos - 1])
        per_chunk = max(1, memory_budget // (_row_bytes(model, n_pos, n_pos - 1, 1) * batch))
        order = sorted(range(len(layers)), key=layers.__getitem__)  # nearby layers share a pass
        for part in chunks(len(order), per_chunk):
            index = order[part]
            logits = _edited_logits(model, target, [layers[i] for i in index], vectors[index], add, n_pos)
            out[torch.tensor(index, device=device)] = logits
    return out


def _edited_logits(
    model: HookedTransformer,
    target: _Target,
    layers: list[int],
    vectors: Float[Tensor, "k batch d_model"],
    add: bool,
    n_pos: int,
) -> Float[Tensor, "k batch d_vocab"]:
    """One forward pass of the last position for ``k`` edits (distinct layers) stacked on the
    batch dimension, rows (edit, prompt): it starts after the first edited layer from the target
    run's residual stream, reads the prefix's keys and values from the target run, and edits
    each later layer's rows in a hook at its ``resid_post``."""
    k, n_layers = len(layers), model.cfg.n_layers
    first = min(layers)
    resid = target.resid[first + 1][:, -1:]
    v = vectors.to(resid.device, resid.dtype)

    def rep(x: Tensor) -> Tensor:
        return einops.repeat(x, "b ... -> (k b) ...", k=k)

    def edit(x: Float[Tensor, "rows 1 d_model"], layer: int) -> Float[Tensor, "rows 1 d_model"]:
        x = einops.rearrange(x, "(k b) p d -> k b p d", k=k).clone()
        i = layers.index(layer)
        x[i, :, -1] = x[i, :, -1] + v[i] if add else v[i]
        return einops.rearrange(x, "k b p d -> (k b) p d")

    x = edit(rep(resid), first)
    if first + 1 < n_layers:
        hooks = [
            (get_act_name("resid_post", layer), lambda act, hook: edit(act, hook.layer()))
            for layer in layers
            if layer != first
        ]
        with model.hooks(fwd_hooks=hooks):
            x = model(
                x,
                start_at_layer=first + 1,
                stop_at_layer=n_layers,
                past_kv_cache=_PrefixCache(target.kv, n_pos - 1, k),
                attention_mask=None if target.mask is None else rep(target.mask),
                shortformer_pos_embed=None if target.shortformer is None else rep(target.shortformer[:, -1:]),
            )
    logits = model(x, start_at_layer=n_layers)[:, -1].float()
    return einops.rearrange(logits, "(k b) v -> k b v", k=k)


def patch_residual(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    layers: Sequence[int] | Tensor | None,
    vectors: Float[Tensor, "*layer_batch d_model"],
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Float[Tensor, "layer batch d_vocab"]:
    """The last position's logits (float32) when the output of layer ``layers[i]`` at the last
    position of each prompt is *replaced* by a vector (Hendel et al.'s task-vector patching),
    every layer at once.

    Args:
        model: a HookedTransformer with causal attention.
        tokens: the prompts, e.g. zero-shot queries ``x ->``, [batch, pos].
        layers: the layers whose ``resid_post`` is patched (None: all), distinct; row ``i`` of the
            result is ``layers[i]``.
        vectors: [d_model] for every layer and prompt, [layer, d_model] one per layer (e.g. the
            task vectors of those layers, or another task's, to override), or [layer, batch,
            d_model] one per layer and prompt.
        memory_budget: bytes of activations per forward pass (an estimate).

    Chapter 'Task vectors'.
    """
    return _edit_last(model, tokens, layers, vectors, False, memory_budget)


def add_at_layer(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    layers: Sequence[int] | Tensor | None,
    vectors: Float[Tensor, "*layer_batch d_model"],
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Float[Tensor, "layer batch d_vocab"]:
    """The last position's logits (float32) when a vector is *added* to the hidden state at the
    last position after layer ``layers[i]`` (Todd et al.'s function-vector intervention), every
    layer at once. Arguments as for :func:`patch_residual`; ``vectors`` of shape [d_model] adds
    the same vector (a function vector) at each layer in turn. Chapter 'Task vectors'."""
    return _edit_last(model, tokens, layers, vectors, True, memory_budget)


def mean_head_outputs(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "layer head d_head"]:
    """Every head's mean output at the last position over the prompts: its ``z`` (``hook_z``, the
    input to ``W_O``; one per query head in grouped-query models), accumulated in float32, from
    one forward pass that keeps nothing else. Chapter 'Task vectors'."""
    tokens, _ = _tokens(model, tokens)
    cfg = model.cfg
    total = torch.zeros(cfg.n_layers, cfg.n_heads, cfg.d_head, dtype=torch.float32, device=cfg.device)

    def add(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint) -> None:
        total[hook.layer()] += z[:, -1].float().sum(0)

    reduce_pass(model, tokens, [(every_layer(model, "z"), add)])
    return total / tokens.shape[0]


def _answer_probs(
    logits: Float[Tensor, "batch d_vocab"], answers: Int[Tensor, " batch"]
) -> Float[Tensor, " batch"]:
    return logits.float().softmax(-1).gather(-1, answers[:, None])[:, 0]


def indirect_effects(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    answers: Int[Tensor, " batch"],
    mean_z: Float[Tensor, "layer head d_head"],
    per_prompt: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Float[Tensor, "layer head *batch"]:
    """The causal indirect effect of every head (Todd et al.), float32: on ``tokens`` (prompts
    whose demonstrations' labels are shuffled), replace the head's ``z`` at the last position by
    its mean ``mean_z`` (:func:`mean_head_outputs` of clean prompts) and record the probability
    of the correct answer token ``answers`` minus its probability unpatched, averaged over the
    prompts (``per_prompt``: a trailing [batch] axis instead). One batched
    :func:`lib.patching.patch_sweep` over every (layer, head). Chapter 'Task vectors'."""
    tokens, _ = _tokens(model, tokens)
    cfg = model.cfg
    batch, n_pos = tokens.shape
    _check_mean_z(model, mean_z)
    if not isinstance(answers, Tensor) or answers.shape != (batch,) or answers.is_floating_point():
        got = list(answers.shape) if isinstance(answers, Tensor) else type(answers).__name__
        raise ValueError(f"answers must be one token id per prompt, an integer tensor [{batch}]; got {got}")
    if int(answers.min()) < 0 or int(answers.max()) >= cfg.d_vocab:
        raise ValueError(f"answers must be token ids in [0, d_vocab={cfg.d_vocab}); got {answers.tolist()}")
    device = next(model.parameters()).device
    answers = answers.to(device)
    source = {
        get_act_name("z", layer): mean_z[layer].to(device, cfg.dtype).expand(batch, n_pos, -1, -1)
        for layer in range(cfg.n_layers)
    }
    patched = patch_sweep(
        model,
        tokens,
        source,
        "z",
        "head_pos",
        lambda logits: _answer_probs(logits[:, -1], answers),
        positions=[-1],
        logit_positions=[-1],
        per_prompt=True,
        memory_budget=memory_budget,
    )[:, 0]  # [layer, head, batch]
    with torch.no_grad():
        final = model(tokens.to(device), stop_at_layer=cfg.n_layers)
        clean = _answer_probs(model(final[:, -1:], start_at_layer=cfg.n_layers)[:, -1], answers)
    effects = patched.float() - clean
    return effects if per_prompt else effects.mean(-1)


def function_vector(
    model: HookedTransformer,
    mean_z: Float[Tensor, "layer head d_head"],
    heads: Heads,
) -> Float[Tensor, " d_model"]:
    """The function vector of ``heads`` ((layer, head) pairs, e.g. the top 10 by mean indirect
    effect), float32: the sum of each head's mean output pushed through its slice of the output
    projection, ``sum mean_z[l, h] @ W_O[l, h]`` (``W_O`` has one slice per query head, in
    grouped-query models too). Chapter 'Task vectors'.

    The output-projection bias ``b_O``: the reference (``ericwtodd/function_vectors``,
    ``compute_universal_function_vector`` in ``src/utils/extract_utils.py``) calls each layer's
    ``out_proj`` module once per head on that head's slice, so on models whose projection has a
    bias (GPT-2's ``c_proj``, GPT-NeoX/Pythia's ``dense``) it adds the bias k times, once per
    head; on GPT-J and Llama 2, the paper's main models, ``out_proj``/``o_proj`` have no bias
    and the function vector is exactly the sum above. ``b_O`` belongs to no head, is the same on
    every prompt and is already in the residual stream of the prompt the vector is added to, so it
    is left out: the vector is what the heads themselves write, and it equals the reference
    wherever the reference has no bias to duplicate.
    """
    cfg = model.cfg
    _check_mean_z(model, mean_z)
    pairs = [tuple(int(i) for i in p) for p in (heads.tolist() if isinstance(heads, Tensor) else heads)]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"heads must be a non-empty list of (layer, head) pairs; got {pairs}")
    bad = [p for p in pairs if not (0 <= p[0] < cfg.n_layers and 0 <= p[1] < cfg.n_heads)]
    if bad:
        raise ValueError(
            f"heads must be (layer, head) with layer in [0, {cfg.n_layers}) and head in "
            f"[0, {cfg.n_heads}); got {bad}"
        )
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"heads contain duplicates: {pairs}")
    with torch.no_grad():
        w_o = torch.stack([model.blocks[layer].attn.W_O[head] for layer, head in pairs]).float()
        z = torch.stack([mean_z[layer, head] for layer, head in pairs]).to(w_o)
        return einops.einsum(z, w_o, "k e, k e d -> d")
