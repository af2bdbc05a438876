"""The SAEs the book trains on the language organism, stored as the organism's artifacts.

Introduced in chapter 'Sparse autoencoders' (chapters/sparse_autoencoders.py).

``python -m lib.saes`` retrains them all and rewrites ``lib/organisms/language-4l/artifacts/saes/``:
every SAE of :data:`STORED` (the sweep, and the dead-latent comparison) is trained on the same
cached activations and stored in SAELens's own format (``cfg.json`` and
``sae_weights.safetensors``, which ``sae_lens.SAE.load_from_disk`` reads); ``sweep.json`` records
each one's spec, training log and measures on held-out rows (:func:`measure`). The zoo's
manifest hashes every file.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import replace

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
N_CTX = 128  # tokens per corpus row, the organism's context
SEED = 0
WIDTHS = (256, 1024)  # 2 and 8 times d_model
SWEEP: tuple[Spec, ...] = (
    *(Spec("topk", w, k) for w in WIDTHS for k in (5, 10, 20, 40, 80)),
    *(Spec("standard", w, c) for w in WIDTHS for c in (0.5, 1, 2, 4, 8, 16)),
)
CHAPTER = Spec("topk", 1024, 20)  # the chapter's default SAE, whose measures its checks bound
# The chapter's SAE with no help for dead latents, and with resampling instead of the auxiliary
# loss: at Bricken et al.'s encoder scale and at the live latents' scale
DEAD_LATENTS: tuple[Spec, ...] = (
    replace(CHAPTER, aux_coefficient=0),
    *(
        replace(CHAPTER, aux_coefficient=0, resample_at=(250, 500, 750), resample_scale=scale)
        for scale in (0.2, 1.0)
    ),
)
NAMES = tuple(spec.name for spec in SWEEP)
STORED = (*SWEEP, *DEAD_LATENTS)
SWEEP_FILE = "saes/sweep.json"


def eval_rows() -> language.Corpus:
    """The held-out corpus rows every SAE of the book is measured on."""
    return language.sample_corpus(EVAL_SEED, EVAL_ROWS, N_CTX)


@torch.no_grad()
def measure(
    model: HookedTransformer,
    sae: SAE,
    acts: Float[Tensor, "token d_model"],
    tokens: Int[Tensor, "batch pos"],
    layer: int = LAYER,
    bos: int = language.BOS_ID,
) -> dict[str, float]:
    """The standard measures of an SAE reading the residual stream entering ``layer``: L0, dead
    fraction and explained variance on ``acts``, CE and KL loss recovered on ``tokens`` (whose
    ``bos`` positions keep their own activations)."""
    codes = encode(sae, acts)
    losses = splice_losses(model, sae, tokens, layer, bos)
    return {
        "l0": sparsity(codes)["l0"],
        "dead_frac": sparsity(codes)["dead_frac"],
        "explained_variance": explained_variance(acts, sae.decode(codes)),
        "ce_recovered": losses["ce_recovered"],
        "kl_recovered": losses["kl_recovered"],
    }


def load(name: str, device: str = "cpu") -> SAE:
    """A stored SAE of the language organism, by its :attr:`Spec.name`."""
    stored = [spec.name for spec in STORED]
    if name not in stored:
        raise ValueError(f"no stored SAE {name!r}; the zoo has: {', '.join(stored)}")
    return SAE.load_from_disk(zoo.artifact(ORGANISM, f"saes/{name}"), device=device)


def load_pretrained(release: str, sae_id: str, device: str = "cpu") -> tuple[SAE, int]:
    """An SAE for a real model and the layer whose residual stream it reads: SAELens's
    ``SAE.from_pretrained(release, sae_id)``, or with ``release`` empty the folder ``sae_id``
    that SAELens saved an SAE to. The chapter reads residual-stream SAEs
    (``blocks.L.hook_resid_pre``); others are refused."""
    sae = (
        SAE.from_pretrained(release, sae_id, device=device) if release else SAE.load_from_disk(sae_id, device)
    )
    hook = getattr(sae.cfg.metadata, "hook_name", None)
    match = re.fullmatch(r"blocks\.(\d+)\.hook_resid_pre", hook or "")
    if match is None:
        raise ValueError(f"the SAE reads {hook!r}; this chapter takes SAEs of blocks.L.hook_resid_pre")
    return sae, int(match.group(1))


def sweep() -> list[dict]:
    """The record of every stored SAE: its spec, measures and training log."""
    return json.loads(zoo.artifact(ORGANISM, SWEEP_FILE).read_text())


def record(name: str) -> dict:
    """The record of one stored SAE (:func:`sweep`)."""
    return next(row for row in sweep() if row["name"] == name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib.saes", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", nargs="*", help="retrain and store only these SAEs (names as in STORED), keeping the rest"
    )
    args = parser.parse_args(argv)
    unknown = set(args.only or ()) - {spec.name for spec in STORED}
    if unknown:
        parser.error(f"not stored SAEs: {', '.join(sorted(unknown))}")
    specs = [s for s in STORED if not args.only or s.name in args.only]
    model = models.load_model(ORGANISM, "cpu")
    acts = cache_activations(
        model, language.sample_corpus(TRAIN_SEED, TRAIN_ROWS, N_CTX).tokens, hook_name(LAYER), language.BOS_ID
    )
    held = eval_rows()
    held_acts = cache_activations(model, held.tokens, hook_name(LAYER), language.BOS_ID)
    records = {row["name"]: row for row in (sweep() if args.only else [])}
    for spec in specs:
        start = time.perf_counter()
        sae, log = train(acts, spec, SEED)
        row = {"name": spec.name, **describe(spec, LAYER), "train_tokens": len(acts)}
        row |= measure(model, sae, held_acts, held.tokens[:LOSS_ROWS])
        records[spec.name] = row | {"train_s": round(time.perf_counter() - start, 1), "log": log}
        print(json.dumps({k: v for k, v in row.items() if k != "log"}), flush=True)
        zoo.add_artifact(
            ORGANISM, f"saes/{spec.name}", sae.save_inference_model, f"SAE {spec.name} at {row['hook']}"
        )
    rows = [records[s.name] for s in STORED]
    note = f"every stored SAE: spec, measures on {EVAL_ROWS} held-out rows, training log"
    zoo.add_artifact(ORGANISM, SWEEP_FILE, lambda p: p.write_text(json.dumps(rows, indent=1)), note)


if __name__ == "__main__":
    main()
