"""One RL run (GRPO on the sorting task, every parameter or a mask's) and its supervised
counterpart on the same problems, each evaluated on held-out problems as it goes.

Introduced in chapter 'RLVR subnetworks' (chapters/rlvr_subnetworks.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from lib.env import progress_disabled
from lib.language.sorting import EVAL_LENGTHS, Problem, problems
from lib.rl.grpo import group_advantages, grpo_loss, no_spread_fraction, padded, token_logprobs
from lib.rl.masks import Mask
from lib.rl.optim import MaskedAdamW
from lib.rl.rollout import exact_accuracy, generate
from lib.rl.task import SortTask

EVAL_SEED = 2001  # the post's 512 evaluation problems are seeded 2001


@dataclass(frozen=True)
class RunSpec:
    """A run's settings: TRL's GRPO defaults (G = 8, clip 0.2, beta 0, one update per batch,
    "dapo" normalisation, AdamW without weight decay, gradients clipped to norm 1) at a constant
    learning rate, ``prompts_per_step`` problems per step of :data:`EVAL_LENGTHS` letters."""

    lr: float
    steps: int = 300
    group: int = 8
    prompts_per_step: int = 16
    beta: float = 0.0
    epsilon: float = 0.2
    max_grad_norm: float = 1.0
    seed: int = 0
    eval_every: int = 25
    n_eval: int = 512


def step_problems(spec: RunSpec, step: int) -> list[Problem]:
    """The trained (never held-out) problems of one step, from the run's seed and the step."""
    return problems(
        spec.prompts_per_step, seed=1_000_003 * spec.seed + step, held=False, lengths=EVAL_LENGTHS
    )


def eval_problems(n: int) -> list[Problem]:
    """``n`` held-out problems of 5-8 letters, seeded 2001 as the post's evaluation."""
    return problems(n, EVAL_SEED, held=True, lengths=EVAL_LENGTHS)


def _optimizer(model: HookedTransformer, spec: RunSpec, mask: Mask | None):
    params = dict(model.named_parameters())
    if mask is None:
        return torch.optim.AdamW(params.values(), lr=spec.lr, weight_decay=0.0)
    return MaskedAdamW(params, mask, lr=spec.lr)


def _update(model: HookedTransformer, opt, loss: torch.Tensor, spec: RunSpec, mask: Mask | None) -> None:
    """Backward, the mask applied to the gradient (so clipping sees only trained entries), the
    gradient norm clipped, one optimizer step."""
    loss.backward()
    if mask is not None:
        for name, p in model.named_parameters():
            p.grad.mul_(mask[name].to(p.device))
    torch.nn.utils.clip_grad_norm_(model.parameters(), spec.max_grad_norm)
    opt.step()
    opt.zero_grad()


def run(
    model: HookedTransformer, task: SortTask, spec: RunSpec, mask: Mask | None = None, progress: bool = True
) -> dict[str, list[dict[str, float]]]:
    """GRPO on ``model`` in place, every parameter or only ``mask``'s entries (optimizer state for
    those alone). Returns the log: per step the mean exact and partial reward of the sampled
    completions and the fraction of groups with no reward spread; every ``eval_every`` steps and
    at the end, greedy exact accuracy on ``n_eval`` held-out problems."""
    ref = copy.deepcopy(model).requires_grad_(False) if spec.beta else None
    opt, generator = _optimizer(model, spec, mask), torch.Generator(model.cfg.device).manual_seed(spec.seed)
    held, log = eval_problems(spec.n_eval), {"train": [], "eval": []}
    for step in tqdm(range(spec.steps + 1), desc="GRPO", disable=not progress or progress_disabled()):
        if step % spec.eval_every == 0 or step == spec.steps:
            log["eval"].append({"step": step, "accuracy": exact_accuracy(model, task, held)})
        if step == spec.steps:
            break
        batch = [p for p in step_problems(spec, step) for _ in range(spec.group)]
        prompts, completions = generate(model, task, batch, temperature=1.0, generator=generator)
        exact, partial = torch.tensor([task.reward(p, c) for p, c in zip(batch, completions)]).T
        rows, where, cmask = padded(prompts, completions, model.cfg.device)
        ref_logps = None
        if ref is not None:
            with torch.no_grad():
                ref_logps = token_logprobs(ref, rows, where)
        with torch.enable_grad():
            logps = token_logprobs(model, rows, where)
            advantages = group_advantages(exact, spec.group).to(logps.device)
            loss = grpo_loss(logps, logps.detach(), advantages, cmask, ref_logps, spec.beta, spec.epsilon)
            _update(model, opt, loss, spec, mask)
        log["train"].append(
            {
                "step": step,
                "reward": exact.mean().item(),
                "partial": partial.mean().item(),
                "no_spread": no_spread_fraction(exact, spec.group),
            }
        )
    return log


def sft_run(
    model: HookedTransformer, task: SortTask, spec: RunSpec, progress: bool = True
) -> dict[str, list[dict[str, float]]]:
    """Supervised fine-tuning on the RL run's problems (the same ``prompts_per_step`` problems a
    step, each once with its reference answer), the same optimizer and rate; the loss is the mean
    cross-entropy of the answer tokens. Logged as :func:`run` logs (training loss per step)."""
    opt, held, log = _optimizer(model, spec, None), eval_problems(spec.n_eval), {"train": [], "eval": []}
    for step in tqdm(range(spec.steps + 1), desc="SFT", disable=not progress or progress_disabled()):
        if step % spec.eval_every == 0 or step == spec.steps:
            log["eval"].append({"step": step, "accuracy": exact_accuracy(model, task, held)})
        if step == spec.steps:
            break
        batch = step_problems(spec, step)
        rows, where, cmask = padded(
            [task.prompt(p) for p in batch], [task.reference(p) for p in batch], model.cfg.device
        )
        with torch.enable_grad():
            loss = -(token_logprobs(model, rows, where) * cmask).sum() / cmask.sum()
            _update(model, opt, loss, spec, None)
        log["train"].append({"step": step, "loss": loss.item()})
    return log
