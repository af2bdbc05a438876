"""GRPO's two costs the RLVR chapter cuts: rollouts with TransformerLens's key-value cache against
recomputing the prefix, and MaskedAdamW's optimizer state against torch AdamW's, in one run.

    python -m benchmarks.grpo                 # sort-4l on the CPU; writes benchmarks/RESULTS-grpo.md
    python -m benchmarks.grpo --device cuda   # the same on a GPU
    python -m benchmarks.grpo --smoke         # a tiny random model, seconds; writes nothing

Rollouts: one GRPO step's sampling, G = 8 completions at temperature 1 for each of the 16 problems
of an RL run's first step (``lib.rl.runs.step_problems``), on the zoo organism ``sort-4l`` as
training sees it (``processed=False``), with ``lib.rl.rollout.generate`` twice from one generator
seed: with the cache (the prompt run once, then one position per new token) and without it (the
whole prefix run again for every new token). Both must sample the same tokens; the benchmark
prints completion tokens per second for each, their ratio, and the ideal ratio from the positions
each runs through the model.

Optimizer state: torch AdamW's two float32 moments for every parameter
(``lib.rl.optim.adamw_state_bytes``, checked against a real ``torch.optim.AdamW``'s state after
one step) against ``lib.rl.optim.MaskedAdamW``'s for a 1% random mask (``lib.rl.masks.random_mask``,
the post's recipe): two moments and an int32 index per masked entry.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict

import pandas as pd
import torch
from torch import nn
from transformer_lens import HookedTransformer, HookedTransformerConfig

from benchmarks.patching import OtherJobs, timed, write_results
from lib import env, language, models, zoo
from lib.language.sorting import Problem
from lib.rl.masks import random_mask
from lib.rl.optim import MaskedAdamW, adamw_state_bytes
from lib.rl.rollout import generate
from lib.rl.runs import RunSpec, step_problems
from lib.rl.task import SortTask, organism_task

RESULTS = os.path.join(os.path.dirname(__file__), "RESULTS-grpo.md")
ORGANISM = "sort-4l"
GROUP, N_PROMPTS, KEEP, SEED = 8, 16, 0.01, 0  # TRL's G, the chapter's prompts per step, a 1% mask
# the smoke model: sort-4l's vocabulary (the book's language) on a tiny random transformer
TINY = dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=len(language.VOCAB), n_ctx=32)


def tiny_model(device: str) -> HookedTransformer:
    torch.manual_seed(0)
    return HookedTransformer(
        HookedTransformerConfig(**TINY, act_fn="gelu_new", normalization_type="LN", device=device)
    ).eval()


def sample(model: HookedTransformer, task: SortTask, batch: list[Problem], use_cache: bool):
    """One GRPO step's rollouts from a fresh generator seeded :data:`SEED`."""
    generator = torch.Generator(model.cfg.device).manual_seed(SEED)
    return generate(model, task, batch, temperature=1.0, generator=generator, use_cache=use_cache)


def positions(prompts: list[list[int]], completions: list[list[int]]) -> tuple[int, int]:
    """(positions run with the cache, positions run without it), summed over rows: a batch of
    prompts of one length P decodes S steps (its longest completion); with the cache a row runs
    P positions and then one per step, without it P + s positions at step s."""
    steps: dict[int, int] = defaultdict(int)
    rows: dict[int, int] = defaultdict(int)
    for p, c in zip(prompts, completions):
        steps[len(p)] = max(steps[len(p)], len(c))
        rows[len(p)] += 1
    cached = sum(rows[p] * (p + s - 1) for p, s in steps.items())
    recomputed = sum(rows[p] * sum(p + i for i in range(s)) for p, s in steps.items())
    return cached, recomputed


