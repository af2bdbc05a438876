"""Sampling completions for RL and greedy evaluation, with TransformerLens's KV cache: the prompt
is run once and each new token costs one position, not the whole prefix again.

Prompts of one length are decoded together (no padding to get wrong); a completion ends at the
task's stop token, which it keeps. Introduced in chapter 'RLVR subnetworks'
(chapters/rlvr_subnetworks.py).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from lib.language.sorting import Problem
from lib.rl.task import SortTask


@torch.no_grad()
def _decode_same_length(
    model: HookedTransformer,
    prompts: Int[Tensor, "batch prompt"],
    max_new: int,
    stop_id: int,
    temperature: float,
    generator: torch.Generator | None,
    use_cache: bool = True,
) -> Int[Tensor, "batch new"]:
    """``max_new`` tokens after each prompt, sampled at ``temperature`` (0: greedy); a row that
    wrote ``stop_id`` writes ``stop_id`` from then on."""
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, prompts.shape[0])
    tokens, new = prompts, []
    done = torch.zeros(prompts.shape[0], dtype=torch.bool, device=prompts.device)
    for _ in range(max_new):
        if use_cache:  # an explicit mask: no pad guessing from the tokenizer (nor a need for one)
            step = tokens if not new else new[-1][:, None]
            logits = model(step, attention_mask=torch.ones_like(step), past_kv_cache=cache)[:, -1]
        else:
            logits = model(torch.cat([prompts, *[t[:, None] for t in new]], dim=1))[:, -1]
        if temperature == 0:
            token = logits.argmax(-1)
        else:
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator)[:, 0]
        token = torch.where(done, stop_id, token)
        done |= token == stop_id
        new.append(token)
        if done.all():
            break
    return torch.stack(new, dim=1)


def generate(
    model: HookedTransformer,
    task: SortTask,
    problems: list[Problem],
    temperature: float,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> tuple[list[list[int]], list[list[int]]]:
    """(prompts, completions) of every problem, as token-id lists; each completion stops after the
    task's stop token or at the task's ``max_new`` tokens. Problems whose prompts have one length
    are decoded as one batch."""
    prompts = [task.prompt(p) for p in problems]
    buckets: dict[int, list[int]] = defaultdict(list)
    for i, prompt in enumerate(prompts):
        buckets[len(prompt)].append(i)
    completions: list[list[int]] = [[] for _ in problems]
    for idx in buckets.values():
        rows = torch.tensor([prompts[i] for i in idx], device=model.cfg.device)
        max_new = max(task.max_new(problems[i]) for i in idx)
        new = _decode_same_length(model, rows, max_new, task.stop_id, temperature, generator, use_cache)
        for i, row in zip(idx, new.tolist()):
            limit = task.max_new(problems[i])
            end = row.index(task.stop_id) + 1 if task.stop_id in row[:limit] else limit
            completions[i] = row[:end]
    return prompts, completions


def exact_accuracy(model: HookedTransformer, task: SortTask, problems: list[Problem]) -> float:
    """The fraction of problems that greedy decoding answers exactly."""
    _, completions = generate(model, task, problems, temperature=0.0)
    return sum(task.reward(p, c)[0] for p, c in zip(problems, completions)) / len(problems)
