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
# # Task vectors
#
# Show a language model a few examples, `hot -> cold , big -> small , wet ->`, and it answers
# `dry`: it has inferred the task from the demonstrations. Where does the task live while the
# model answers? Hendel et al. (2023) found that in-context learning compresses the demonstrations
# into one vector at one layer of the last position, a *task vector*: take the residual stream
# there from a prompt of demonstrations, put it into a prompt with no demonstrations at all, and
# the model does the task. Todd et al. (2024) found a few attention heads whose mean outputs,
# summed, make a *function vector* that triggers the task when added to the residual stream, also
# where the context says otherwise.
#
# This chapter runs both methods as published on `fewshot-4l`, an organism fine-tuned from the
# book's language model on twelve word-pair tasks. The task is a known latent of every prompt, so
# we can also ask where a probe finds it and whether tasks that share a structure get similar
# vectors. On this organism in-context learning works and the task is decodable early, but
# neither vector carries the task on its own; the sections below measure both and show why. Set
# `MODEL_NAME` to a TransformerLens model to run the same analyses on it, with word lists of the
# literature's tasks.

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
MODEL_NAME: str = "fewshot-4l"  # the few-shot organism (fewshot-4l) or a TransformerLens name (gpt2-small)
DEVICE: str = "auto"  # {"auto", "cpu", "cuda"}: where the model runs
DTYPE: str = "float32"  # {"float32", "float16", "bfloat16"}: dtype of the weights and activations
SEED: int = 0  # [0, 2**32 - 1]: seed of every sample of demonstrations and queries
N_SHOTS: int = 5  # [2, 8]: demonstrations per prompt (Hendel et al. and the organism's evaluation: 5)
N_DUMMY: int = 2  # [1, 4]: dummy queries a task vector is averaged over (Hendel et al.: 2)
N_DEV: int = 16  # [4, 64]: queries per task from the trained pairs that choose the layers
N_MEAN: int = 64  # [16, 256]: clean prompts per task for the heads' mean outputs (Todd et al.: 100)
N_CIE: int = 25  # [5, 100]: shuffled-label prompts per task for the indirect effects (Todd et al.: 25)
FV_HEADS: int = 4  # [1, min(20, n_layers * n_heads)]: heads in the function vector (Todd et al.: 10 of 448)

# %%
import random

import numpy as np
import pandas as pd
import plotly.express as px
import torch
from IPython.display import display
from myst_nb import glue

from lib import env, hooks, language, memory, models, params, plots, probes, task_vectors, word_tasks, zoo
from lib.claims import check
from lib.language import fewshot
from lib.zoo.recipes import fewshot as organism_recipe

config = models.model_config(MODEL_NAME)
params.validate(globals(), config)  # the types and ranges the parameters cell declares
n_prompt = 2 + 4 * N_SHOTS + 4  # BOS, the shots, the query and its arrow (a multi-token arrow: a few more)
memory.check(config, DEVICE, DTYPE, {"N_MEAN": (12 * N_MEAN, n_prompt), "N_CIE": (12 * N_CIE, n_prompt)})
env.setup(SEED)
model = models.load_model(MODEL_NAME, DEVICE, DTYPE)
CHECK_BANDS = MODEL_NAME == "fewshot-4l"  # the default organism: the check cells' bands apply
SPEAKS_LANGUAGE = language.speaks_language(model)
if MODEL_NAME in zoo.ORGANISMS and MODEL_NAME != "fewshot-4l":
    raise ValueError(
        f"MODEL_NAME={MODEL_NAME!r} was not taught the tasks; the zoo's few-shot organism is fewshot-4l"
    )
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
print(models.describe(MODEL_NAME, model))
print(models.first_token(model))

# %% [markdown]
# ## The tasks and the organism
#
# A prompt is demonstrations `x -> y` separated by commas, then a query and an arrow; the answer is
# the next token. The organism's twelve tasks are built from the language's lexicon
# (`lib.language.ICL_TASKS`): a noun goes to its plural, its topic, or the copula or the
# demonstrative that agrees with it (`dogs -> are`, `dogs -> these`), a plural noun to its
# singular, a verb form to the other form, its topic or its copula, an adjective to its antonym or
# (for the topical ones) its topic, a letter to the next. Nine of the tasks share their queries
# with another task, so a query alone does not say what to answer: `dog ->` could be `dogs`,
# `farm`, `is` or `this`.
#
# A quarter of every task's pairs never appears in a training prompt, and every accuracy below is
# on those held-out pairs. Answering one still needs the fact, as a real model's test pairs need
# facts from pretraining. The topic and number of every word come from the base language; the
# pairs it never relates (singular and plural, the verb forms, antonyms, a letter and the next)
# the organism saw in a glossary, rows of related words side by side with all relations mixed
# (`dogs dog , d e , hot cold ,`): which words go together, not which way a task maps them (a
# pair of words comes in either order; letters in the alphabet's, the one fact the next-letter
# task needs). A quarter of the organism's training rows stayed texts of the base language, over
# {glue:text}`organism_steps` steps of fine-tuning (the appendix chapter on the zoo has the recipe
# and its log). On a real model the tasks are word lists of the literature's tasks
# (`lib.word_tasks`), kept where query and answer are single tokens.

