"""The SAEs the book trains on the language organism, stored as the organism's artifacts.

Introduced in chapter 'Sparse autoencoders' (chapters/sparse_autoencoders.py).

``python -m lib.saes`` retrains them all and rewrites ``lib/organisms/language-4l/artifacts/saes/``:
every SAE of :data:`SWEEP` is trained on the same cached activations and stored in SAELens's
own format (``cfg.json`` and ``sae_weights.safetensors``, which ``sae_lens.SAE.load_from_disk``
reads); ``sweep.json`` records each one's spec, training log and measures on held-out rows
(:func:`measure`). The zoo's manifest hashes every file.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from lib import language, models, zoo
from lib.saes.metrics import encode, explained_variance, sparsity, splice_losses
from lib.saes.training import Spec, cache_activations, describe, hook_name, train

ORGANISM, LAYER = "language-4l", 2
TRAIN_SEED, TRAIN_ROWS = 1000, 4096  # the corpus rows whose activations the SAEs train on
EVAL_SEED, EVAL_ROWS, LOSS_ROWS = 2000, 128, 64  # held-out rows the measures are taken on
SEED = 0
WIDTHS = (256, 1024)  # 2 and 8 times d_model
SWEEP: tuple[Spec, ...] = (
    *(Spec("topk", w, k) for w in WIDTHS for k in (5, 10, 20, 40, 80)),
    *(Spec("standard", w, c) for w in WIDTHS for c in (0.5, 1, 2, 4, 8, 16)),
)
NAMES = tuple(spec.name for spec in SWEEP)
SWEEP_FILE = "saes/sweep.json"


def eval_rows() -> language.Corpus:
    """The held-out corpus rows every SAE of the book is measured on."""
    return language.sample_corpus(EVAL_SEED, EVAL_ROWS, 128)


@torch.no_grad()
def measure(
    model: HookedTransformer, sae: SAE, acts: Float[Tensor, "token d_model"], tokens: Int[Tensor, "batch pos"]
) -> dict[str, float]:
    """The standard measures of an SAE of the book: L0, dead fraction and explained variance on
    ``acts``, CE and KL loss recovered on ``tokens``."""
    codes = encode(sae, acts)
    losses = splice_losses(model, sae, tokens, LAYER, language.BOS_ID)
    return {
        "l0": sparsity(codes)["l0"],
        "dead_frac": sparsity(codes)["dead_frac"],
        "explained_variance": explained_variance(acts, sae.decode(codes)),
        "ce_recovered": losses["ce_recovered"],
        "kl_recovered": losses["kl_recovered"],
    }


def load(name: str, device: str = "cpu") -> SAE:
    """A stored SAE of the language organism, by its :attr:`Spec.name`."""
    if name not in NAMES:
        raise ValueError(f"no stored SAE {name!r}; the zoo has: {', '.join(NAMES)}")
    return SAE.load_from_disk(zoo.artifact(ORGANISM, f"saes/{name}"), device=device)


def sweep() -> list[dict]:
    """The recorded sweep: every SAE's spec, measures and training log."""
    return json.loads(zoo.artifact(ORGANISM, SWEEP_FILE).read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib.saes", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", nargs="*", help="train only these SAEs (names as in the sweep); writes nothing"
    )
    args = parser.parse_args(argv)
    specs = [s for s in SWEEP if not args.only or s.name in args.only]
    model = models.load_model(ORGANISM, "cpu")
    acts = cache_activations(
        model, language.sample_corpus(TRAIN_SEED, TRAIN_ROWS, 128).tokens, hook_name(LAYER), language.BOS_ID
    )
    held = eval_rows()
    held_acts = cache_activations(model, held.tokens, hook_name(LAYER), language.BOS_ID)
    records = []
    for spec in specs:
        start = time.perf_counter()
        sae, log = train(acts, spec, SEED)
        row = {"name": spec.name, **describe(spec, LAYER), "train_tokens": len(acts)}
        row |= measure(model, sae, held_acts, held.tokens[:LOSS_ROWS])
        records.append(row | {"train_s": round(time.perf_counter() - start, 1), "log": log})
        print(json.dumps({k: v for k, v in row.items() if k != "log"}), flush=True)
        if not args.only:
            zoo.add_artifact(
                ORGANISM, f"saes/{spec.name}", sae.save_inference_model, f"SAE {spec.name} at {row['hook']}"
            )
    if not args.only:
        note = f"every SAE of lib.saes.SWEEP: spec, measures on {EVAL_ROWS} held-out rows, training log"
        zoo.add_artifact(ORGANISM, SWEEP_FILE, lambda p: p.write_text(json.dumps(records, indent=1)), note)


if __name__ == "__main__":
    main()
