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
SAMPLE_TOKENS: int = 48  # [1, 1000]: how many tokens of each organism's first training row to show

# %%
import html

import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue
from transformers import AutoTokenizer

from lib import env, params, plots, zoo
from lib.claims import check

params.validate(globals())  # the types and ranges the parameters cell declares
env.setup()


def show(name: str) -> None:
    """Describe one organism: recipe, architecture, training, curve."""
    meta, recipe = zoo.verify(name), zoo.recipe(name)
    text = html.escape(f"{meta['description']}\n\n**Data.** {meta['data_recipe']}", quote=False)
    display(Markdown(f"### `{name}`\n\n{text}"))  # escaped: '<bos>' is a token, not an HTML tag
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
# ## The induction phase change
#
# Induction heads form abruptly (Olsson et al. 2022): the loss on a repeated sequence sits on a
# plateau, then falls within a short stretch of training as a previous-token head and an
# induction head appear together. Every organism whose log tracks the best induction score on
# repeated random tokens shows it below: the step where the score first reaches 0.2, the step
# where it first reaches 0.7, and the loss on the repeated half just before and after.

# %%
ONSET, FORMED = 0.2, 0.7  # induction scores: leaving the plateau; a formed induction head
phase_rows = []
for name in zoo.ORGANISMS:
    log = zoo.manifest(name)["training_log"]
    if "top_induction_score" not in log[0]:
        continue
    loss_key = next(k for k in log[0] if k.endswith("loss_second_half"))
    score = [e["top_induction_score"] for e in log]
    onset = next((i for i, v in enumerate(score) if v >= ONSET), None)
    formed = next((i for i, v in enumerate(score) if v >= FORMED), None)
    before = log[max(onset - 1, 0)] if onset is not None else log[-1]
    phase_rows.append(
        {
            "organism": name,
            "steps": log[-1]["step"],
            "best score": max(score),
            "score 0.2 at step": log[onset]["step"] if onset is not None else None,
            "score 0.7 at step": log[formed]["step"] if formed is not None else None,
            "repeated-half loss before": before[loss_key],
            "repeated-half loss once formed": log[formed][loss_key] if formed is not None else None,
        }
    )
    display(
        plots.curves(
            [e["step"] for e in log],
            {"best induction score": score, "repeated-half loss (nats)": [e[loss_key] for e in log]},
            f"{name}: the induction phase change",
            "step",
            "",
        )
    )
phase = pd.DataFrame(phase_rows).set_index("organism")
for name, row in phase.iterrows():
    key = name.replace("-", "_")
    for column, suffix in (("score 0.2 at step", "onset"), ("score 0.7 at step", "formed")):
        # iterrows gives the row as floats: glue the step as an int (None where never reached)
        glue(f"{key}_{suffix}", None if pd.isna(row[column]) else int(row[column]), display=False)
    glue(f"{key}_best", env.sig(row["best score"]), display=False)
    glue(f"{key}_loss_before", env.sig(row["repeated-half loss before"]), display=False)
    glue(f"{key}_loss_formed", env.sig(row["repeated-half loss once formed"]), display=False)
phase