# %%
bos = model.tokenizer.bos_token or model.tokenizer.eos_token
if SPEAKS_LANGUAGE:
    tasks = {task: (fewshot.trained(task), fewshot.held_out(task)) for task in language.ICL_TASKS}
else:
    tasks, dropped = {}, {}
    for task, pairs in word_tasks.WORD_TASKS.items():
        kept, dropped[task] = word_tasks.single_token_pairs(model.tokenizer, pairs)
        trained, held = fewshot.split(task, kept)
        if len(trained) >= N_SHOTS + N_DUMMY + 1 and held:
            tasks[task] = (trained, held)
    print("pairs dropped (not one token each):", {t: len(d) for t, d in dropped.items()})
    if not tasks:
        raise ValueError(
            f"{MODEL_NAME}: no task keeps {N_SHOTS + N_DUMMY + 2} single-token pairs; lower N_SHOTS or N_DUMMY"
        )
names = list(tasks)
rng = random.Random(SEED)


def encode(texts: list[str]) -> torch.Tensor:
    """Prompts as token rows, BOS first; a task's prompts have one length (single-token words)."""
    ids = [model.tokenizer(f"{bos} {text}", add_special_tokens=False)["input_ids"] for text in texts]
    if len({len(row) for row in ids}) != 1:
        raise ValueError("prompts of one batch must have one length: every query and answer one token")
    return torch.tensor(ids, device=model.cfg.device)


def answer_ids(words: list[str]) -> torch.Tensor:
    return torch.tensor([model.tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in words])


