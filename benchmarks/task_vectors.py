"""Causal indirect effects of every head: ``lib.task_vectors.indirect_effects`` against the
reference's loop, timed in one run.

    python -m benchmarks.task_vectors                 # CPU; writes benchmarks/RESULTS-task_vectors.md
    python -m benchmarks.task_vectors --device cuda   # the same on a GPU
    python -m benchmarks.task_vectors --smoke         # a tiny model, seconds; writes nothing
    python -m benchmarks.task_vectors --prompts 2     # fewer prompts, to try it; writes nothing

The reference (Todd et al. 2024, ``function_vectors``: ``compute_indirect_effect.py``) measures
the causal indirect effect of each head on each of 25 shuffled-label prompts (10 here, see
N_PROMPTS) with one forward pass per prompt and per head, batch 1, that head's last-position
output replaced by its mean,
all positions unembedded; plus one unpatched pass per prompt: 25 x (1 + n_layer x n_head)
passes. :func:`indirect_effects_loop` is that loop (each value read with ``.item()``). The
benchmark times it and ``lib.task_vectors.indirect_effects`` on a GPT-2-small-size model with
random weights and random prompts of ~10-shot length, checks that both agree on every head and
prompt, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os

import pandas as pd
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.utilities import get_act_name

from benchmarks.directions import GPT2_SMALL, TINY
from benchmarks.patching import OtherJobs, timed, write_results
from lib import env, task_vectors

RESULTS = os.path.join(os.path.dirname(__file__), "RESULTS-task_vectors.md")
# The reference uses 25 prompts; 10 keep the CPU loop (1,450 GPT-2-small passes) near ten minutes, and
# the FLOP ratio does not depend on the count (each prompt costs both sides the same). 10 shots of
# "Q: x\nA: y\n\n" are ~60 tokens.
N_PROMPTS, LENGTH = 10, 60


def indirect_effects_loop(
    model: HookedTransformer, tokens: torch.Tensor, answers: torch.Tensor, mean_z: torch.Tensor
) -> torch.Tensor:
    """The reference's loop: per prompt, one unpatched pass and one pass per head with that
    head's last-position z replaced by its mean, batch 1, every position unembedded; the gain in
    probability of the answer, [layer, head, batch]."""
    cfg = model.cfg
    out = torch.zeros(cfg.n_layers, cfg.n_heads, len(tokens))
    for b in range(len(tokens)):
        row, answer = tokens[b : b + 1], int(answers[b])
        clean = model(row)[0, -1].softmax(-1)[answer].item()
        for layer in range(cfg.n_layers):
            for head in range(cfg.n_heads):

                def replace(z, hook, layer=layer, head=head):
                    z[:, -1, head] = mean_z[layer, head].to(z)
                    return z

                logits = model.run_with_hooks(row, fwd_hooks=[(get_act_name("z", layer), replace)])
                out[layer, head, b] = logits[0, -1].softmax(-1)[answer].item() - clean
    return out


def case(cfg: dict, device: str, n_prompts: int, length: int):
    """A GPT-2-architecture model with random weights; ``n_prompts`` random prompts of ``length``
    tokens with random answers; the mean z of every head over as many other random prompts."""
    torch.manual_seed(0)
    model = HookedTransformer(
        HookedTransformerConfig(**cfg, act_fn="gelu_new", normalization_type="LN", device=device)
    ).eval()
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(cfg["d_vocab"], (n_prompts, length), generator=g).to(device)
    shuffled = torch.randint(cfg["d_vocab"], (n_prompts, length), generator=g).to(device)
    answers = torch.randint(cfg["d_vocab"], (n_prompts,), generator=g).to(device)
    return model, shuffled, answers, task_vectors.mean_head_outputs(model, clean)


def ideal_ratio(cfg: dict, n_prompts: int, length: int) -> float:
    """The loop's FLOPs over lib's, counted from the config (a multiply-add is 2 FLOPs; the
    attention scores, norms and activations not counted). The loop: 1 + n_layer x n_head full
    passes per prompt, every position unembedded. lib: one target pass (every position
    unembedded), each head's patch from its layer on at the last position only with one
    unembedding, and one unpatched pass unembedding the last position."""
    d, layers, heads, vocab = cfg["d_model"], cfg["n_layers"], cfg["n_heads"], cfg["d_vocab"]
    block = 2 * (4 * d * d + 2 * d * cfg["d_mlp"])  # per token and layer
    unembed = 2 * d * vocab  # per position
    full = length * (layers * block + unembed)
    loop = n_prompts * (1 + layers * heads) * full
    patches = n_prompts * heads * sum((layers - layer) * block + unembed for layer in range(layers))
    lib = n_prompts * full + patches + n_prompts * (length * layers * block + unembed)
    return loop / lib


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.task_vectors", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--device", default="cpu", choices=env.DEVICES)
    parser.add_argument("--smoke", action="store_true", help="a tiny model, seconds, writes nothing")
    parser.add_argument(
        "--prompts", type=int, default=None, help=f"prompts (default {N_PROMPTS}); writes nothing"
    )
    args = parser.parse_args(argv)
    if args.prompts is not None and args.prompts < 1:
        parser.error(f"--prompts must be at least 1; got {args.prompts}")
    device = str(env.pick_device(args.device))
    cfg, n_prompts, length = (TINY, 4, 8) if args.smoke else (GPT2_SMALL, N_PROMPTS, LENGTH)
    n_prompts = args.prompts or n_prompts
    grad = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        others = OtherJobs()
        model, tokens, answers, mean_z = case(cfg, device, n_prompts, length)
        loop, loop_s, loop_mb = timed(device, lambda: indirect_effects_loop(model, tokens, answers, mean_z))
        batched, lib_s, lib_mb = timed(
            device, lambda: task_vectors.indirect_effects(model, tokens, answers, mean_z, per_prompt=True)
        )
    finally:
        torch.set_grad_enabled(grad)
    diff = (batched.cpu() - loop).abs().max().item()
    top_lib = divmod(int(batched.mean(-1).argmax()), cfg["n_heads"])
    top_loop = divmod(int(loop.mean(-1).argmax()), cfg["n_heads"])
    row = {
        "model": "GPT-2-small-size" if cfg is GPT2_SMALL else "tiny",
        "heads": f"{cfg['n_layers']} x {cfg['n_heads']}",
        "prompts": n_prompts,
        "loop passes": n_prompts * (1 + cfg["n_layers"] * cfg["n_heads"]),
        "loop s": f"{loop_s:.3g}",
        "lib s": f"{lib_s:.3g}",
        "speed-up": f"{loop_s / lib_s:.3g}x",
        "ideal (FLOPs)": f"{ideal_ratio(cfg, n_prompts, length):.3g}x",
        "same top head": top_lib == top_loop,
        "max abs diff": f"{diff:.1e}",
        "peak MB loop": f"{loop_mb:.0f}",
        "peak MB lib": f"{lib_mb:.0f}",
    }
    share = others.share()
    text = (
        f"Device: {device}. While it ran, other processes used {share:.0%} of the machine's "
        f"{os.cpu_count()} CPU cores.\n- {row['model']} ({cfg['n_layers']} layers, d_model "
        f"{cfg['d_model']}, {cfg['n_heads']} heads, d_vocab {cfg['d_vocab']}), random weights: "
        f"{n_prompts} prompts of {length} random tokens with random answer tokens; the mean z of every "
        f"head from {n_prompts} other random prompts; top head by mean effect (layer, head): lib "
        f"{top_lib}, loop {top_loop}\n\n" + pd.DataFrame([row]).to_markdown(index=False) + "\n"
    )
    print(text)
    if not args.smoke and args.prompts is None:
        write_results(
            RESULTS, "Indirect-effect benchmark results", "benchmarks.task_vectors", device, text, NOTES
        )
    return row | {"loop_s": loop_s, "lib_s": lib_s, "diff": diff}


NOTES = """\
Columns: *loop s* is the reference's causal indirect effects (Todd et al., `compute_indirect_effect.py`):
per prompt one unpatched pass and one pass per head, batch 1, with that head's last-position z
replaced by its mean, every position unembedded, each probability read with `.item()` (*loop
passes* in all); *lib s* is `lib.task_vectors.indirect_effects`: one `lib.patching.patch_sweep`
with every head's patch on the batch dimension, each forward pass starting at the head's layer
at the last position only (the prompt's keys and values cached), the unembedding at that
position only, plus one unpatched pass. *max abs diff*: the largest difference between the two
on any head and prompt (probabilities). *ideal (FLOPs)*: the ratio of the FLOPs both do,
counted from the config; what the speed-up adds beyond it is the loop's overheads and the
larger matrix multiplies."""


if __name__ == "__main__":
    main()
