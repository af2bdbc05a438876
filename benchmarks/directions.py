"""Refusal-direction selection: ``lib.directions.select_direction`` against the reference's loop,
timed in one run.

    python -m benchmarks.directions                 # CPU; writes benchmarks/RESULTS-directions.md
    python -m benchmarks.directions --device cuda   # the same on a GPU
    python -m benchmarks.directions --smoke         # a tiny model, seconds; writes nothing

The reference pipeline (Arditi et al. 2024, ``refusal_direction``) scores every candidate
direction (n_pos positions x n_layer layers) with three separate loops of full forward passes:
the KL on harmless prompts under ablation, the refusal score on harmful prompts under ablation,
the refusal score on harmless prompts under addition; 3 x n_pos x n_layer passes, each waiting
for its ``.item()``. :func:`select_direction_loop` is that loop, with the same hooks and scores.
The benchmark times it and ``lib.directions.select_direction`` on a GPT-2-small-size model with
random weights and random prompts, checks that both select the same candidate and agree on
every score, and prints the ratio.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence

import pandas as pd
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from benchmarks.patching import OtherJobs, timed, write_results
from lib import directions, env
from lib.generation import Prompts

RESULTS = os.path.join(os.path.dirname(__file__), "RESULTS-directions.md")
GPT2_SMALL = dict(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257, n_ctx=1024)
TINY = dict(n_layers=3, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=60, n_ctx=32)


def select_direction_loop(
    model: HookedTransformer,
    candidates: torch.Tensor,
    harmful: Prompts,
    harmless: Prompts,
    refusal_ids: Sequence[int],
    kl_threshold: float = 0.1,
    steering_threshold: float = 0.0,
    prune_layer_fraction: float = 0.2,
) -> directions.Selection:
    """The reference's selection, one full forward pass per candidate and per score."""
    n_pos, n_layer, _ = candidates.shape

    def last(prompts: Prompts, hooks: list) -> torch.Tensor:
        logits = model.run_with_hooks(prompts.tokens, attention_mask=prompts.mask, fwd_hooks=hooks)
        return logits[:, -1]

    base = last(harmless, [])
    scores = {k: torch.zeros(n_pos, n_layer, dtype=torch.float64) for k in ("kl", "ablation", "steering")}
    for p in range(n_pos):
        for layer in range(n_layer):
            hooks = directions.ablation_hooks(model, candidates[p, layer].to(model.cfg.dtype))
            scores["kl"][p, layer] = directions.kl_last(base, last(harmless, hooks)).mean().item()
    for p in range(n_pos):
        for layer in range(n_layer):
            hooks = directions.ablation_hooks(model, candidates[p, layer].to(model.cfg.dtype))
            score = directions.refusal_score(last(harmful, hooks), refusal_ids)
            scores["ablation"][p, layer] = score.mean().item()
    for p in range(n_pos):
        for layer in range(n_layer):
            hooks = directions.addition_hooks(candidates[p, layer].to(model.cfg.dtype), layer)
            score = directions.refusal_score(last(harmless, hooks), refusal_ids)
            scores["steering"][p, layer] = score.mean().item()
    eligible = directions.filter_candidates(
        scores["ablation"],
        scores["steering"],
        scores["kl"],
        kl_threshold,
        steering_threshold,
        prune_layer_fraction,
    )
    best = min(
        ((scores["ablation"][p, layer].item(), p, layer) for p, layer in eligible.nonzero().tolist()),
        default=None,
    )
    if best is None:
        raise ValueError("no candidate direction passes the filters")
    _, p, layer = best
    return directions.Selection(
        scores["ablation"],
        scores["steering"],
        scores["kl"],
        eligible,
        p - n_pos,
        layer,
        candidates[p, layer],
        True,
    )


def case(cfg: dict, device: str, n_prompts: int, length: int, n_pos: int):
    """A GPT-2-architecture model with random weights; random harmful and harmless prompts of
    ``length`` tokens (the harmless ones a token shorter, so padding is exercised); candidates
    from ``n_prompts`` other random prompts per class; refusal tokens: two fixed ids."""
    torch.manual_seed(0)
    model = HookedTransformer(
        HookedTransformerConfig(**cfg, act_fn="gelu_new", normalization_type="LN", device=device)
    ).eval()
    g = torch.Generator().manual_seed(0)

    def prompts(n: int, width: int) -> Prompts:
        tokens = torch.randint(cfg["d_vocab"], (n, width), generator=g)
        return Prompts(tokens, torch.ones_like(tokens)).to(device)

    train = [prompts(n_prompts, length), prompts(n_prompts, length)]
    val_harmful, val_harmless = prompts(n_prompts, length), prompts(n_prompts, length - 1)
    candidates = directions.mean_diff(model, *train, n_pos)
    # a random model has no refusal: let the refusal tokens read the candidates' mean direction,
    # so that ablating a candidate moves the refusal score and the winner is clear
    refusal_ids = [1, 2]
    mean = candidates.mean((0, 1))
    model.W_U[:, refusal_ids] += 3 * (mean / mean.norm())[:, None].to(model.W_U)
    return model, candidates, val_harmful, val_harmless, refusal_ids