def prompts(task: str, queries: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """For each (query, answer): N_SHOTS trained demonstrations (seeded, never the query), and the
    prompts the chapter runs: the ICL prompt, the zero-shot prompt, the same demonstrations with
    their labels shuffled, and N_DUMMY prompts of the demonstrations with a dummy query."""
    pool = tasks[task][0]
    out: dict[str, list[str]] = {"icl": [], "zero": [], "shuffled": [], "dummy": []}
    for x, _ in queries:
        others = [p for p in pool if p[0] != x]
        shots = rng.sample(others, N_SHOTS)
        dummies = rng.sample([p for p in others if p not in shots], N_DUMMY)
        labels = [y for _, y in shots]
        rng.shuffle(labels)
        out["icl"].append(language.few_shot(shots, x))
        out["zero"].append(language.few_shot([], x))
        out["shuffled"].append(language.few_shot([(sx, y) for (sx, _), y in zip(shots, labels)], x))
        out["dummy"] += [language.few_shot(shots, d) for d, _ in dummies]
    return {**{k: encode(v) for k, v in out.items()}, "answers": answer_ids([y for _, y in queries])}


test = {t: prompts(t, tasks[t][1]) for t in names}
dev = {t: prompts(t, rng.sample(tasks[t][0], min(N_DEV, len(tasks[t][0])))) for t in names}
clean = {t: prompts(t, [rng.choice(tasks[t][0]) for _ in range(N_MEAN)]) for t in names}


def accuracy(logits: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Top-1 accuracy of the last position's logits [..., batch, d_vocab] against the answers."""
    return (logits.argmax(-1).cpu() == answers).float().mean(-1)


def run(tokens: torch.Tensor) -> torch.Tensor:
    return model(tokens)[:, -1].float()


frame = pd.DataFrame(
    {
        "trained pairs": [len(tasks[t][0]) for t in names],
        "held-out pairs": [len(tasks[t][1]) for t in names],
        "example": [" , ".join(f"{x} -> {y}" for x, y in tasks[t][1][:3]) for t in names],
    },
    index=names,
)
glue("n_tasks", len(names), display=False)
glue("n_test", sum(len(tasks[t][1]) for t in names), display=False)
base_loss = parent_loss = true_loss = None  # does the organism still speak the language?
if SPEAKS_LANGUAGE:
    base_loss, true_loss = (language.evaluate(model)[k] for k in ("heldout_loss", "true_loss"))
    parent = models.load_model(organism_recipe.RECIPE.parent, DEVICE, DTYPE)
    parent_loss = language.evaluate(parent)["heldout_loss"]
    del parent
for name, value in [("base_loss", base_loss), ("parent_loss", parent_loss), ("true_loss", true_loss)]:
    glue(name, None if value is None else env.sig(value), display=False)
glue("organism_steps", organism_recipe.RECIPE.steps, display=False)
frame

# %% [markdown]
# On held-out texts of the base language the organism's loss is {glue:text}`base_loss` nats per
# token, its parent's {glue:text}`parent_loss` and the language's true entropy
# {glue:text}`true_loss`: it still speaks the language.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "the organism's language loss is within 0.15 nats of its parent's",
        base_loss - parent_loss < 0.15,
        organism=base_loss,
        parent=parent_loss,
    )

# %% [markdown]
# ## In-context learning and the zero-shot baseline
#
# For each held-out pair, {glue:text}`n_shots` demonstrations drawn from the task's trained pairs,
# then the query: the *ICL* accuracy. The same query with no demonstrations, `<bos> x ->`, is the
# *baseline*: without them the model can only guess which task is meant.

# %%
icl = {t: accuracy(run(test[t]["icl"]), test[t]["answers"]).item() for t in names}
baseline = {t: accuracy(run(test[t]["zero"]), test[t]["answers"]).item() for t in names}
icl_acc, baseline_acc = float(np.mean(list(icl.values()))), float(np.mean(list(baseline.values())))
glue("n_shots", N_SHOTS, display=False)
glue("icl_acc", env.sig(icl_acc), display=False)
glue("baseline_acc", env.sig(baseline_acc), display=False)
per_task = pd.DataFrame({"baseline (zero-shot)": baseline, "ICL": icl}).round(3)
display(per_task)
px.bar(
    per_task.reset_index(names="task").melt(id_vars="task", var_name="prompt", value_name="accuracy"),
    x="task",
    y="accuracy",
    color="prompt",
    barmode="group",
    title=f"held-out pairs: top-1 accuracy with {N_SHOTS} demonstrations and with none",
)

# %% [markdown]
# Over the {glue:text}`n_tasks` tasks, the mean ICL accuracy on held-out pairs is
# {glue:text}`icl_acc` and the zero-shot baseline {glue:text}`baseline_acc`: the demonstrations,
# not the query, say what to do.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "demonstrations help: ICL beats the zero-shot baseline by over 0.5",
        icl_acc > baseline_acc + 0.5,
        icl=icl_acc,
        base=baseline_acc,
    )
    check("the organism learns in context: mean ICL accuracy >= 0.8", icl_acc >= 0.8, icl=icl_acc)
    check(
        "without demonstrations it mostly fails: baseline <= 0.3", baseline_acc <= 0.3, baseline=baseline_acc
    )

# %% [markdown]
# ## Task vectors
#
# Hendel et al.'s method, step for step (`lib.task_vectors`). For each query, run its
# demonstrations followed by a *dummy* query (another trained input, not the test query) and keep
# the residual stream at the last position after layer L; average over {glue:text}`n_dummy` dummy
# queries: that is the task vector. Then run the zero-shot prompt `<bos> x ->` and *replace* the
# output of layer L at its last position with the task vector. The layer is chosen on the
# development queries (trained pairs, {glue:text}`n_dev` per task), never on the held-out ones.
# The patch is computed once for every layer: the prompt's earlier positions are unchanged
# (attention is causal), so only the last position is recomputed from layer L + 1, every layer's
# patch stacked on the batch dimension.


# %%
def task_vector_logits(split: dict[str, dict[str, torch.Tensor]], task: str) -> torch.Tensor:
    """Last-position logits [layer, query, d_vocab] of the zero-shot prompts of ``task`` with
    layer L's output replaced by each query's own task vector at L."""
    residuals = task_vectors.last_residuals(model, split[task]["dummy"])
    theta = residuals.reshape(n_layers, -1, N_DUMMY, model.cfg.d_model).mean(2)
    return task_vectors.patch_residual(model, split[task]["zero"], None, theta)


