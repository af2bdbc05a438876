"""SAE training throughput: the book's cached activations (``lib.saes``) against SAELens's own
runner, timed in one run.

    python -m benchmarks.sae_training                 # CPU; writes benchmarks/RESULTS-sae_training.md
    python -m benchmarks.sae_training --device cuda   # the same on a GPU
    python -m benchmarks.sae_training --smoke         # a small SAE on 64 rows, seconds; writes nothing

Both paths train the same TopK SAE (SAELens's ``TopKTrainingSAE`` from one ``lib.saes.Spec``:
width, k, batch size, learning rate and schedule, number of training tokens) on the residual
stream entering block 2 of the language organism ``language-4l``, from the same corpus rows with
``<bos>`` positions left out, the model run on 64 rows at a time and stopped after block 2 on
both. The book's path (:func:`book_path`): ``lib.saes.cache_activations`` runs the model once
over the rows and ``lib.saes.train`` feeds shuffled batches of the cached tensor to SAELens's
``SAETrainer``. SAELens's path (:func:`saelens_path`): ``LanguageModelSAETrainingRunner`` reads
the rows as a pre-tokenized ``datasets.Dataset`` and runs the model on every batch of rows it
needs, through its mixing buffer, so every epoch over the rows runs the model again. The
benchmark times both, counts the rows each ran through the model and the tokens each trained
on, and measures both SAEs' explained variance on the same held-out rows.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import torch
from datasets import Dataset
from jaxtyping import Float, Int
from sae_lens import LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, TrainingSAE
from sae_lens.config import LoggingConfig
from torch import Tensor
from transformer_lens import HookedTransformer

from benchmarks.patching import OtherJobs, timed, write_results
from lib import env, language, models, saes
from lib.saes import artifacts

RESULTS = os.path.join(os.path.dirname(__file__), "RESULTS-sae_training.md")
# full: the chapter's SAE (topk-1024-k20) as the book trains it, 1,000 batches of 2,048 activations
# from artifacts.TRAIN_ROWS rows (about 4 epochs); smoke: a narrower SAE on 64 rows (about 1.3)
FULL = artifacts.CHAPTER, artifacts.TRAIN_ROWS
SMOKE = saes.Spec("topk", 256, 20, steps=40, batch_size=256), 64
STORE_BATCH = 64  # rows per forward pass, both paths (cache_activations's default)
# batches SAELens's runner reads to estimate its input scaling before training (the book's path
# takes it from the whole cache); SAELens's default, 1,000, would run the model on as many tokens
# again as the full run trains on
NORM_BATCHES = 10
HOOK = saes.hook_name(artifacts.LAYER)


@contextmanager
def batch_sizes(module: torch.nn.Module) -> Iterator[list[int]]:
    """The leading size of every output of ``module`` inside the block, in order."""
    sizes: list[int] = []
    handle = module.register_forward_hook(lambda _module, _args, out: sizes.append(len(out)))
    try:
        yield sizes
    finally:
        handle.remove()


def book_path(
    model: HookedTransformer, tokens: Int[Tensor, "row pos"], spec: saes.Spec
) -> tuple[Float[Tensor, "token d_model"], TrainingSAE, int]:
    """The book's path: every row's activations cached once, then ``lib.saes.train`` on the
    cache. The cache, the SAE, and the tokens it trained on (steps completed, from the training
    log, times the batch size: the cache's batches are all full)."""
    acts = saes.cache_activations(model, tokens, HOOK, language.BOS_ID, STORE_BATCH)
    sae, log = saes.train(acts, spec, artifacts.SEED, log_every=spec.steps)
    return acts, sae, log[-1]["step"] * spec.batch_size


def runner_config(spec: saes.Spec, d_in: int, context: int, device: str) -> LanguageModelSAERunnerConfig:
    """SAELens's runner config for ``spec`` with the settings ``lib.saes.train`` gives its
    trainer (the rest SAELens's defaults), ``<bos>`` excluded as the book's cache excludes it;
    nothing logged to Weights & Biases, no checkpoint and no output written."""
    return LanguageModelSAERunnerConfig(
        sae=spec.sae_config(d_in, device),
        model_name=artifacts.ORGANISM,  # recorded only: the model is passed in
        hook_name=HOOK,
        context_size=context,
        prepend_bos=False,  # the rows already open with <bos>
        exclude_special_tokens=[language.BOS_ID],
        store_batch_size_prompts=STORE_BATCH,
        training_tokens=spec.steps * spec.batch_size,
        train_batch_size_tokens=spec.batch_size,
        lr=spec.lr,
        lr_end=spec.lr / 10,
        lr_scheduler_name="cosineannealing",
        dead_feature_window=spec.dead_window,
        feature_sampling_window=spec.steps,
        n_batches_for_norm_estimate=NORM_BATCHES,
        device=device,
        seed=artifacts.SEED,
        logger=LoggingConfig(log_to_wandb=False),
        checkpoint_path=None,
        output_path=None,
        verbose=False,
    )


def saelens_path(
    model: HookedTransformer, rows: Dataset, cfg: LanguageModelSAERunnerConfig
) -> tuple[TrainingSAE, int]:
    """SAELens's path: ``LanguageModelSAETrainingRunner`` on ``rows`` (a ``tokens`` column) with
    ``model``. The SAE and the tokens it trained on, counted at its input."""
    torch.manual_seed(artifacts.SEED)  # the runner records cfg.seed but seeds nothing with it
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with warnings.catch_warnings():
            # the store compares the dataset's row count with the training tokens
            warnings.filterwarnings("ignore", "The training dataset contains fewer samples")
            # and re-wraps every torch-formatted row with torch.tensor
            warnings.filterwarnings("ignore", "To copy construct from a tensor")
            runner = LanguageModelSAETrainingRunner(cfg, override_dataset=rows, override_model=model)
            with batch_sizes(runner.sae.hook_sae_input) as sizes:
                sae = runner.run()
    finally:  # run() replaces the process's SIGINT and SIGTERM handlers and leaves them
        for s, handler in handlers.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(s, handler)
    return sae, sum(sizes)


@torch.no_grad()
def held_out_variance(sae: TrainingSAE, acts: Float[Tensor, "token d_model"]) -> float:
    """The SAE's explained variance on ``acts``."""
    return saes.explained_variance(acts, sae.decode(saes.encode(sae, acts)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sae_training", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--device", default="cpu", choices=env.DEVICES)
    parser.add_argument(
        "--smoke", action="store_true", help="a small SAE on 64 rows, seconds, writes nothing"
    )
    args = parser.parse_args(argv)
    device = str(env.pick_device(args.device))
    spec, n_rows = SMOKE if args.smoke else FULL
    others = OtherJobs()
    model = models.load_model(artifacts.ORGANISM, device)
    tokens = language.sample_corpus(artifacts.TRAIN_SEED, n_rows, model.cfg.n_ctx).tokens
    dataset = Dataset.from_dict({"tokens": tokens.tolist()})
    cfg = runner_config(spec, model.cfg.d_model, model.cfg.n_ctx, device)

    with batch_sizes(model.hook_embed) as book_rows:
        (acts, book_sae, book_tokens), book_s, book_mb = timed(device, lambda: book_path(model, tokens, spec))
    n_cached, cache_bytes = len(acts), acts.numel() * acts.element_size()
    del acts  # SAELens's path is measured without the book's cache resident
    with batch_sizes(model.hook_embed) as lens_rows:
        (lens_sae, lens_tokens), lens_s, lens_mb = timed(device, lambda: saelens_path(model, dataset, cfg))

    held = saes.cache_activations(model, artifacts.eval_rows().tokens, HOOK, language.BOS_ID)
    book, lens = (
        {"rows": sum(n), "tokens": trained, "s": s, "peak_mb": mb, "variance": held_out_variance(sae, held)}
        for n, trained, s, mb, sae in (
            (book_rows, book_tokens, book_s, book_mb, book_sae),
            (lens_rows, lens_tokens, lens_s, lens_mb, lens_sae),
        )
    )
    ratio = (book["tokens"] / book["s"]) / (lens["tokens"] / lens["s"])
    table = [
        {
            "path": name,
            "rows through the model": m["rows"],
            "training tokens": m["tokens"],
            "s": f"{m['s']:.3g}",
            "tokens/s": f"{m['tokens'] / m['s']:,.0f}",
            "cache MB": cache,
            "peak MB": f"{m['peak_mb']:.0f}",
            "held-out explained variance": f"{m['variance']:.3f}",
        }
        for name, m, cache in (
            ("book: cache_activations + lib.saes.train", book, f"{cache_bytes / 2**20:.0f}"),
            ("SAELens: LanguageModelSAETrainingRunner", lens, "-"),
        )
    ]
    share = others.share()
    text = (
        f"Device: {device}. While it ran, other processes used {share:.0%} of the machine's "
        f"{os.cpu_count()} CPU cores. sae-lens {importlib.metadata.version('sae-lens')}.\n"
        f"- {artifacts.ORGANISM} (d_model {model.cfg.d_model}), hook {HOOK}; SAE {spec.name} "
        f"(TopK, d_sae {spec.d_sae}, k {int(spec.sparsity)}), {spec.steps} steps of {spec.batch_size} "
        f"activations at lr {spec.lr:g} (cosine to a tenth); {n_rows} corpus rows of {model.cfg.n_ctx} "
        f"tokens (seed {artifacts.TRAIN_SEED}), {n_cached:,} activations without <bos> "
        f"({spec.steps * spec.batch_size / n_cached:.2g} epochs); explained variance on "
        f"{len(held):,} activations of {artifacts.EVAL_ROWS} held-out rows (seed {artifacts.EVAL_SEED})\n"
        f"- tokens/s, book / SAELens: {ratio:.3g}x\n\n" + pd.DataFrame(table).to_markdown(index=False) + "\n"
    )
    print(text)
    if not args.smoke:
        write_results(
            RESULTS, "SAE-training benchmark results", "benchmarks.sae_training", device, text, NOTES
        )
    return {
        "book": book,
        "saelens": lens,
        "ratio": ratio,
        "requested_tokens": spec.steps * spec.batch_size,
        "cache_bytes": cache_bytes,
    }


NOTES = f"""\
Columns: *book* is `lib.saes.cache_activations` (the model run once over the rows,
{STORE_BATCH} at a time, stopped after the SAE's layer, the hook's activations kept in one float32
tensor, *cache MB*) followed by `lib.saes.train` (SAELens's `SAETrainer` fed shuffled batches of
the cache, the input scaling taken from the whole cache, the decoder bias started at the
activations' mean); *SAELens* is `LanguageModelSAETrainingRunner` with the same spec, the same
rows as a pre-tokenized dataset and the same model passed in, `<bos>` excluded: it runs the model
on {STORE_BATCH} rows at a time whenever its mixing buffer (SAELens's default, `n_batches_in_buffer`
20, which it sizes as 20 x 128 activations) runs low, so every epoch over the rows and the
{NORM_BATCHES} batches it reads to estimate the input scaling cost forward passes; it starts the
decoder bias at 0 (SAELens's default). *rows through the model*: counted at the model's embedding
hook; *training tokens*: the book's from its training log, SAELens's counted at the SAE's input;
*s*: wall-clock seconds of the whole path, caching included; *tokens/s*: training tokens over *s*;
*peak MB*: memory above the level before the path (CPU: resident-set high-water mark; GPU:
allocated memory), the book's cache included in its own; *held-out explained variance*:
`lib.saes.explained_variance` of each trained SAE on the same held-out activations, to show both
trained comparably."""


if __name__ == "__main__":
    main()