def ideal_ratio(
    cfg: dict, n_pos: int, n_harmful: int, n_harmless: int, len_harmful: int, len_harmless: int
) -> float:
    """The loop's FLOPs over lib's, counted from the config (a multiply-add is 2 FLOPs; the
    attention scores, norms and activations not counted). The loop: 3 passes per candidate over
    every layer, the unembedding at every position. lib: one ablation pass per candidate over
    harmful and harmless prompts together (padded to the longer), the unembedding at the last
    position; addition passes from the candidate's layer on; one unhooked pass of each set."""
    d, layers, vocab = cfg["d_model"], cfg["n_layers"], cfg["d_vocab"]
    block = 2 * (4 * d * d + 2 * d * cfg["d_mlp"])  # per token and layer
    unembed = 2 * d * vocab  # per position
    tokens = {"harmful": n_harmful * len_harmful, "harmless": n_harmless * len_harmless}
    candidates = n_pos * layers
    loop = candidates * (2 * tokens["harmless"] + tokens["harmful"]) * (layers * block + unembed)
    loop += tokens["harmless"] * (layers * block + unembed)  # the baseline logits
    ablation = candidates * (n_harmful + n_harmless) * max(len_harmful, len_harmless) * layers * block
    steering = n_pos * tokens["harmless"] * block * sum(layers - layer for layer in range(layers))
    unhooked = (tokens["harmful"] + 2 * tokens["harmless"]) * layers * block
    last = (candidates * (n_harmful + 2 * n_harmless) + n_harmless) * unembed
    return loop / (ablation + steering + unhooked + last)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.directions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--device", default="cpu", choices=env.DEVICES)
    parser.add_argument("--smoke", action="store_true", help="a tiny model, seconds, writes nothing")
    args = parser.parse_args(argv)
    device = str(env.pick_device(args.device))
    grad = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        others = OtherJobs()
        cfg, n_prompts, length, n_pos = (TINY, 4, 8, 2) if args.smoke else (GPT2_SMALL, 32, 20, 5)
        model, candidates, harmful, harmless, ids = case(cfg, device, n_prompts, length, n_pos)
        # the refusal direction is ablated where it is read (KL above the reference's 0.1 on a
        # random model): the benchmark keeps every layer below the pruned ones eligible
        kwargs = dict(kl_threshold=math.inf, steering_threshold=-math.inf)
        loop, loop_s, loop_mb = timed(
            device, lambda: select_direction_loop(model, candidates, harmful, harmless, ids, **kwargs)
        )
        batched, lib_s, lib_mb = timed(
            device, lambda: directions.select_direction(model, candidates, harmful, harmless, ids, **kwargs)
        )
    finally:
        torch.set_grad_enabled(grad)
    diff = max(
        (getattr(batched, k).cpu() - getattr(loop, k)).abs().max().item()
        for k in ("ablation", "steering", "kl")
    )
    row = {
        "model": "GPT-2-small-size" if cfg is GPT2_SMALL else "tiny",
        "candidates": f"{n_pos} x {cfg['n_layers']}",
        "loop passes": 3 * n_pos * cfg["n_layers"],
        "loop s": f"{loop_s:.3g}",
        "lib s": f"{lib_s:.3g}",
        "speed-up": f"{loop_s / lib_s:.3g}x",
        "ideal (FLOPs)": f"{ideal_ratio(cfg, n_pos, n_prompts, n_prompts, length, length - 1):.3g}x",
        "same candidate": (batched.pos, batched.layer) == (loop.pos, loop.layer),
        "max abs diff": f"{diff:.1e}",
        "peak MB loop": f"{loop_mb:.0f}",
        "peak MB lib": f"{lib_mb:.0f}",
    }
    share = others.share()
    text = (
        f"Device: {device}. While it ran, other processes used {share:.0%} of the machine's "
        f"{os.cpu_count()} CPU cores.\n- {row['model']} ({cfg['n_layers']} layers, d_model "
        f"{cfg['d_model']}, {cfg['n_heads']} heads, d_vocab {cfg['d_vocab']}), random weights: "
        f"{n_prompts} harmful validation prompts of {length} random tokens, {n_prompts} harmless of "
        f"{length - 1} (padded on the left); candidates at the last {n_pos} positions of every layer; "
        f"selected (pos, layer): lib ({batched.pos}, {batched.layer}), loop ({loop.pos}, {loop.layer})\n\n"
        + pd.DataFrame([row]).to_markdown(index=False)
        + "\n"
    )
    print(text)
    if not args.smoke:
        write_results(
            RESULTS, "Direction-selection benchmark results", "benchmarks.directions", device, text, NOTES
        )
    return row | {"loop_s": loop_s, "lib_s": lib_s, "diff": diff}


NOTES = """\
Columns: *loop s* is the reference's selection, one full forward pass per candidate and per
score (*loop passes* of them, each followed by `.item()`), with the logits of every position;
*lib s* is `lib.directions.select_direction`: candidates stacked on the batch dimension (each
row ablates its own direction), the ablation score and the KL in one pass over harmful and
harmless prompts together, addition started at the candidate's layer from the cached residual
stream, the unembedding at the last position only. *max abs diff*: the largest difference
between the two on any of the three scores of any candidate. *ideal (FLOPs)*: the ratio of the
FLOPs both do, counted from the config: batching itself saves no arithmetic, so what the ratio
adds beyond it is the loop's overheads and the larger matrix multiplies. The filters are off (KL and
steering thresholds), since a random model's scores would discard most candidates; the layer
pruning stays."""


if __name__ == "__main__":
    main()