def torch_adamw_bytes(params: dict[str, nn.Parameter]) -> int:
    """The bytes of a real ``torch.optim.AdamW``'s moments after one step, on copies of the
    parameters (the step counters aside, as ``adamw_state_bytes``)."""
    copies = [nn.Parameter(p.detach().clone()) for p in params.values()]
    for c in copies:
        c.grad = torch.zeros_like(c)
    opt = torch.optim.AdamW(copies, lr=1e-3)
    opt.step()
    return sum(v.nbytes for state in opt.state.values() for k, v in state.items() if k != "step")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grpo", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=env.DEVICES)
    parser.add_argument("--smoke", action="store_true", help="a tiny random model, seconds, writes nothing")
    args = parser.parse_args(argv)
    device = str(env.pick_device(args.device))
    name = "tiny random" if args.smoke else ORGANISM
    if args.smoke:
        model, n_prompts = tiny_model(device), 4
    else:
        if not (zoo.ORGANISMS_DIR / ORGANISM / "manifest.json").exists():
            raise SystemExit(f"benchmarks.grpo: the zoo organism {ORGANISM} is not in {zoo.ORGANISMS_DIR}")
        model, n_prompts = models.load_model(ORGANISM, device, "float32", processed=False), N_PROMPTS
    task = organism_task()
    problems = step_problems(RunSpec(lr=0.0), 0)[:n_prompts]
    batch = [p for p in problems for _ in range(GROUP)]
    grad = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        others = OtherJobs()
        for use_cache in (True, False):  # warm-up: first-call allocations and kernel choices
            sample(model, task, batch[:GROUP], use_cache)
        (prompts, cached), cache_s, _ = timed(device, lambda: sample(model, task, batch, True), repeats=3)
        (_, recomputed), nocache_s, _ = timed(device, lambda: sample(model, task, batch, False), repeats=3)
    finally:
        torch.set_grad_enabled(grad)
    same = cached == recomputed
    if not same:
        raise AssertionError("the cached and recomputed rollouts sampled different tokens")
    tokens = sum(len(c) for c in cached)
    cached_pos, recomputed_pos = positions(prompts, cached)
    rollout = {
        "model": name,
        "completions": f"{len(problems)} x {GROUP}",
        "completion tokens": tokens,
        "cache tok/s": f"{tokens / cache_s:.4g}",
        "no-cache tok/s": f"{tokens / nocache_s:.4g}",
        "speed-up": f"{nocache_s / cache_s:.3g}x",
        "ideal (positions)": f"{recomputed_pos / cached_pos:.3g}x",
        "same tokens": same,
    }

    params = dict(model.named_parameters())
    mask = random_mask({n: p.shape for n, p in params.items()}, KEEP, SEED)
    masked = MaskedAdamW(params, mask, lr=1e-4)
    entries = sum(int(m.sum()) for m in mask.values())
    n_params = sum(p.numel() for p in params.values())
    adamw, masked_bytes, real_adamw = (
        adamw_state_bytes(params),
        masked.state_bytes(),
        torch_adamw_bytes(params),
    )
    if real_adamw != adamw:
        raise AssertionError(
            f"torch AdamW holds {real_adamw} bytes of moments; adamw_state_bytes says {adamw}"
        )
    index_bytes = sum(i.nbytes for _, i, _, _ in masked.entries.values())
    memory = {
        "model": name,
        "parameters": n_params,
        "masked entries": entries,
        "AdamW MB": f"{adamw / 2**20:.3g}",
        "MaskedAdamW MB": f"{masked_bytes / 2**20:.3g}",
        "of which index MB": f"{index_bytes / 2**20:.3g}",
        "ratio": f"{adamw / masked_bytes:.3g}x",
        "ratio, moments only": f"{adamw / (masked_bytes - index_bytes):.3g}x",
    }
    share = others.share()
    lengths = sorted({len(p) for p in problems})
    text = (
        f"Device: {device}. While it ran, other processes used {share:.0%} of the machine's "
        f"{os.cpu_count()} CPU cores.\n- {name} ({model.cfg.n_layers} layers, d_model {model.cfg.d_model}, "
        f"{model.cfg.n_heads} heads, d_vocab {model.cfg.d_vocab}{'' if args.smoke else ', unprocessed'}): "
        f"{GROUP} completions at temperature 1 for each of {len(problems)} trained sorting problems of "
        f"{lengths[0]}-{lengths[-1]} letters (an RL run's first step), best of 3 timed runs each; mask: "
        f"{KEEP:.0%} of every parameter tensor's entries at random (seed {SEED})\n\n"
        + pd.DataFrame([rollout]).to_markdown(index=False)
        + "\n\n"
        + pd.DataFrame([memory]).to_markdown(index=False)
        + "\n"
    )
    print(text)
    if not args.smoke:
        write_results(RESULTS, "GRPO benchmark results", "benchmarks.grpo", device, text, NOTES)
    return (
        rollout
        | memory
        | {
            "cache_s": cache_s,
            "nocache_s": nocache_s,
            "tokens": tokens,
            "entries": entries,
            "adamw_bytes": adamw,
            "masked_bytes": masked_bytes,
            "torch_adamw_bytes": real_adamw,
        }
    )


NOTES = """\
Columns, first table: *cache tok/s* is completion tokens per second of `lib.rl.rollout.generate`
with TransformerLens's key-value cache (each batch of prompts of one length run once, then one
position per new token); *no-cache tok/s* the same call with `use_cache=False`, which runs the
whole prefix again for every new token. Both sample from one generator seed and must write the
same tokens (*same tokens*). Completion tokens count what the completions keep (up to and
including the stop token); rows that have stopped still ride in their batch until all have.
*ideal (positions)*: the positions run through the model without the cache over those run with
it, which is the speed-up if every position cost the same (attention's growth with the prefix
not counted); on a small model per-call overheads keep the measured one below it.

Second table: *AdamW MB* is torch AdamW's state, two float32 moments per parameter
(`lib.rl.optim.adamw_state_bytes`, equal to a real `torch.optim.AdamW`'s after one step; the step
counters aside); *MaskedAdamW MB* is `lib.rl.optim.MaskedAdamW.state_bytes()` for the mask: two
float32 moments and an int32 index per masked entry, so 12 bytes per entry against AdamW's 8
per parameter, and the ratio is about two thirds of 1 / keep. *ratio, moments only*: without the
index. The boolean mask itself (one byte per parameter, used to mask the gradient) is not
optimizer state and is not counted."""


if __name__ == "__main__":
    main()