tv_dev = torch.stack(
    [accuracy(task_vector_logits(dev, t), dev[t]["answers"]) for t in names]
)  # [task, layer]
tv_test = torch.stack([accuracy(task_vector_logits(test, t), test[t]["answers"]) for t in names])
tv_best_layer = int(tv_dev.mean(0).argmax())
tv = dict(zip(names, tv_test[:, tv_best_layer].tolist()))
tv_acc = float(np.mean(list(tv.values())))
failing = [t for t in names if tv[t] < 0.5 * icl[t]]
glue("n_dummy", N_DUMMY, display=False)
glue("n_dev", N_DEV, display=False)
glue("tv_best_layer", tv_best_layer, display=False)
glue("tv_acc", env.sig(tv_acc), display=False)
glue("tv_share", env.sig(tv_acc / icl_acc) if icl_acc else None, display=False)
glue("tv_failing", ", ".join(failing) or "none", display=False)
tv_any_layer = tv_test.mean(0).max().item()
glue("tv_any_layer", env.sig(tv_any_layer), display=False)
glue("n_layers", n_layers, display=False)
display(
    plots.curves(
        range(n_layers),
        {"development (choose L)": tv_dev.mean(0).tolist(), "held-out": tv_test.mean(0).tolist()},
        "task vector patched after layer L: mean accuracy over tasks",
        "layer L",
        "accuracy",
    )
)
table = pd.DataFrame({"baseline": baseline, "task vector": tv, "ICL": icl}).round(3)
table.loc["mean"] = [env.sig(baseline_acc), env.sig(tv_acc), env.sig(icl_acc)]
table

# %% [markdown]
# The development queries pick layer {glue:text}`tv_best_layer` (of {glue:text}`n_layers`, counted
# from 0). There the task vector alone, with no demonstrations in the prompt, gives a mean
# held-out accuracy of {glue:text}`tv_acc`: {glue:text}`tv_share` of ICL's {glue:text}`icl_acc`,
# against the baseline's {glue:text}`baseline_acc`; no layer does better than
# {glue:text}`tv_any_layer` on the held-out pairs. On this organism task vectors fail, unlike in
# Hendel et al.'s models (mean accuracy 0.68-0.79 against 0.81-0.87 for ICL). Tasks where the
# task vector reaches less than half of ICL: {glue:text}`tv_failing`. The next cells look for why.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "task vectors fail here: under half of ICL's accuracy at the chosen layer and at any layer",
        tv_acc < 0.5 * icl_acc and tv_any_layer < 0.5 * icl_acc,
        tv=tv_acc,
        any_layer=tv_any_layer,
        icl=icl_acc,
    )

# %% [markdown]
# Where does the last position read the demonstrations? A task vector taken after layer L carries
# what the layers up to L gathered at the last position; the layers after L, run on the zero-shot
# prompt, have no demonstrations to read. Below, each head's attention from the last position to
# the demonstrations' answers (the `y`s) and to the query, averaged over the ICL prompts of every
# task.


# %%
def attention_to(split: dict[str, dict[str, torch.Tensor]], task: str) -> dict[str, torch.Tensor]:
    """Each head's mean attention [layer, head] from the last position to the demonstrations'
    answers (the positions before each separator) and to the query (the position before the
    arrow's first token)."""
    tokens = split[task]["icl"]
    answer = torch.zeros(tokens.shape[1], dtype=torch.bool, device=tokens.device)
    answer[:-1] = tokens[0, 1:] == comma
    query = tokens.shape[1] - 1 - n_arrow
    out = {"answers": torch.zeros(n_layers, n_heads), "query": torch.zeros(n_layers, n_heads)}

    def read(pattern: torch.Tensor, hook) -> None:  # [batch, head, dest, src]
        last = pattern[:, :, -1].float().mean(0).cpu()
        out["answers"][hook.layer()] = last[:, answer.cpu()].sum(-1)
        out["query"][hook.layer()] = last[:, query]

    hooks.reduce_pass(model, tokens, [(hooks.every_layer(model, "pattern"), read)])
    return out


comma = model.tokenizer(" ,", add_special_tokens=False)["input_ids"][0]
n_arrow = len(model.tokenizer(" ->", add_special_tokens=False)["input_ids"])
reads = [attention_to(test, t) for t in names]
to_answers = torch.stack([r["answers"] for r in reads]).mean(0)
to_query = torch.stack([r["query"] for r in reads]).mean(0)
reader = divmod(int(to_answers.argmax()), n_heads)
glue("reader_head", f"L{reader[0]}H{reader[1]}", display=False)
glue("reader_mass", env.sig(to_answers.max().item()), display=False)
glue("reader_layer", reader[0], display=False)
glue(
    "answers_before_reader",
    env.sig(to_answers[: reader[0]].max().item()) if reader[0] else None,
    display=False,
)
query_head = divmod(int(to_query.argmax()), n_heads)
glue("query_head", f"L{query_head[0]}H{query_head[1]}", display=False)
glue("query_mass", env.sig(to_query.max().item()), display=False)
glue("query_ready", max(reader[0], query_head[0]), display=False)
display(plots.head_heatmap(to_answers, "attention from the last position to the demonstrations' answers"))
plots.head_heatmap(to_query, "attention from the last position to the query")

