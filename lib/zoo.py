"""The model zoo: small model organisms the book trains itself, committed with their recipes.

No machine the book runs on in CI can download weights, so every chapter defaults to an
organism from here. Each organism is a :class:`Recipe` (architecture, tokenizer, seeded data,
optimiser, steps) and a folder ``lib/organisms/<name>/`` holding what training produced:
``model.safetensors``, the tokenizer (saved to disk, since TransformerLens reloads tokenizers by
path) and ``manifest.json`` (config, data recipe, seed, steps, the training log, final metrics
and the sha256 of the weights). Loading verifies the hash.

Retrain one with ``python -m lib.zoo train NAME``. Introduced in chapter 'Induction heads'
(chapters/induction_heads.py); the appendix chapter (chapters/zoo.py) shows every recipe's
training curve.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Int
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from lib import attention, data, grammar
from lib.env import progress_disabled

ORGANISMS_DIR = Path(__file__).parent / "organisms"
FILES = ("manifest.json", "model.safetensors", "tokenizer")


@dataclass(frozen=True)
class Recipe:
    """Everything needed to train one organism from nothing, deterministically."""

    name: str
    description: str
    config: dict  # HookedTransformerConfig keyword arguments
    data_recipe: str  # human-readable description of the training data
    build_tokenizer: Callable[[Path], PreTrainedTokenizerFast]
    batches: Callable[["Recipe", PreTrainedTokenizerFast], Iterator[Int[Tensor, "batch pos"]]]
    evaluate: Callable[[HookedTransformer], dict[str, float]]  # logged every ``log_every`` steps
    seed: int = 0
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    log_every: int = 25


def word_tokenizer(words: list[str], path: Path) -> PreTrainedTokenizerFast:
    """A word-level HF tokenizer over ``words`` with ``<bos>`` prepended to every encoding,
    saved to ``path`` and reloaded from it (chapter 'Induction heads')."""
    vocab = {w: i for i, w in enumerate(words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", unk_token="<unk>", pad_token="<pad>"
    )
    path.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


# --------------------------------------------------------------------------------------------
# Organism 1: a 2-layer attention-only transformer that learns a genuine induction circuit.

INDUCTION_VOCAB = 512  # ordinary tokens t000 .. t511; then <bos>, <unk>, <pad>
INDUCTION_EVAL_SEQ_LEN = 50  # the chapter's default SEQ_LEN
INDUCTION_P_SKIP, INDUCTION_SKIP_SEED = 0.3, 1234  # the skip-bigram rule of lib.data.induction_batch


def _induction_tokenizer(path: Path) -> PreTrainedTokenizerFast:
    words = [f"t{i:03d}" for i in range(INDUCTION_VOCAB)] + ["<bos>", "<unk>", "<pad>"]
    return word_tokenizer(words, path)


def _induction_batches(recipe: Recipe, tok: PreTrainedTokenizerFast) -> Iterator[Int[Tensor, "b p"]]:
    return data.induction_batches(
        recipe.seed, INDUCTION_VOCAB, tok.bos_token_id, recipe.batch_size, recipe.config["n_ctx"],
        p_skip=INDUCTION_P_SKIP, skip_seed=INDUCTION_SKIP_SEED,
    )


def _induction_eval(model: HookedTransformer) -> dict[str, float]:
    """In-context metrics on a fixed batch of repeated random tokens."""
    tokens = data.repeated_tokens(
        torch.arange(INDUCTION_VOCAB), model.tokenizer.bos_token_id, INDUCTION_EVAL_SEQ_LEN, 16, seed=12345
    ).to(model.cfg.device)
    logprobs = model(tokens).log_softmax(-1)[:, :-1]
    correct = logprobs.gather(-1, tokens[:, 1:, None])[..., 0]  # [batch, pos-1]
    half = INDUCTION_EVAL_SEQ_LEN
    scores = attention.head_scores(model, tokens, ("previous", "induction"))
    return {
        "loss_first_half": -correct[:, :half].mean().item(),
        "loss_second_half": -correct[:, half:].mean().item(),
        "top_induction_score": scores["induction"][-1].max().item(),
        "top_prev_token_score": scores["previous"][0].max().item(),
    }


# --------------------------------------------------------------------------------------------
# Organism 2: a small GPT-2-style model of the book's synthetic language (lib.grammar).


def _language_batches(recipe: Recipe, tok: PreTrainedTokenizerFast) -> Iterator[Int[Tensor, "b p"]]:
    return grammar.batches(recipe.seed, recipe.batch_size, recipe.config["n_ctx"], tok)


RECIPES: dict[str, Recipe] = {
    "induction-2l": Recipe(
        name="induction-2l",
        description=(
            "2-layer attention-only transformer (4 heads of width 16, d_model 64, learned "
            "positions, LayerNorm) trained on random tokens with copied spans."
        ),
        config=dict(
            n_layers=2,
            d_model=64,
            n_heads=4,
            d_head=16,
            n_ctx=128,
            d_vocab=INDUCTION_VOCAB + 3,
            attn_only=True,
            normalization_type="LN",
            positional_embedding_type="standard",
            act_fn=None,
        ),
        data_recipe=(
            "Rows of 128 tokens: <bos>, then runs of 1-16 tokens, each followed by a span of 8-48 "
            "tokens copied from a random earlier position of the row (lib.data.induction_batch). "
            "A run's tokens are fresh (drawn without replacement from 512 ids), except that with "
            f"probability {INDUCTION_P_SKIP} a token is pi(the token two positions back) for a fixed random "
            "permutation pi: a skip-bigram rule, so that the previous token is worth knowing at "
            "every position, as in language."
        ),
        build_tokenizer=_induction_tokenizer,
        batches=_induction_batches,
        evaluate=_induction_eval,
        seed=0,
        steps=4000,
        lr=3e-3,
    ),
    "language-4l": Recipe(
        name="language-4l",
        description=(
            "4-layer GPT-2-style transformer (d_model 128, 4 heads of width 32, GELU MLPs of width "
            "512, LayerNorm, learned positions) trained on the book's synthetic language."
        ),
        config=dict(
            n_layers=4,
            d_model=128,
            n_heads=4,
            d_head=32,
            d_mlp=512,
            n_ctx=128,
            d_vocab=len(grammar.VOCAB),
            act_fn="gelu_new",
            normalization_type="LN",
            positional_embedding_type="standard",
        ),
        data_recipe=(
            "Rows of 128 tokens packed with texts of the synthetic language (lib.grammar, a seeded "
            "stream from the recipe's seed): <bos> opens every text; a text is 7-12 sentences "
            "(~77 words) on one of 5 topics, introduces 1-3 characters named from a pool of 64 and "
            "refers back to them by name, and has subject-verb agreement across prepositional "
            "phrases. No padding."
        ),
        build_tokenizer=grammar.tokenizer,
        batches=_language_batches,
        evaluate=grammar.evaluate,
        seed=0,
        steps=2400,
        batch_size=8,
        lr=2e-3,
        warmup=100,
        log_every=100,
    ),
}


# --------------------------------------------------------------------------------------------
# Training, saving, loading.


def _lr_factor(step: int, recipe: Recipe) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < recipe.warmup:
        return (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def get_recipe(name: str) -> Recipe:
    """The recipe of a zoo organism; an unknown name raises a ``KeyError`` listing the zoo."""
    if name not in RECIPES:
        raise KeyError(f"{name!r} is not a zoo organism; the zoo has: {', '.join(RECIPES)}")
    return RECIPES[name]


def train(
    name: str, steps: int | None = None, tokenizer_dir: Path | None = None, progress: bool = True
) -> tuple[HookedTransformer, list[dict[str, float]]]:
    """Train an organism from its recipe on the CPU, deterministically from the recipe's seed.

    ``steps`` truncates training (the reproducibility test runs a short prefix; the cosine
    schedule is still that of the full recipe). Returns the model and the training log: one
    entry every ``log_every`` steps with the step, the training loss and the recipe's eval
    metrics (chapter 'Induction heads', for the phase-change plot).
    """
    recipe = get_recipe(name)
    steps = recipe.steps if steps is None else steps
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-reproducible across machines with different core counts
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tok = recipe.build_tokenizer(tokenizer_dir or Path(tmp) / "tokenizer")
            torch.manual_seed(recipe.seed)
            model = HookedTransformer(HookedTransformerConfig(**recipe.config, device="cpu"), tokenizer=tok)
            opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, recipe))
            batches = recipe.batches(recipe, tok)
            log: list[dict[str, float]] = []
            bar = tqdm(range(steps + 1), desc=f"train {name}", disable=not progress or progress_disabled())
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


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def train_and_save(name: str, root: Path = ORGANISMS_DIR) -> Path:
    """Train an organism and write its folder atomically (a temp folder renamed into place)."""
    recipe = get_recipe(name)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}-"))
    tmp.chmod(0o755)
    start = time.time()
    model, log = train(name, tokenizer_dir=tmp / "tokenizer")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    manifest = {
        "name": name,
        "description": recipe.description,
        "config": recipe.config,
        "data_recipe": recipe.data_recipe,
        "seed": recipe.seed,
        "steps": recipe.steps,
        "batch_size": recipe.batch_size,
        "optimizer": {"name": "AdamW", "lr": recipe.lr, "weight_decay": recipe.weight_decay,
                      "warmup": recipe.warmup, "schedule": "linear warm-up, cosine to 10%"},
        "torch": torch.__version__,
        "train_seconds": round(time.time() - start, 1),
        "final_metrics": log[-1],
        "training_log": log,
        "sha256": sha256(tmp / "model.safetensors"),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    dest = root / name
    if dest.exists():
        old = root / f".{name}-old"
        os.replace(dest, old)
        os.replace(tmp, dest)
        for f in sorted(old.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        old.rmdir()
    else:
        os.replace(tmp, dest)
    return dest


def manifest(name: str, root: Path = ORGANISMS_DIR) -> dict:
    """The manifest of a trained organism (chapter 'Induction heads')."""
    get_recipe(name)
    path = root / name / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; retrain with: python -m lib.zoo train {name}")
    return json.loads(path.read_text())


def load(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
         root: Path = ORGANISMS_DIR) -> HookedTransformer:
    """Load a trained organism, checking the weights against the manifest's sha256 first.

    LayerNorm weights are folded and writing weights centred, as ``from_pretrained`` does for
    real models, so analyses see the same kind of model either way (chapter 'Induction heads').
    """
    meta = manifest(name, root)
    folder = root / name
    for f in FILES:
        if not (folder / f).exists():
            raise FileNotFoundError(f"{folder / f} is missing; retrain with: python -m lib.zoo train {name}")
    digest = sha256(folder / "model.safetensors")
    if digest != meta["sha256"]:
        raise ValueError(
            f"{folder / 'model.safetensors'} is corrupted: sha256 {digest[:12]}... does not match "
            f"the manifest's {meta['sha256'][:12]}...; restore it from git "
            f"(git checkout -- {folder}) or retrain with: python -m lib.zoo train {name}"
        )
    tok = AutoTokenizer.from_pretrained(folder / "tokenizer")
    cfg = HookedTransformerConfig(**meta["config"], device=str(device), dtype=dtype)
    model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    model.load_and_process_state_dict(
        load_file(folder / "model.safetensors"), fold_ln=True, center_writing_weights=True,
        center_unembed=True, fold_value_biases=True,
    )
    return model.to(device).eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib.zoo", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the organisms")
    t = sub.add_parser("train", help="train an organism and write lib/organisms/NAME/")
    t.add_argument("name", choices=list(RECIPES))
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, recipe in RECIPES.items():
            print(f"{name}: {recipe.description}")
    else:
        dest = train_and_save(args.name)
        final = manifest(args.name)["final_metrics"]
        print(f"wrote {dest}: " + ", ".join(f"{k}={v:.4g}" for k, v in final.items()))


if __name__ == "__main__":
    main()