# %% [markdown]
# `induction-2l` (chapter 'Induction heads') leaves the plateau at step
# {glue:text}`induction_2l_onset` and has a formed induction head by step
# {glue:text}`induction_2l_formed`; the loss on the repeated half falls from
# {glue:text}`induction_2l_loss_before` to {glue:text}`induction_2l_loss_formed` nats.
# `language-4l`, trained on text with some copying in it, goes through the same change: its
# score reaches 0.2 at step {glue:text}`language_4l_onset` and 0.7 at step
# {glue:text}`language_4l_formed`, while its repeated-half loss falls from
# {glue:text}`language_4l_loss_before` to {glue:text}`language_4l_loss_formed`.
#
# `induction-2l-softmax1` (chapter 'Attention sinks') is the same recipe with one change, an
# extra logit fixed at zero in every head's softmax, and never leaves the plateau: its best
# induction score over training is {glue:text}`induction_2l_softmax1_best`. Both induction
# organisms also log the attention sink on 64 random tokens without repeats: `sink1_random` is
# Gu et al.'s `Sink_1` (the percentage of heads whose first-token importance exceeds 0.3),
# `first_token_mass` and `null_mass` the attention the queries after the first give the first
# token and no position at all (the zero logit's share; 0 under softmax), averaged over heads.
#
# `language-4l` (chapter 'Residual stream', and the base model later organisms are fine-tuned
# from) is logged on fixed held-out rows of the synthetic language: `heldout_loss` is its
# next-token loss and `true_loss` the loss of the generator itself on the same tokens (the
# language's exact conditional entropy there, computed by `lib.language`), so the gap between the
# two curves is what the model has not learned. `name_repeat_loss` falls below `name_first_loss`
# once the model uses the names already in the text (`name_copy_mass`: the share of its
# probability on names that goes to those), `agreement_acc` measures subject-verb agreement, and
# `sink1_text` is Gu et al.'s `Sink_1` on 64 tokens of its text.
#
# `chat-4l` and `fewshot-4l` (chapters 'Refusal directions' and 'Task vectors') are fine-tuned
# from `language-4l`; `base_loss` is their loss on the same held-out rows of the base language
# (beside `base_true_loss`), so their logs show whether they still speak it. `chat-4l` logs how
# often the first word of its reply follows the harmfulness rule on held-out requests
# (`heldout_first_word_acc`); `fewshot-4l` its top-1 accuracy on the held-out pairs of each task
# with five demonstrations (`icl_acc_<task>`), their mean (`icl_acc`), and the mean with none
# (`zero_shot_acc`).
#
# `sort-4l` (chapter 'RLVR subnetworks') logs how often greedy decoding sorts the 512 held-out
# problems of 5-8 letters exactly (`sort_exact`, and `sort_exact_<n>` for n letters). Sorting is
# learnt abruptly, as copying is, so it is stopped partway on purpose, where reinforcement learning
# has something left to improve: its learning-rate schedule is laid over
# {glue:text}`sort_schedule_steps` steps and training stops after {glue:text}`sort_steps`, at
# {glue:text}`sort_exact`.

# %%
sort_meta = zoo.manifest("sort-4l")
sort_exact = sort_meta["final_metrics"]["sort_exact"]
glue("sort_exact", env.sig(sort_exact), display=False)
glue("sort_steps", sort_meta["steps"], display=False)
glue("sort_schedule_steps", sort_meta["optimizer"]["schedule_steps"], display=False)

# %% tags=["remove-cell"]
check("sort-4l sorts partly: 0.3 <= held-out exact accuracy <= 0.6", 0.3 <= sort_exact <= 0.6, acc=sort_exact)

# %% tags=["remove-cell"]
for name, row in phase.drop(index="induction-2l-softmax1").iterrows():
    check(
        f"{name}: the induction head forms abruptly: from score 0.2 to 0.7 within a quarter of training, and "
        "the repeated-half loss falls by over 2 nats",
        row.notna().all()
        and row["score 0.7 at step"] - row["score 0.2 at step"] <= 0.25 * row["steps"]
        and row["repeated-half loss before"] - row["repeated-half loss once formed"] > 2.0,
        **row.to_dict(),
    )
check(
    "induction-2l-softmax1 never leaves the plateau: its induction score stays under 0.2",
    phase.loc["induction-2l-softmax1", "best score"] < ONSET,
    best=phase.loc["induction-2l-softmax1", "best score"],
)

# %% tags=["remove-cell"]
for name in zoo.ORGANISMS:
    meta = zoo.verify(name)  # raises, naming the file, where any file differs from the manifest
    check(
        f"the training log of {name} ends at its recorded final metrics",
        meta["training_log"][-1] == meta["final_metrics"],
        last=meta["training_log"][-1],
        final=meta["final_metrics"],
    )