# %% [markdown]
# The head that reads the demonstrations' answers most is {glue:text}`reader_head`, in layer
# {glue:text}`reader_layer`, with {glue:text}`reader_mass` of its attention on them; no head
# before that layer puts more than {glue:text}`answers_before_reader` there. The head that reads
# the query most is {glue:text}`query_head` ({glue:text}`query_mass`). So the last position has
# both the query and what the demonstrations answered by layer {glue:text}`query_ready`: a task
# vector from that layer on carries its dummy query along with the task, and the zero-shot
# prompt's own query has to be read again by the layers after the patch.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "one head reads the demonstrations' answers (>= 0.5 of its attention), none before its layer (< 0.25)",
        to_answers.max() >= 0.5 and (reader[0] == 0 or to_answers[: reader[0]].max() < 0.25),
        reader=to_answers.max().item(),
        before=to_answers[: reader[0]].max().item() if reader[0] else None,
    )
    check(
        "a head reads the query (>= 0.5 of its attention)", to_query.max() >= 0.5, query=to_query.max().item()
    )

# %% [markdown]
# ## Overriding one task with another
#
# If the task vector is what the model acts on, it should win over the prompt's own
# demonstrations. Hendel et al. patch the task vector of a task B into a prompt of demonstrations
# of task A, at the same layer, and count how often the model does B. Here A and B share the query
# and answer it differently (`dog` in a prompt of plurals, with the task vector of topics: `dogs`
# or `farm`?).

# %%
inputs = {t: {x: y for x, y in tasks[t][0] + tasks[t][1]} for t in names}
override_rows = []
for a in names:
    for b in names:
        shared = [(x, y) for x, y in tasks[a][1] if a != b and x in inputs[b] and inputs[b][x] != y]
        if not shared:
            continue
        on_a = prompts(a, shared)
        on_b = prompts(b, [(x, inputs[b][x]) for x, _ in shared])  # B's demonstrations, dummy queries
        residuals = task_vectors.last_residuals(model, on_b["dummy"])[tv_best_layer]
        theta_b = residuals.reshape(len(shared), N_DUMMY, -1).mean(1)[None]
        patched = task_vectors.patch_residual(model, on_a["icl"], [tv_best_layer], theta_b)[0]
        override_rows.append(
            {
                "prompt of task A": a,
                "task vector of B": b,
                "queries": len(shared),
                "does A, unpatched": accuracy(run(on_a["icl"]), on_a["answers"]).item(),
                "does B, patched": accuracy(patched, on_b["answers"]).item(),
                "does A, patched": accuracy(patched, on_a["answers"]).item(),
            }
        )
overrides = pd.DataFrame(override_rows)
override_rate = float(overrides["does B, patched"].mean()) if len(overrides) else None
glue("override_rate", None if override_rate is None else env.sig(override_rate), display=False)
glue("override_pairs", len(overrides), display=False)
glue(
    "override_a",
    env.sig(float(overrides["does A, patched"].mean())) if len(overrides) else None,
    display=False,
)
overrides.round(3)

# %% [markdown]
# Over {glue:text}`override_pairs` ordered pairs of tasks that share queries, the model patched
# with B's task vector answers as B would in {glue:text}`override_rate` of the prompts of task A
# (mean over pairs), and as A in {glue:text}`override_a`: the patch wipes out task A, but gives
# task B less often than Hendel et al.'s models do (0.74-0.97 on LLaMA-13B).

# %% tags=["remove-cell"]
if CHECK_BANDS:
    override_a = float(overrides["does A, patched"].mean())
    check(
        "the patch wipes out task A (<= 0.1) and gives B in under half of the prompts",
        override_a <= 0.1 and override_rate < 0.5,
        does_a=override_a,
        does_b=override_rate,
    )

# %% [markdown]
# ## Function vectors
#
# Todd et al.'s method, step for step. Each head's mean output at the last position (its `z`, the
# input to `W_O`) over {glue:text}`n_mean` clean prompts per task. Then prompts whose
# demonstrations' labels are shuffled ({glue:text}`n_cie` per task), where a large model can no
# longer read the task off the pairs: replacing one head's output by its task mean and measuring the
# gain in probability of the correct answer gives that head's *causal indirect effect*. Every head
# is patched in one batched sweep of `lib.patching` (each patch its own rows, each forward pass from
# the head's layer and at the last position only). The heads with the largest effect averaged over
# tasks are taken to carry the task; their mean outputs, through `W_O` and summed, are the task's
# function vector, which is *added* to the residual stream at the last position after a layer L.

