"""The recorded RL sweep of the sorting organism, stored as its artifacts.

``python -m lib.rl`` reruns it and rewrites ``lib/organisms/sort-4l/artifacts/rl/``: GRPO on
every parameter at each rate of :data:`FULL_RATES`; the best rate again with bfloat16 master
weights, and supervised fine-tuning on the same problems at that rate; GRPO on each mask of
:data:`MASKS` at each rate of :data:`MASK_RATES` (the random masks of seeds 2001 and 42 at the
best rate of seed 0's, the oracle mask from the best full run). ``runs.json`` holds every run's
spec and log and, for masked runs, the optimizer's state size and whether every frozen entry
stayed bit-identical; ``masks.safetensors`` every mask; ``full-<rate>.safetensors``,
``full-bf16.safetensors`` and ``sft.safetensors`` the final weights the sparsity analyses need.
Runs go two at a time, one thread each. Introduced in chapter 'RLVR subnetworks'
(chapters/rlvr_subnetworks.py).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import asdict, dataclass

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from lib import models, zoo
from lib.env import progress_disabled
from lib.rl import masks as M
from lib.rl.optim import MaskedAdamW, adamw_state_bytes
from lib.rl.runs import RunSpec, run, sft_run, step_problems
from lib.rl.task import SortTask, chat_task, organism_task

ORGANISM = "sort-4l"
STEPS = 300
FULL_RATES = (1e-5, 3e-5, 1e-4, 3e-4)
MASK_RATES = (3e-4, 1e-3, 3e-3, 1e-2)
KEEP = 0.01  # 99% sparsity
FISHER_PROBLEMS, FISHER_SAMPLES, FISHER_SEED = 32, 8, 7  # 256 sampled completions
MASKS: dict[str, tuple[str, float, int]] = {
    "fisher-99": ("fisher", KEEP, FISHER_SEED),
    "fisher-99.9": ("fisher", KEEP / 10, FISHER_SEED),
    "random-99-s0": ("random", KEEP, 0),
    "random-99-s2001": ("random", KEEP, 2001),
    "random-99-s42": ("random", KEEP, 42),
    "magnitude-99": ("magnitude", KEEP, 0),
    "oracle-99": ("oracle", KEEP, 0),
}
"""Mask name -> (kind, kept fraction, seed): the post's Fisher masks at 99% and 99.9% sparsity,
its random masks of seeds 0, 2001 and 42, the largest starting weights, and the oracle (the
largest updates of the best full run)."""
SWEPT = ("fisher-99", "fisher-99.9", "random-99-s0", "magnitude-99", "oracle-99")  # every rate
FOLDER = "rl"


@dataclass(frozen=True)
class Setup:
    """Which model the sweep fine-tunes, where, and how its rates scale (a 0.5B chat model trains
    at rates about 100 times lower than the organism: the post's full fine-tuning used 1e-6)."""

    model: str = ORGANISM
    device: str = "cpu"
    steps: int = STEPS
    rate_scale: float = 1.0

    def policy(self, dtype: str = "float32") -> HookedTransformer:
        """The model as trained (nothing folded): what RL fine-tunes."""
        return models.load_model(self.model, self.device, dtype, processed=False)

    def task(self, model: HookedTransformer) -> SortTask:
        return organism_task() if self.model in zoo.ORGANISMS else chat_task(model.tokenizer)


def fisher_problems() -> list:
    return step_problems(RunSpec(lr=0.0, prompts_per_step=FISHER_PROBLEMS, seed=FISHER_SEED), 0)


def make_mask(
    name: str, start: HookedTransformer, task: SortTask, oracle_state: dict | None = None
) -> M.Mask:
    """The mask ``name`` of :data:`MASKS` for the model ``start`` (the oracle needs the best full
    run's final weights)."""
    kind, keep, seed = MASKS[name]
    params = dict(start.named_parameters())
    if kind == "random":
        return M.random_mask({n: p.shape for n, p in params.items()}, keep, seed)
    if kind == "magnitude":
        return M.top_mask({n: p.detach().abs() for n, p in params.items()}, keep)
    if kind == "oracle":
        return M.top_mask({n: (oracle_state[n] - p.detach()).abs() for n, p in params.items()}, keep)
    return M.top_mask(M.fisher_scores(start, task, fisher_problems(), FISHER_SAMPLES, seed), keep)


@dataclass(frozen=True)
class Job:
    kind: str  # "full", "sft" or a mask's name
    lr: float
    dtype: str = "float32"

    @property
    def key(self) -> str:
        extra = "" if self.dtype == "float32" else f"-{self.dtype}"
        return f"{self.kind}{extra}@{self.lr:g}"


def one_run(setup: Setup, job: Job, mask: M.Mask | None = None, threads: int = 1) -> tuple[dict, dict]:
    """Run ``job`` from the setup's model: (its record, its final state)."""
    torch.set_num_threads(threads)
    model, start = setup.policy(job.dtype), time.time()
    task, spec = setup.task(model), RunSpec(lr=job.lr, steps=setup.steps)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    record: dict = {"job": asdict(job), "spec": asdict(spec)}
    if job.kind == "sft":
        record["log"] = sft_run(model, task, spec, progress=False)
    else:
        record["log"] = run(model, task, spec, mask, progress=False)
    after = {n: p.detach().clone() for n, p in model.named_parameters()}
    if mask is not None:
        params = dict(model.named_parameters())
        record["state_bytes"] = MaskedAdamW(params, mask, lr=job.lr).state_bytes()
        record["full_state_bytes"] = adamw_state_bytes(params)
        record["frozen_identical"] = all(torch.equal(before[n][~mask[n]], after[n][~mask[n]]) for n in before)
        record["kept"] = M.kept_fraction(mask)
    record["seconds"] = round(time.time() - start, 1)
    return record, after


def _one_run(args: tuple) -> tuple[dict, dict]:
    return one_run(*args)


def best(records: dict[str, dict], kind: str) -> float:
    """The rate of ``kind``'s runs with the highest final held-out accuracy."""
    runs = [r for r in records.values() if r["job"]["kind"] == kind and r["job"]["dtype"] == "float32"]
    return max(runs, key=lambda r: r["log"]["eval"][-1]["accuracy"])["job"]["lr"]


def sweep(setup: Setup, workers: int = 2) -> tuple[dict, dict[str, M.Mask], dict[str, dict]]:
    """Every run of the module's docstring: (records by key, masks, final states). On the CPU,
    ``workers`` runs at a time, one thread each; on another device one at a time."""
    start = setup.policy()
    task, masks = setup.task(start), {}
    for name, (kind, _, _) in MASKS.items():
        if kind != "oracle":
            masks[name] = make_mask(name, start, task)
    del start
    full_rates = [lr * setup.rate_scale for lr in FULL_RATES]
    mask_rates = [lr * setup.rate_scale for lr in MASK_RATES]
    records, states = {}, {}
    workers = workers if setup.device == "cpu" else 1

    def launch(jobs: list[Job], pool) -> None:
        args = [(setup, job, masks.get(job.kind), 1 if pool else torch.get_num_threads()) for job in jobs]
        results = pool.imap(_one_run, args, chunksize=1) if pool else map(_one_run, args)
        for job, (record, after) in zip(
            jobs, tqdm(results, total=len(jobs), desc="runs", disable=progress_disabled())
        ):
            records[job.key] = record
            if job.kind in ("full", "sft"):
                states[job.key] = after

    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        launch(
            [Job("full", lr) for lr in full_rates]
            + [Job(n, lr) for n in SWEPT if n != "oracle-99" for lr in mask_rates],
            pool,
        )
        full_lr, random_lr = best(records, "full"), best(records, "random-99-s0")
        masks["oracle-99"] = make_mask("oracle-99", setup.policy(), task, states[Job("full", full_lr).key])
        second = [
            Job("full", full_lr, "bfloat16"),
            Job("sft", full_lr),
            *[Job("oracle-99", lr) for lr in mask_rates],
        ]
        launch(second + [Job(n, random_lr) for n in ("random-99-s2001", "random-99-s42")], pool)
    finally:
        if pool:
            pool.close()
    return records, masks, states


def _state_file(key: str) -> str:
    return key.replace("@", "-") + ".safetensors"


def main(steps: int = STEPS) -> None:
    records, masks, states = sweep(Setup(steps=steps))
    full_lr = best(records, "full")
    stored = {
        k: v
        for k, v in states.items()
        if k.startswith("full@") or k in (Job("full", full_lr, "bfloat16").key, Job("sft", full_lr).key)
    }

    def fill(folder) -> None:
        folder.mkdir()
        (folder / "runs.json").write_text(
            json.dumps(
                {"steps": steps, "runs": records, "files": {k: _state_file(k) for k in stored}}, indent=1
            )
            + "\n"
        )
        save_file(
            {f"{m}/{n}": t.contiguous() for m, mask in masks.items() for n, t in mask.items()},
            folder / "masks.safetensors",
        )
        for key, state in stored.items():
            save_file({n: t.contiguous() for n, t in state.items()}, folder / _state_file(key))

    zoo.add_artifact(
        ORGANISM, FOLDER, fill, "GRPO, SFT and masked runs of the RLVR chapter (python -m lib.rl)"
    )


def load_runs() -> dict:
    """The recorded sweep: ``runs.json`` with every run's spec and log."""
    return json.loads((zoo.artifact(ORGANISM, FOLDER) / "runs.json").read_text())


def load_masks() -> dict[str, M.Mask]:
    flat = load_file(zoo.artifact(ORGANISM, FOLDER) / "masks.safetensors")
    out: dict[str, M.Mask] = {}
    for key, t in flat.items():
        mask, name = key.split("/", 1)
        out.setdefault(mask, {})[name] = t
    return out


def load_state(key: str) -> dict[str, torch.Tensor]:
    """The final weights of a stored run (``full@0.0001``, ``full-bfloat16@0.0001``, ``sft@...``)."""
    return load_file(zoo.artifact(ORGANISM, FOLDER) / _state_file(key))
