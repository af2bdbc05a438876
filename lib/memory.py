"""Will a run fit? A conservative estimate of a chapter's peak memory from the model's config and
the chapter's input sizes, checked against what the device has free before the model loads, so a
run too big for the machine is refused in seconds with the numbers, instead of exhausting memory
until the system kills the kernel.

The estimate (bytes; ``b`` is the bytes of one value in the run's dtype, and attention patterns
and logits' softmax copies are counted in float32) is the weights plus, for the largest input
set of ``batch x seq`` tokens, per token:

- every layer's kept activations, what the chapters cache: three residual-width vectors (the
  residual stream's stages) and the attention pattern row, ``n_layers * (3 d_model b + 4 n_heads seq)``;
- one layer's working set inside a forward pass: ``4 d_model b + 5 d_mlp b + 20 n_heads seq``
  (four residual-width tensors, the MLP's hidden layer with its gate and activation's
  temporaries, five copies of the attention scores: raw, scaled, masked, pattern, its cast);
- the logits and two float32 copies (log-softmax, softmax): ``d_vocab (b + 8)``.

Patch sweeps chunk themselves to :mod:`lib.patching`'s own budget. Introduced in chapter
'Induction heads' (chapters/induction_heads.py); every chapter's validation cell calls
:func:`check` with its input sizes.
"""

from __future__ import annotations

from collections.abc import Mapping

import psutil
import torch

from lib import env

GIB = 2**30


def weight_bytes(config, dtype: str) -> int:
    """Bytes of the model's weights in ``dtype`` (embeddings, attention with its key/value heads,
    gated or plain MLP, unembedding), from its ``HookedTransformerConfig``."""
    kv_heads = getattr(config, "n_key_value_heads", None) or config.n_heads
    attention = 2 * config.d_model * config.d_head * (config.n_heads + kv_heads)
    mlp = 0 if config.attn_only else (3 if config.gated_mlp else 2) * config.d_model * config.d_mlp
    positions = config.n_ctx * config.d_model if config.positional_embedding_type == "standard" else 0
    vocab = (config.d_vocab + config.d_vocab_out) * config.d_model
    return (vocab + positions + config.n_layers * (attention + mlp)) * env.pick_dtype(dtype).itemsize


HEADROOM = 1.25  # the allocator's rounding and fragmentation, and temporaries the count misses: a
# measured peak came within 13% of the bare count


def activation_bytes(config, dtype: str, batch: int, seq: int) -> int:
    """Peak bytes of activations for ``batch`` inputs of ``seq`` tokens (module docstring)."""
    b = env.pick_dtype(dtype).itemsize
    d_mlp = 0 if config.attn_only else config.d_mlp
    kept = config.n_layers * (3 * config.d_model * b + 4 * config.n_heads * seq)
    working = 4 * config.d_model * b + 5 * d_mlp * b + 20 * config.n_heads * seq
    logits = config.d_vocab_out * (b + 8)
    return int(HEADROOM * batch * seq * (kept + working + logits))


def free_bytes(device: torch.device) -> int:
    """Memory free on ``device``: the GPU's free memory, or the machine's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available


def check(config, device: str, dtype: str, inputs: Mapping[str, tuple[int, int]]) -> int:
    """The estimated peak bytes of a run of the model of ``config`` on ``device`` in ``dtype``,
    whose largest input sets are ``inputs``: the parameters that size each -> ``(batch, seq)``.
    Raises a one-line ``ValueError`` with the estimate and the free memory when it does not fit,
    naming the parameters of the input set that needs most."""
    sizes, (batch, seq) = max(inputs.items(), key=lambda item: activation_bytes(config, dtype, *item[1]))
    weights, activations = weight_bytes(config, dtype), activation_bytes(config, dtype, batch, seq)
    torch_device = env.pick_device(device)
    free = free_bytes(torch_device)
    if weights + activations > free:
        raise ValueError(
            f"not enough memory: this run needs about {(weights + activations) / GIB:.1f} GiB "
            f"({weights / GIB:.1f} GiB of weights in {dtype}, {activations / GIB:.1f} GiB of activations "
            f"for {batch} x {seq} tokens) but {torch_device.type} has {free / GIB:.1f} GiB free; "
            f"lower {sizes}, or use a smaller model or DTYPE"
        )
    return weights + activations