# %%
mean_z = {t: task_vectors.mean_head_outputs(model, clean[t]["icl"]) for t in names}
shuffled = {t: prompts(t, [rng.choice(tasks[t][0]) for _ in range(N_CIE)]) for t in names}
cie = torch.stack(
    [
        task_vectors.indirect_effects(model, shuffled[t]["shuffled"], shuffled[t]["answers"], mean_z[t])
        for t in names
    ]
)  # [task, layer, head]
aie = cie.mean(0)
order = aie.flatten().argsort(descending=True)
ranked = [divmod(int(i), n_heads) for i in order]
top = ranked[:FV_HEADS]
glue("n_mean", N_MEAN, display=False)
glue("n_cie", N_CIE, display=False)
glue("fv_heads", FV_HEADS, display=False)
glue("fv_top_heads", ", ".join(f"L{layer}H{head}" for layer, head in top), display=False)
glue("top_aie", env.sig(aie.max().item()), display=False)
glue("min_aie", env.sig(aie.min().item()), display=False)
glue("min_aie_head", "L{}H{}".format(*divmod(int(aie.argmin()), n_heads)), display=False)
plots.head_heatmap(aie, "average indirect effect of each head (gain in probability of the answer)", zmid=0.0)


# %%
def fv_logits(
    split: dict[str, dict[str, torch.Tensor]], task: str, heads, kind: str = "zero"
) -> torch.Tensor:
    """Last-position logits [layer, query, d_vocab] of ``kind`` prompts with the task's function
    vector of ``heads`` added after each layer."""
    vector = task_vectors.function_vector(model, mean_z[task], heads)
    return task_vectors.add_at_layer(model, split[task][kind], None, vector)


fv_dev = torch.stack([accuracy(fv_logits(dev, t, top), dev[t]["answers"]) for t in names])  # [task, layer]
fv_best_layer = int(fv_dev.mean(0).argmax())
sweep_k = list(range(1, min(20, n_layers * n_heads) + 1))
fv_k = [
    float(
        np.mean(
            [accuracy(fv_logits(dev, t, ranked[:k])[fv_best_layer], dev[t]["answers"]).item() for t in names]
        )
    )
    for k in sweep_k
]
fv_zero = {t: accuracy(fv_logits(test, t, top)[fv_best_layer], test[t]["answers"]).item() for t in names}
fv_shuffled = {
    t: accuracy(fv_logits(test, t, top, "shuffled")[fv_best_layer], test[t]["answers"]).item() for t in names
}
shuffled_plain = {t: accuracy(run(test[t]["shuffled"]), test[t]["answers"]).item() for t in names}
random_heads = [divmod(int(i), n_heads) for i in torch.randperm(n_layers * n_heads)[:FV_HEADS]]
fv_random = {
    t: accuracy(fv_logits(test, t, random_heads)[fv_best_layer], test[t]["answers"]).item() for t in names
}
mean_state = {
    t: task_vectors.add_at_layer(
        model,
        test[t]["zero"],
        [fv_best_layer],
        task_vectors.last_residuals(model, clean[t]["icl"])[fv_best_layer].mean(0),
    )[0]
    for t in names
}
fv_mean_state = {t: accuracy(mean_state[t], test[t]["answers"]).item() for t in names}
fv_zero_shot_acc, fv_shuffled_acc = (
    float(np.mean(list(fv_zero.values()))),
    float(np.mean(list(fv_shuffled.values()))),
)
fv_random_heads_acc = float(np.mean(list(fv_random.values())))
fv_mean_state_acc = float(np.mean(list(fv_mean_state.values())))
shuffled_acc = float(np.mean(list(shuffled_plain.values())))
for name, value in [
    ("fv_zero_shot_acc", fv_zero_shot_acc),
    ("fv_shuffled_acc", fv_shuffled_acc),
    ("fv_random_heads_acc", fv_random_heads_acc),
    ("fv_mean_state_acc", fv_mean_state_acc),
    ("shuffled_acc", shuffled_acc),
]:
    glue(name, env.sig(value), display=False)
