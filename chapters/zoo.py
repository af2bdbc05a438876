# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The model zoo
#
# No machine this book is checked on can download weights, so every chapter defaults to a small
# *model organism* the book trains itself: a recipe (architecture, tokenizer, seeded synthetic
# data, optimiser, steps) in `lib/zoo/recipes/`, and the files it produced in
# `lib/organisms/<name>/` (safetensors weights, the tokenizer, and a manifest with the config,
# the data recipe, the seed, the training log, the final metrics and the sha256 of every file,
# all checked on every load). Each organism must show its chapter's phenomenon with the literature's own metric.
#
# Retrain one with `python -m lib.zoo train NAME`; training is deterministic on the CPU, and a
# test re-runs the first steps of every recipe and compares them with the recorded log.

# %% tags=["remove-cell"]
# On Colab, install the book (lib/ and its model organisms) from its repository; elsewhere it is installed.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "git+https://github.com/interpretability-by-experiment/book",
        ],
        check=True,
    )

# %% tags=["parameters"]
SAMPLE_TOKENS: int = 48  # how many tokens of each organism's first training row to show

# %%
import pandas as pd
from IPython.display import Markdown, display
from transformers import AutoTokenizer

from lib import env, params, plots, zoo
from lib.claims import check

params.check_int("SAMPLE_TOKENS", SAMPLE_TOKENS, 1)
env.setup()


def show(name: str) -> None:
    """Describe one organism: recipe, architecture, training, curve."""
    meta, recipe = zoo.verify(name), zoo.recipe(name)
    display(Markdown(f"### `{name}`\n\n{meta['description']}\n\n**Data.** {meta['data_recipe']}"))
    arch = {k: v for k, v in meta["config"].items() if v is not None}
    training = {
        "seed": meta["seed"],
        "steps": meta["steps"],
        "batch size": meta["batch_size"],
        **{f"optimizer {k}": v for k, v in meta["optimizer"].items()},
        "torch": meta["torch"],
        "sha256": meta["files"]["model.safetensors"][:16] + "...",
    }
    display(
        pd.DataFrame({"setting": [*arch, *training], "value": [*arch.values(), *training.values()]})
        .astype(str)
        .set_index("setting")
    )
    tok = AutoTokenizer.from_pretrained(zoo.ORGANISMS_DIR / name / "tokenizer")
    row = next(recipe.batches(recipe, tok))[0, :SAMPLE_TOKENS]
    print("first training row:", tok.decode(row))
    final = {k: round(v, 3) for k, v in meta["final_metrics"].items() if k != "step"}
    print("final metrics:", final)
    log = meta["training_log"]
    metrics = [k for k in log[0] if k != "step"]
    display(
        plots.curves(
            [e["step"] for e in log],
            {k: [e[k] for e in log] for k in metrics},
            f"{name}: training log",
            "step",
            "",
        )
    )


# %% [markdown]
# ## The organisms

# %%
for name in zoo.ORGANISMS:
    show(name)

# %% [markdown]
# `induction-2l` (chapter 'Induction heads') shows the induction phase change: the loss on the
# repeated half sits on a plateau while neither head has specialised, then falls within a few
# hundred steps as the layer-0 previous-token head and the layer-1 induction head appear together.
#
# `language-4l` (chapter 'Residual stream', and the base model later organisms are fine-tuned
# from) is logged on fixed held-out texts of the synthetic language: `heldout_loss` is its
# next-token loss and `true_loss` the loss of the generator itself on the same tokens (the
# language's exact conditional entropy there, computed by `lib.language`), so the gap between the
# two curves is what the model has not learned. `name_repeat_loss` falls below `name_first_loss`
# once the model uses the names already in the text (`name_copy_mass`: the share of its
# probability on names that goes to those), and `agreement_acc` measures subject-verb agreement.

# %% tags=["remove-cell"]
for name in zoo.ORGANISMS:
    meta = zoo.verify(name)  # raises, naming the file, where any file differs from the manifest
    check(
        f"the training log of {name} ends at its recorded final metrics",
        meta["training_log"][-1] == meta["final_metrics"],
        last=meta["training_log"][-1],
        final=meta["final_metrics"],
    )
