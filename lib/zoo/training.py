"""The training engine: one recipe in, a model and its training log out, deterministically.

Training runs on one CPU thread (bit-reproducible across machines with different core counts),
with AdamW, linear warm-up and cosine decay to 10% of the peak rate, over every parameter but
those the recipe freezes. A fine-tuned recipe starts from its parent's verified weights.
:func:`train_and_save` writes the organism's folder through :mod:`lib.zoo.store`.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig

from lib.env import progress_disabled
from lib.zoo import store
from lib.zoo.recipe import Recipe
from lib.zoo.registry import recipe as get_recipe

SCHEDULE = "linear warm-up, cosine to 10%"


def lr_factor(step: int, recipe: Recipe) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < recipe.warmup:
        return (step + 1) / recipe.warmup
    total = recipe.schedule_steps or recipe.steps
    progress = (step - recipe.warmup) / max(1, total - recipe.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _resolve(recipe: Recipe | str) -> Recipe:
    return get_recipe(recipe) if isinstance(recipe, str) else recipe


def train(
    recipe: Recipe | str,
    steps: int | None = None,
    tokenizer_dir: Path | None = None,
    progress: bool = True,
    root: Path = store.ORGANISMS_DIR,
) -> tuple[HookedTransformer, list[dict[str, float]]]:
    """Train an organism from its recipe (or its name) on the CPU, deterministically from the
    recipe's seed.

    ``steps`` truncates training (the reproducibility test runs a short prefix; the cosine
    schedule is still that of the full recipe). Returns the model and the training log: one
    entry every ``log_every`` steps with the step, the training loss and the recipe's eval
    metrics. ``root`` is where a parent organism is read from.
    """
    recipe = _resolve(recipe)
    steps = recipe.steps if steps is None else steps
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tok = recipe.build_tokenizer(tokenizer_dir or Path(tmp) / "tokenizer")
            torch.manual_seed(recipe.seed)
            model = HookedTransformer(HookedTransformerConfig(**recipe.config, device="cpu"), tokenizer=tok)
            if recipe.parent is not None:
                parent_config = store.verify(recipe.parent, root)["config"]
                if parent_config != recipe.config:
                    raise ValueError(
                        f"{recipe.name!r} fine-tunes {recipe.parent!r}: its config must be the parent's"
                    )
                model.load_state_dict(store.state_dict(recipe.parent, root))
            for name, param in model.named_parameters():
                param.requires_grad_(not name.endswith(recipe.frozen))
            trained = [param for param in model.parameters() if param.requires_grad]
            opt = torch.optim.AdamW(trained, lr=recipe.lr, weight_decay=recipe.weight_decay)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, recipe))
            batches = recipe.batches(recipe, tok)
            log: list[dict[str, float]] = []
            bar = tqdm(
                range(steps + 1), desc=f"train {recipe.name}", disable=not progress or progress_disabled()
            )
            for step in bar:
                tokens = next(batches)
                with torch.enable_grad():
                    loss = model(tokens, return_type="loss")
                    if step < steps:
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        sched.step()
                if step % recipe.log_every == 0 or step == steps:
                    with torch.no_grad():
                        entry = {"step": step, "loss": loss.item(), **recipe.evaluate(model)}
                    log.append(entry)
                    bar.set_postfix(loss=f"{entry['loss']:.3f}")
    finally:
        torch.set_num_threads(threads)
    return model, log


def train_and_save(recipe: Recipe | str, root: Path = store.ORGANISMS_DIR, progress: bool = True) -> Path:
    """Train an organism and write its folder atomically, with its manifest."""
    recipe = _resolve(recipe)

    def fill(folder: Path) -> dict:
        start = time.time()
        model, log = train(recipe, tokenizer_dir=folder / "tokenizer", progress=progress, root=root)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / store.WEIGHTS)
        parent = None
        if recipe.parent is not None:
            parent = {
                "name": recipe.parent,
                "sha256": store.verify(recipe.parent, root)["files"][store.WEIGHTS],
            }
        return {
            "name": recipe.name,
            "description": recipe.description,
            "parent": parent,
            "config": recipe.config,
            "data_recipe": recipe.data_recipe,
            "seed": recipe.seed,
            "steps": recipe.steps,
            "batch_size": recipe.batch_size,
            "optimizer": {
                "name": "AdamW",
                "lr": recipe.lr,
                "weight_decay": recipe.weight_decay,
                "warmup": recipe.warmup,
                "schedule": SCHEDULE,
                **({"schedule_steps": recipe.schedule_steps} if recipe.schedule_steps else {}),
                **({"frozen": list(recipe.frozen)} if recipe.frozen else {}),
            },
            "torch": torch.__version__,
            "train_seconds": round(time.time() - start, 1),
            "final_metrics": log[-1],
            "training_log": log,
        }

    return store.write(recipe.name, fill, root)