glue("fv_best_layer", fv_best_layer, display=False)
glue("fv_best_k", sweep_k[int(np.argmax(fv_k))], display=False)
display(
    plots.curves(
        range(n_layers),
        {"development": fv_dev.mean(0).tolist()},
        f"function vector of the top {FV_HEADS} heads added after layer L: zero-shot accuracy",
        "layer L",
        "accuracy",
    )
)
display(
    plots.curves(
        sweep_k,
        {"development": fv_k},
        f"function vector of the top k heads, added after layer {fv_best_layer}",
        "heads k",
        "accuracy",
    )
)
pd.DataFrame(
    {
        "zero-shot": baseline,
        "zero-shot + FV": fv_zero,
        "shuffled labels": shuffled_plain,
        "shuffled + FV": fv_shuffled,
        "zero-shot + random heads' FV": fv_random,
        "zero-shot + mean layer state": fv_mean_state,
    }
).round(3)

# %% [markdown]
# Shuffling the demonstrations' labels leaves the organism's accuracy at {glue:text}`shuffled_acc`
# (ICL: {glue:text}`icl_acc`). A shuffle keeps what kind of word the answers are, and that is what
# the organism reads (the head above), so putting back one head's mean output barely helps: the
# largest average indirect effect is {glue:text}`top_aie` (the most negative, {glue:text}`min_aie`,
# is {glue:text}`min_aie_head`'s: its mean output hurts), and the ranking of the heads
# ({glue:text}`fv_top_heads` first) rests on effects that small. Their function vector added after layer
# {glue:text}`fv_best_layer` (chosen on the development queries) gives a mean held-out zero-shot
# accuracy of {glue:text}`fv_zero_shot_acc` (baseline {glue:text}`baseline_acc`), and
# {glue:text}`fv_shuffled_acc` on shuffled labels; {glue:text}`fv_heads` random heads give
# {glue:text}`fv_random_heads_acc`, and adding the layer's mean state on ICL prompts
# {glue:text}`fv_mean_state_acc`. On the development queries, k = {glue:text}`fv_best_k` heads work
# best. Todd et al. find the opposite in large models: shuffled labels hurt, a few heads carry the
# task, and their function vector triggers it zero-shot.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "shuffled labels cost the organism under 0.1 of accuracy",
        icl_acc - shuffled_acc < 0.1,
        icl=icl_acc,
        shuffled=shuffled_acc,
    )
    check(
        "no head's mean output helps by over 0.01 on average",
        aie.max() < 0.01,
        largest=aie.max().item(),
    )
    check(
        "the function vector recovers under half of ICL's accuracy",
        fv_zero_shot_acc < 0.5 * icl_acc,
        fv=fv_zero_shot_acc,
        icl=icl_acc,
    )

# %% [markdown]
# ## Where the task is, and which tasks look alike
#
# The task is a latent we know. A linear probe per layer (`lib.probes`) reads it off the last
# position of the ICL prompts (half of the clean prompts train it, half test it); a model that has
# inferred the task by layer L must make it decodable there. And tasks that share a structure
# should get similar vectors: the cosine similarity of the task vectors at the layer the probe
# first decodes the task from, each centred by the mean over tasks. Here tasks share a structure
# when they answer from the same set of words (the three topic tasks answer with topics, the two
# copula tasks with `is` and `are`).

# %%
features = torch.cat([task_vectors.last_residuals(model, clean[t]["icl"]) for t in names], dim=1)
labels = torch.arange(len(names)).repeat_interleave(N_MEAN)
train = torch.zeros(len(labels), dtype=torch.bool)
train[torch.randperm(len(labels))[: len(labels) // 2]] = True
probe_acc = probes.fit_probes(features, labels, len(names), train).accuracy(
    features[:, ~train], labels[~train]
)
task_probe_layer = int((probe_acc >= probe_acc.max() - 0.01).nonzero()[0])
theta = torch.stack(
    [task_vectors.last_residuals(model, test[t]["dummy"])[task_probe_layer].mean(0) for t in names]
)
centred = theta - theta.mean(0)
cosine = torch.nn.functional.cosine_similarity(centred[:, None], centred[None], dim=-1)
answer_sets = [frozenset(y for _, y in tasks[t][0] + tasks[t][1]) for t in names]
same = torch.tensor([[a == b for b in answer_sets] for a in answer_sets]) & ~torch.eye(
    len(names), dtype=torch.bool
)
other = ~torch.tensor([[a == b for b in answer_sets] for a in answer_sets])
cos_same = cosine.cpu()[same].mean().item() if same.any() else None
cos_other = cosine.cpu()[other].mean().item()
glue("cos_same", None if cos_same is None else env.sig(cos_same), display=False)
glue("cos_other", env.sig(cos_other), display=False)
glue("task_probe_layer", task_probe_layer, display=False)
glue("probe_acc", env.sig(probe_acc[task_probe_layer].item()), display=False)
glue("probe_chance", env.sig(1 / len(names)), display=False)
display(
    plots.curves(
        range(n_layers),
        {"probe": probe_acc.tolist(), "task vector (held-out)": tv_test.mean(0).tolist()},
        "the task decoded from the last position, and task vectors, by layer",
        "layer",
        "accuracy",
    )
)
px.imshow(
    cosine.cpu().numpy(),
    x=names,
    y=names,
    zmin=-1,
    zmax=1,
    color_continuous_scale="RdBu",
    title=f"cosine similarity of centred task vectors at layer {task_probe_layer}",
)

# %% [markdown]
# The probe decodes the task from layer {glue:text}`task_probe_layer` on (held-out accuracy
# {glue:text}`probe_acc`, chance {glue:text}`probe_chance`), the layer of the head that reads the
# demonstrations' answers ({glue:text}`reader_layer`); the task vector's chosen layer was
# {glue:text}`tv_best_layer`. There, tasks that answer from the same words have task vectors with
# a mean cosine similarity of {glue:text}`cos_same`, against {glue:text}`cos_other` between tasks
# that do not.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "the probe decodes the task (>= 0.9) from the reader head's layer on",
        (probe_acc[reader[0] :] >= 0.9).all() and task_probe_layer <= reader[0],
        probe=probe_acc.tolist(),
        reader_layer=reader[0],
    )
    check(
        "tasks that answer from the same words have more similar task vectors than others",
        cos_same > cos_other + 0.2,
        same=cos_same,
        other=cos_other,
    )

# %% [markdown]
# ## Results beside the literature

# %%
chance = float(np.mean([1 / len({y for _, y in tasks[t][0] + tasks[t][1]}) for t in names]))
size = f"{MODEL_NAME}: {n_layers} layers x {n_heads} heads; {len(names)} tasks, {sum(len(tasks[t][1]) for t in names)} held-out pairs"
pd.DataFrame(
    [
        (
            "ICL accuracy (mean over tasks)",
            env.sig(icl_acc),
            env.sig(chance),
            "0.81-0.87 (Hendel, 5 shots)",
            size,
        ),
        ("zero-shot baseline", env.sig(baseline_acc), env.sig(chance), "0.12-0.15 (Hendel)", size),
        ("task vector", env.sig(tv_acc), env.sig(chance), "0.68-0.79 (Hendel)", size),
        (
            "task vector's layer",
            tv_best_layer,
            "-",
            "about the same relative depth across sizes (Hendel)",
            size,
        ),
        (
            "override: does B",
            None if override_rate is None else env.sig(override_rate),
            "-",
            "0.74-0.97 (LLaMA-13B; en-es -> en-fr 0.07)",
            size,
        ),
        (
            "function vector, zero-shot",
            env.sig(fv_zero_shot_acc),
            env.sig(chance),
            "-",
            f"top {FV_HEADS} heads",
        ),
        (
            "function vector, shuffled labels",
            env.sig(fv_shuffled_acc),
            env.sig(chance),
            "-",
            f"top {FV_HEADS} heads",
        ),
        (
            "function vector of random heads",
            env.sig(fv_random_heads_acc),
            env.sig(chance),
            "-",
            f"{FV_HEADS} heads",
        ),
        ("layer the task is decoded from", task_probe_layer, "-", "-", size),
    ],
    columns=["metric", "this run", "chance level", "published", "size (this run)"],
)

# %% [markdown]
# Published values: Hendel et al. (2023), "In-context learning creates task vectors" (means over
# 18 tasks, baseline / task vector / ICL: Pythia-2.8B 0.13 / 0.72 / 0.83, GPT-J-6B 0.12 / 0.68 /
# 0.81, LLaMA-7B 0.13 / 0.78 / 0.86, LLaMA-13B 0.15 / 0.79 / 0.87); Todd et al. (2024), "Function
# vectors in large language models" (GPT-J: top heads L15H5, L9H14, L12H10, edit layer 9). The
# chance level is one over the number of distinct answers of a task, averaged over tasks.
#
# ## On a real model
#
# On a GPU (e.g. Colab), re-run this chapter on GPT-J or any TransformerLens model:
#
# ```
# make run CHAPTER=task_vectors PARAMS="-p MODEL_NAME EleutherAI/gpt-j-6B -p DEVICE cuda -p DTYPE bfloat16 -p FV_HEADS 10"
# ```
#
# The tasks are then the word lists of `lib.word_tasks` (antonyms, country-capital, English-Spanish,
# English-French, present-past, singular-plural, capitalisation, next letter), kept where query and
# answer are single tokens of the model's tokenizer.
