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
# # RLVR subnetworks
#
# Reinforcement learning with a verifiable reward (RLVR: a program checks the answer) is how
# reasoning models are post-trained. Mukherjee et al. (2025) compared checkpoints before and after
# it and found that RL leaves 70-95% of the weights exactly as they were, where supervised
# fine-tuning changes nearly all of them, and that the small part it changes is not a low-rank
# update. A later post went further: train only 1% of the weights, chosen by Fisher information or
# even at random, and GRPO on a sorting task reaches what full fine-tuning reaches, if the
# learning rate is raised. Many subnetworks would each be a winning ticket.
#
# Both claims are about what an optimizer does to weights, so both can be measured on a model we
# train ourselves, in float32, where nothing is hidden by rounding. This chapter runs GRPO on
# `sort-4l`, the book's language organism fine-tuned to sort letters only partly, and asks: how
# sparse is the update really, and how much of the published sparsity does bfloat16 rounding
# explain; does a random 1% of the weights match full fine-tuning, at which learning rate; and do
# masks that work select the same weights? Set `MODEL_NAME` to a chat model to rerun everything
# on it.

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
MODEL_NAME: str = "sort-4l"  # the sorting organism (sort-4l) or a TransformerLens chat model
DEVICE: str = "auto"  # {"auto", "cpu", "cuda"}: where the model runs
DTYPE: str = "float32"  # {"float32", "bfloat16"}: master weights of the live runs
SEED: int = 0  # [0, 2**32 - 1]: seed of the live runs' problems, samples and random mask
TRAIN: bool = False  # rerun the recorded sweep (about an hour on 2 CPU cores) instead of loading it
STEPS: int = 300  # [4, 2000]: steps of each run of a rerun sweep (TRAIN, or a real model)
RATE_SCALE: float = 1.0  # [1e-4, 10]: multiplies each rate of a rerun sweep (a 0.5B model: 0.01)
LIVE_STEPS: int = 40  # [40, 300]: steps of the two live runs (full, and a random 1% mask)

# %%
import numpy as np
import pandas as pd
import plotly.express as px
import torch
from IPython.display import display
from myst_nb import glue

from lib import env, models, params, plots, zoo
from lib.claims import check
from lib.language import sorting
from lib.rl import artifacts, masks, sparsity
from lib.rl.grpo import no_spread_fraction
from lib.rl.optim import MaskedAdamW, adamw_state_bytes
from lib.rl.rollout import exact_accuracy, generate
from lib.rl.runs import RunSpec, eval_problems, run, step_problems
from lib.zoo.recipes import sorting as organism_recipe

config = models.model_config(MODEL_NAME)
params.validate(globals(), config)  # the types and ranges the parameters cell declares
if MODEL_NAME in zoo.ORGANISMS and MODEL_NAME != artifacts.ORGANISM:
    raise ValueError(
        f"MODEL_NAME={MODEL_NAME!r} was not taught to sort; the zoo's sorting organism is sort-4l"
    )
env.setup(SEED)
ORGANISM = MODEL_NAME == artifacts.ORGANISM
setup = artifacts.Setup(MODEL_NAME, str(env.pick_device(DEVICE)), STEPS, RATE_SCALE)
model = setup.policy()
task = setup.task(model)
longest = max(
    len(task.prompt(p)) + task.max_new(p) for p in sorting.problems(64, SEED, held=True, lengths=(8, 8))
)
if longest > model.cfg.n_ctx:
    raise ValueError(
        f"MODEL_NAME={MODEL_NAME!r}: a problem and its reply take {longest} tokens, past its context of {model.cfg.n_ctx}"
    )
CHECK_BANDS = ORGANISM and (not TRAIN or (STEPS == artifacts.STEPS and RATE_SCALE == 1.0))
print(models.describe(MODEL_NAME, model))

# %% [markdown]
# ## The organism and its reward
#
# A problem is up to eight distinct letters in a random order, `sort : c a b =`, and the answer is
# the letters in alphabetical order followed by the end token, `a b c <bos>`. The reward is
# verifiable: 1 if the completion is exactly that, else 0 (a partial credit, the fraction of places
# that hold the right letter, is logged beside it). A quarter of all problems, fixed by a hash of
# their letters, never appears in any training set; every accuracy below is greedy decoding on
# 512 of them with 5 to 8 letters, drawn from seed 2001 as in the post. The organism was
# fine-tuned from the language organism for {glue:text}`organism_steps` supervised steps on
# problems of 2 to 8 letters (the zoo appendix has its recipe and log), enough to sort some
# problems and not others. On a real model the problem is asked in its chat template and the
# reply's words are compared with the sorted letters.

# %%
held = eval_problems(512)
prompts, replies = generate(model, task, held[:4], temperature=0.0)
decode = (
    (lambda ids: " ".join(model.tokenizer.convert_ids_to_tokens(ids))) if ORGANISM else model.tokenizer.decode
)
display(
    pd.DataFrame(
        {
            "prompt": [decode(p) for p in prompts],
            "greedy reply": [decode(r) for r in replies],
            "reward": [task.reward(p, r)[0] for p, r in zip(held, replies)],
        }
    )
)
sft_acc = exact_accuracy(model, task, held)
by_length = {n: exact_accuracy(model, task, [p for p in held if len(p) == n]) for n in range(5, 9)}
generator = torch.Generator(model.cfg.device).manual_seed(SEED)
spec = RunSpec(lr=0.0, seed=SEED)
batch = [
    p for step in range(4) for p in step_problems(spec, step) for _ in range(spec.group)
]  # 4 steps' groups
_, sampled = generate(model, task, batch, temperature=1.0, generator=generator)
rewards = torch.tensor([task.reward(p, c)[0] for p, c in zip(batch, sampled)])
start_spread = 1 - no_spread_fraction(rewards, spec.group)
glue("sft_acc", env.sig(sft_acc), display=False)
glue("sft_acc_5", env.sig(by_length[5]), display=False)
glue("sft_acc_8", env.sig(by_length[8]), display=False)
glue("sampled_reward", env.sig(rewards.mean().item()), display=False)
glue("start_spread", env.sig(start_spread), display=False)
glue("start_groups", len(batch) // spec.group, display=False)
glue("organism_steps", organism_recipe.RECIPE.steps, display=False)
glue("group", spec.group, display=False)

# %% [markdown]
# Greedy decoding sorts {glue:text}`sft_acc` of the held-out problems ({glue:text}`sft_acc_5` of
# those with 5 letters, {glue:text}`sft_acc_8` with 8). Sampled at temperature 1, as GRPO samples,
# {glue:text}`sampled_reward` of the completions earn the reward, and {glue:text}`start_spread` of
# the groups of {glue:text}`group` completions of one problem (the first four steps' problems,
# {glue:text}`start_groups` groups) hold both a success and a failure.
# Only those groups teach GRPO anything: its advantage is a completion's reward minus its group's
# mean, so a group that all failed (or all succeeded) has advantage 0 everywhere.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "the organism sorts partly: 0.3 <= held-out exact accuracy <= 0.6", 0.3 <= sft_acc <= 0.6, acc=sft_acc
    )
    check(
        "longer problems are harder: 5 letters sorted more often than 8",
        by_length[5] > by_length[8],
        five=by_length[5],
        eight=by_length[8],
    )
    check(
        "GRPO has a signal: at least a third of the groups have reward spread",
        start_spread >= 1 / 3,
        spread=start_spread,
    )

# %% [markdown]
# ## The runs
#
# GRPO as TRL runs it by default (`lib.rl`, its loss tested against TRL's own `GRPOTrainer`): each
# step samples {glue:text}`group` completions for each of 16 training problems, scores them, and
# takes one AdamW step on the clipped, importance-weighted log-probability of each completion token
# times its advantage, summed over tokens and divided by their number, with no KL term (beta 0)
# and no weight decay. Every run is {glue:text}`steps` steps at a constant learning rate from the
# organism's weights as trained. The sweep (`python -m lib.rl`, stored in the zoo; `TRAIN=True`
# reruns it) has full fine-tuning at four rates, the best of them again with bfloat16 master
# weights, supervised fine-tuning (SFT) on the same problems at that rate, and GRPO on seven
# masks at four rates each. The book writes GRPO itself rather than driving TRL's trainer: TRL
# generates through Hugging Face models, and the chapter needs TransformerLens models, a KV cache
# on them, and an optimizer that keeps state only for a mask's weights.

# %%
if TRAIN or not ORGANISM:
    records, all_masks, states = artifacts.sweep(setup)
else:
    stored = artifacts.load_runs()
    records, all_masks = stored["runs"], artifacts.load_masks()
    states = {key: artifacts.load_state(key) for key in stored["files"]}
start = {n: p.detach().clone() for n, p in model.named_parameters()}


def final(record: dict) -> float:
    return record["log"]["eval"][-1]["accuracy"]


def runs_of(kind: str, dtype: str = "float32") -> dict[float, dict]:
    """Runs of a kind (full, sft or a mask's name) by learning rate."""
    found = [r for r in records.values() if r["job"]["kind"] == kind and r["job"]["dtype"] == dtype]
    return {r["job"]["lr"]: r for r in sorted(found, key=lambda r: r["job"]["lr"])}


full_runs = runs_of("full")
full_best_lr = artifacts.best(records, "full")
best_full = full_runs[full_best_lr]
rl_acc = final(best_full)
(sft_run_record,) = runs_of("sft").values()
(bf16_record,) = runs_of("full", "bfloat16").values()
steps = best_full["spec"]["steps"]
glue("steps", steps, display=False)
glue("full_best_lr", full_best_lr, display=False)
glue("rl_acc", env.sig(rl_acc), display=False)
glue("rl_gain", env.sig(rl_acc - sft_acc), display=False)
glue("sft_run_acc", env.sig(final(sft_run_record)), display=False)
glue("bf16_run_acc", env.sig(final(bf16_record)), display=False)
glue(
    "no_spread_early",
    env.sig(np.mean([t["no_spread"] for t in best_full["log"]["train"][:50]])),
    display=False,
)
glue(
    "no_spread_late",
    env.sig(np.mean([t["no_spread"] for t in best_full["log"]["train"][-50:]])),
    display=False,
)
rates = {f"full, lr {lr:g}": r for lr, r in full_runs.items()}
evals = best_full["log"]["eval"]
train_log = best_full["log"]["train"]
display(
    plots.stacked_curves(
        [e["step"] for e in evals],
        {
            "held-out exact accuracy": {
                name: [e["accuracy"] for e in r["log"]["eval"]] for name, r in rates.items()
            }
            | {f"SFT, lr {full_best_lr:g}": [e["accuracy"] for e in sft_run_record["log"]["eval"]]},
        },
        "held-out exact accuracy over training",
        "step",
    )
)
window = 10


def smooth(xs: list[float]) -> list[float]:
    """Means over ``window`` consecutive steps."""
    return np.convolve(xs, np.ones(window) / window, mode="valid").tolist()


plots.stacked_curves(
    [t["step"] for t in train_log][window - 1 :],
    {
        "sampled reward": {
            name: smooth([t["reward"] for t in r["log"]["train"]]) for name, r in rates.items()
        },
        "groups with no spread": {
            name: smooth([t["no_spread"] for t in r["log"]["train"]]) for name, r in rates.items()
        },
    },
    f"GRPO's training signal ({window}-step means)",
    "step",
)

# %% [markdown]
# The best rate, {glue:text}`full_best_lr`, takes held-out accuracy from {glue:text}`sft_acc` to
# {glue:text}`rl_acc` in {glue:text}`steps` steps (+{glue:text}`rl_gain`): the reward on problems
# the organism never saw, not only the ones it trained on. SFT on the same problems at the same rate
# reaches {glue:text}`sft_run_acc`: it is shown the answers, where GRPO has to find them. A group
# teaches nothing when all its completions fail or all succeed; the lower panel shows how many
# groups did, step by step (no spread in {glue:text}`no_spread_early` of the groups over the first 50
# steps, {glue:text}`no_spread_late` over the last 50). The same run with
# bfloat16 master weights reaches {glue:text}`bf16_run_acc`.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "GRPO works: held-out accuracy rises by at least 0.3", rl_acc >= sft_acc + 0.3, rl=rl_acc, sft=sft_acc
    )

# %% [markdown]
# One short run happens live: {glue:text}`live_steps` steps at the best rate, from this kernel's
# seed, beside the recorded run's first steps.

# %% tags=["nbval-ignore-output"]
live_model = setup.policy(DTYPE)
live_spec = RunSpec(lr=full_best_lr, steps=LIVE_STEPS, seed=SEED, eval_every=10)
live = run(live_model, task, live_spec)
live_gain = live["eval"][-1]["accuracy"] - live["eval"][0]["accuracy"]
glue("live_steps", LIVE_STEPS, display=False)
glue("live_acc", env.sig(live["eval"][-1]["accuracy"]), display=False)
glue("live_gain", env.sig(live_gain), display=False)
both = [{"run": f"live (seed {SEED})", **e} for e in live["eval"]]
both += [{"run": "recorded (seed 0)", **e} for e in evals if e["step"] <= LIVE_STEPS]
px.line(
    pd.DataFrame(both), x="step", y="accuracy", color="run", markers=True, title="held-out exact accuracy"
)

# %% [markdown]
# After {glue:text}`live_steps` steps the live run is at {glue:text}`live_acc`
# ({glue:text}`live_gain` over the start).
# Sampled completions diverge once rounding differs (another CPU, another thread count), so the
# book's tests do not compare the live cells' outputs; the check below holds the gain to a band.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check("the live run improves held-out accuracy", live_gain > 0.02, gain=live_gain)

# %% [markdown]
# ## Update sparsity, honestly measured
#
# Mukherjee et al. count a weight as unchanged when its value after RL equals its value before, in
# the bfloat16 checkpoints they compare (and with a tolerance of 1e-5). bfloat16 keeps 8 bits of
# mantissa, so an update smaller than about |w|/256 rounds away: a weight that moved can still read
# as unchanged. Our runs train in float32, so we can count both ways: the fraction of weights with
# |after - before| <= tol in float32, for tolerances from 0 to 1e-3, and the fraction equal once
# both models are rounded to bfloat16.

# %%
tolerances = [0.0, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3]
bf16_key = artifacts.Job("full", full_best_lr, "bfloat16").key
compared = {f"GRPO, lr {lr:g}": states[artifacts.Job("full", lr).key] for lr in full_runs}
compared[f"SFT, lr {full_best_lr:g}"] = states[artifacts.Job("sft", full_best_lr).key]
moved_never = sparsity.never_moved([start, *compared.values()])
never_frac = sum(m.sum().item() for m in moved_never.values()) / sum(m.numel() for m in moved_never.values())
sft_same = {n: start[n] == compared[f"SFT, lr {full_best_lr:g}"][n] for n in start}
sft_unchanged_embed = (sft_same["embed.W_E"].sum() + sft_same["pos_embed.W_pos"].sum()).item() / sum(
    m.sum().item() for m in sft_same.values()
)
curve = {
    name: [sparsity.unchanged_fraction(start, after, tol) for tol in tolerances]
    for name, after in compared.items()
}
rounded = {name: sparsity.unchanged_bf16(start, after) for name, after in compared.items()}
start_bf16 = {n: t.to(torch.bfloat16) for n, t in start.items()}
bf16_master = sparsity.unchanged_fraction(start_bf16, states[bf16_key])
best_name, sft_name = f"GRPO, lr {full_best_lr:g}", f"SFT, lr {full_best_lr:g}"
sparsity_fp32_tol0, sparsity_bf16, sparsity_sft_bf16 = (
    curve[best_name][0],
    rounded[best_name],
    rounded[sft_name],
)
for name, value in {
    "sparsity_fp32_tol0": sparsity_fp32_tol0,
    "sparsity_fp32_tol1e5": curve[best_name][tolerances.index(1e-5)],
    "sparsity_bf16": sparsity_bf16,
    "sparsity_sft_bf16": sparsity_sft_bf16,
    "sparsity_sft_fp32_tol0": curve[sft_name][0],
    "sparsity_bf16_master": bf16_master,
    "sparsity_low_lr_bf16": rounded[f"GRPO, lr {min(full_runs):g}"],
    "never_moved": never_frac,
    "sft_unchanged_embed": sft_unchanged_embed,
}.items():
    glue(name, env.sig(value), display=False)
glue("low_lr", min(full_runs), display=False)
table = pd.DataFrame(curve, index=[f"fp32, |delta| <= {t:g}" for t in tolerances]).T
table["bf16 rounded"] = pd.Series(rounded)
display(table.round(3))
fig = plots.curves(
    [f"{t:g}" for t in tolerances],
    curve,
    "fraction of weights unchanged (float32) at each tolerance; dotted: after rounding to bfloat16",
    "tolerance on |after - before|",
    "unchanged fraction",
)
for name, value in rounded.items():
    fig.add_hline(y=value, line_dash="dot", annotation_text=f"{name}, bf16", annotation_position="top left")
fig

# %% [markdown]
# In float32 the best GRPO run leaves {glue:text}`sparsity_fp32_tol0` of the weights exactly
# unchanged and {glue:text}`sparsity_fp32_tol1e5` within 1e-5. Rounded to bfloat16, as published
# sparsity is measured, the same run reads {glue:text}`sparsity_bf16` unchanged; at the lowest rate,
# {glue:text}`low_lr`, {glue:text}`sparsity_low_lr_bf16`. Training with bfloat16 master weights
# goes further: updates below bfloat16's resolution are not hidden but lost, and
# {glue:text}`sparsity_bf16_master` of the weights never change. Rounding, then, makes sparsity out
# of small updates, and the smaller the learning rate (the published runs use 1e-6), the more.
# SFT at the same rate reads {glue:text}`sparsity_sft_bf16` after rounding, more than GRPO: on
# this organism RL's update is not the sparser one. In float32 SFT leaves
# {glue:text}`sparsity_sft_fp32_tol0` exactly unchanged, {glue:text}`sft_unchanged_embed` of them in
# the token and position embeddings: rows of tokens no sorting problem contains, which SFT never
# reads (GRPO reads whatever tokens its samples hold), and positions past the longest problem. {glue:text}`never_moved` of all weights moved in no
# run at all.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "bf16 rounding makes most of the apparent sparsity: rounded >= 3x the exact count",
        sparsity_bf16 >= 3 * sparsity_fp32_tol0,
        bf16=sparsity_bf16,
        fp32=sparsity_fp32_tol0,
    )
    check(
        "bfloat16 master weights lose small updates: more unchanged than rounding a float32 run",
        bf16_master > sparsity_bf16,
        master=bf16_master,
        rounded=sparsity_bf16,
    )
    check(
        "here SFT reads sparser than RL after rounding",
        sparsity_sft_bf16 > sparsity_bf16,
        sft=sparsity_sft_bf16,
        rl=sparsity_bf16,
    )
    check(
        "most of SFT's exactly unchanged weights are token embeddings",
        sft_unchanged_embed >= 0.8,
        share=sft_unchanged_embed,
    )
    check(
        "a smaller rate looks sparser after rounding",
        rounded[f"GRPO, lr {min(full_runs):g}"] > sparsity_bf16,
        low=rounded[f"GRPO, lr {min(full_runs):g}"],
        best=sparsity_bf16,
    )

# %% [markdown]
# Where the unchanged weights are, per layer and per kind of parameter (after rounding to bfloat16,
# GRPO at the best rate and SFT), and the rank of each weight matrix's update: the singular values
# above 1e-3 of the largest, against the most the matrix allows.


# %%
def kind_of(name: str) -> str:
    return name.split(".")[-1] if name.startswith("blocks.") else name.split(".")[0]


def layer_of(name: str) -> str:
    return f"block {name.split('.')[1]}" if name.startswith("blocks.") else "outside blocks"


rows = []
for run_name in (best_name, sft_name):
    after = compared[run_name]
    for n in start:
        same = (start[n].to(torch.bfloat16) == after[n].to(torch.bfloat16)).sum().item()
        rows.append((run_name, layer_of(n), kind_of(n), same, start[n].numel()))
per = pd.DataFrame(rows, columns=["run", "layer", "parameter", "unchanged", "entries"])
per_kind = per.groupby(["run", "parameter"])[["unchanged", "entries"]].sum()
per_kind = (per_kind["unchanged"] / per_kind["entries"]).rename("unchanged (bf16)").reset_index()
display(
    px.bar(
        per_kind,
        x="parameter",
        y="unchanged (bf16)",
        color="run",
        barmode="group",
        title="fraction unchanged after bfloat16 rounding, by kind of parameter",
    )
)
ranks = []
for n in start:
    if sparsity.as_matrix(n, start[n]) is not None:
        rank, most = sparsity.update_rank(start[n], compared[best_name][n], n)
        ranks.append((n, rank, most, rank / most))
ranks = pd.DataFrame(ranks, columns=["matrix", "update rank", "largest possible", "ratio"])
median_rank_ratio = ranks["ratio"].median()
glue("median_rank_ratio", env.sig(median_rank_ratio), display=False)
glue("min_rank_ratio", env.sig(ranks["ratio"].min()), display=False)
glue("min_rank_matrix", ranks.loc[ranks["ratio"].idxmin(), "matrix"], display=False)
ranks.round(3)

# %% [markdown]
# The median update has rank {glue:text}`median_rank_ratio` of the largest possible. The least,
# {glue:text}`min_rank_ratio`, is that of {glue:text}`min_rank_matrix`, the position embedding,
# whose rows past the longest problem never move. As Mukherjee et al. found, RL's update is not
# low-rank, however few weights it seems to touch.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "the lowest-rank update is the position embedding's",
        ranks.loc[ranks["ratio"].idxmin(), "matrix"] == "pos_embed.W_pos",
        matrix=ranks.loc[ranks["ratio"].idxmin(), "matrix"],
    )
    check(
        "updates are nearly full rank: median rank ratio >= 0.9",
        median_rank_ratio >= 0.9,
        median=median_rank_ratio,
    )

# %% [markdown]
# ## Training a mask
#
# A mask says which weights a run may change. Masked training multiplies the gradient by the mask
# before the optimizer sees it, as the post does, and here the optimizer (`lib.rl.MaskedAdamW`)
# also keeps state only for the masked entries: their flat index and two moment vectors, where
# torch's AdamW keeps two moments for every weight. The other entries are never written, so the
# proof that a mask held is that they are bit-identical at the end. The masks, each keeping 1% of
# all weights (99% sparsity) unless said:
# - **Fisher**: the post's F_i, the mean over 256 sampled completions of (d log p / d theta_i)^2,
#   one gradient per completion; its top 1% and top 0.1%;
# - **random**: the post's recipe (numpy's generator seeded 0, 2001 and 42, 1% of every tensor);
# - **magnitude**: the 1% largest weights;
# - **oracle**: the 1% of weights the best full run moved most, known only after the fact.
#
# One masked run happens live: a random 1% mask from this kernel's seed, at the best rate the sweep
# found for random masks, for {glue:text}`live_steps` steps.

# %% tags=["nbval-ignore-output"]
random99_best_lr = artifacts.best(records, "random-99-s0")
live_masked = setup.policy(DTYPE)
live_mask = masks.random_mask({n: p.shape for n, p in live_masked.named_parameters()}, artifacts.KEEP, SEED)
before = {n: p.detach().clone() for n, p in live_masked.named_parameters()}
live_masked_log = run(
    live_masked,
    task,
    RunSpec(lr=random99_best_lr, steps=LIVE_STEPS, seed=SEED, eval_every=10),
    live_mask,
)
after = {n: p.detach() for n, p in live_masked.named_parameters()}
live_frozen = all(torch.equal(before[n][~live_mask[n]], after[n][~live_mask[n]]) for n in before)
live_moved = sum((before[n][live_mask[n]] != after[n][live_mask[n]]).sum().item() for n in before)
live_params = dict(live_masked.named_parameters())
masked_bytes = MaskedAdamW(live_params, live_mask, lr=random99_best_lr).state_bytes()
full_bytes = adamw_state_bytes(live_params)
masked_runs = {k: r for k, r in records.items() if "frozen_identical" in r}
masked_frozen_identical = live_frozen and all(r["frozen_identical"] for r in masked_runs.values())
glue("masked_frozen_identical", masked_frozen_identical, display=False)
glue("n_masked_runs", len(masked_runs), display=False)
glue("live_moved", live_moved, display=False)
glue("live_kept", sum(m.sum().item() for m in live_mask.values()), display=False)
glue("state_mb", env.sig(masked_bytes / 2**20), display=False)
glue("full_state_mb", env.sig(full_bytes / 2**20), display=False)
glue("state_ratio", env.sig(full_bytes / masked_bytes), display=False)
glue("live_masked_acc", env.sig(live_masked_log["eval"][-1]["accuracy"]), display=False)
glue("random99_best_lr", random99_best_lr, display=False)
pd.DataFrame(
    {
        "kept": {k: r["kept"] for k, r in masked_runs.items()},
        "optimizer state (MB)": {k: r["state_bytes"] / 2**20 for k, r in masked_runs.items()},
        "frozen weights bit-identical": {k: r["frozen_identical"] for k, r in masked_runs.items()},
    }
).round(4)

# %% [markdown]
# The live run's mask keeps {glue:text}`live_kept` weights; {glue:text}`live_moved` of them moved,
# and every other weight is bit-identical, as in all {glue:text}`n_masked_runs` recorded masked
# runs (all hold: {glue:text}`masked_frozen_identical`). Its optimizer state is
# {glue:text}`state_mb` MB against AdamW's {glue:text}`full_state_mb` MB, {glue:text}`state_ratio`
# times less (the index costs a third: 12 bytes per kept weight against 8 per weight). After
# {glue:text}`live_steps` steps at {glue:text}`random99_best_lr` it sorts
# {glue:text}`live_masked_acc` of the held-out problems.

# %% tags=["remove-cell"]
check(
    "every mask held: frozen weights bit-identical in every masked run",
    masked_frozen_identical,
    live=live_frozen,
)
if CHECK_BANDS:
    check("the live masked run trained its mask", live_moved > 0, moved=live_moved)

# %% [markdown]
# ## Which learning rate each mask needs
#
# Each mask trained at four learning rates, every run {glue:text}`steps` steps, scored on the same
# 512 held-out problems. The post found that masks need higher rates than full fine-tuning, random
# ones most (its 0.5B model: full 1e-6, Fisher 99% 5e-6, Fisher 99.9% 1e-5, random 5e-5 to 1e-4).

# %%
kinds = ["full", "fisher-99", "fisher-99.9", "random-99-s0", "magnitude-99", "oracle-99"]
sweep = pd.DataFrame(
    [(kind, lr, final(r)) for kind in kinds for lr, r in runs_of(kind).items()],
    columns=["run", "learning rate", "held-out accuracy"],
)
display(
    px.line(
        sweep,
        x="learning rate",
        y="held-out accuracy",
        color="run",
        markers=True,
        log_x=True,
        title=f"final held-out exact accuracy after {steps} steps, by learning rate",
    )
)
best_rows = sweep.loc[sweep.groupby("run", sort=False)["held-out accuracy"].idxmax()].set_index("run")
for seed in (2001, 42):
    (r,) = runs_of(f"random-99-s{seed}").values()
    best_rows.loc[f"random-99-s{seed}"] = (r["job"]["lr"], final(r))
best_rows["vs full"] = best_rows["held-out accuracy"] - rl_acc
random99_best_acc = best_rows.loc["random-99-s0", "held-out accuracy"]
fisher99_best_acc = best_rows.loc["fisher-99", "held-out accuracy"]
fisher999_best_acc = best_rows.loc["fisher-99.9", "held-out accuracy"]
random_seeds_acc = best_rows.loc[[f"random-99-s{s}" for s in (0, 2001, 42)], "held-out accuracy"]
glue("random99_best_acc", env.sig(random99_best_acc), display=False)
glue("fisher99_best_acc", env.sig(fisher99_best_acc), display=False)
glue("fisher99_best_lr", float(best_rows.loc["fisher-99", "learning rate"]), display=False)
glue("fisher999_best_acc", env.sig(fisher999_best_acc), display=False)
glue("random_seeds_min", env.sig(random_seeds_acc.min()), display=False)
glue("random_seeds_max", env.sig(random_seeds_acc.max()), display=False)
glue("random_gap", env.sig(rl_acc - random99_best_acc), display=False)
oracle_best_acc = best_rows.loc["oracle-99", "held-out accuracy"]
glue("oracle_best_acc", env.sig(oracle_best_acc), display=False)
glue("random_rate_ratio", env.sig(random99_best_lr / full_best_lr), display=False)
best_rows.round(3)

# %% [markdown]
# On this organism a random 1% of the weights comes close to full fine-tuning without matching it:
# at its best rate, {glue:text}`random99_best_lr`, random mask seed 0 reaches
# {glue:text}`random99_best_acc` against {glue:text}`rl_acc` for every weight at
# {glue:text}`full_best_lr` (a gap of {glue:text}`random_gap`; the three seeds
# {glue:text}`random_seeds_min` to {glue:text}`random_seeds_max`), from {glue:text}`sft_acc` before
# RL. Its best rate is the highest swept, so a still higher one might close the gap; what the sweep
# shows is the post's pattern of rates, a random mask needing {glue:text}`random_rate_ratio` times the full rate. The
# Fisher mask at 99% reaches {glue:text}`fisher99_best_acc` at {glue:text}`fisher99_best_lr`, a
# rate between the two, and at 99.9% falls short ({glue:text}`fisher999_best_acc`), as in the post.
# The oracle mask, the weights the full run moved most, matches full fine-tuning
# ({glue:text}`oracle_best_acc`): 1% of the weights suffice when they are the right ones.

# %% tags=["remove-cell"]
if CHECK_BANDS:
    check(
        "a random 1% comes within 0.06 of full fine-tuning at its best rate, every seed",
        random_seeds_acc.min() >= rl_acc - 0.06,
        random=random_seeds_acc.tolist(),
        full=rl_acc,
    )
    check(
        "random masks need a far higher rate: at least 30x full fine-tuning's best",
        random99_best_lr >= 30 * full_best_lr,
        random_lr=random99_best_lr,
        full_lr=full_best_lr,
    )
    check(
        "the Fisher 99% mask's best rate lies between full fine-tuning's and the random mask's",
        full_best_lr < best_rows.loc["fisher-99", "learning rate"] < random99_best_lr,
        fisher_lr=best_rows.loc["fisher-99", "learning rate"],
    )
    check(
        "the oracle's 1% matches full fine-tuning: within 0.02 or better",
        oracle_best_acc >= rl_acc - 0.02,
        oracle=oracle_best_acc,
        full=rl_acc,
    )
    check(
        "99.9% sparsity falls short: Fisher 99.9% trails Fisher 99% and full by over 0.05",
        fisher999_best_acc < min(fisher99_best_acc, rl_acc) - 0.05,
        fisher999=fisher999_best_acc,
        fisher99=fisher99_best_acc,
        full=rl_acc,
    )

# %% [markdown]
# ## Do working masks share weights?
#
# The Jaccard index of two masks is the size of their intersection over that of their union. Two
# independent masks that each keep a fraction p share p^2 of the weights on average and cover
# 2p - p^2, so by chance J = p / (2 - p): {glue:text}`jaccard_chance` at p = 1%.

# %%
names99 = ["fisher-99", "random-99-s0", "random-99-s2001", "random-99-s42", "magnitude-99", "oracle-99"]
jac = pd.DataFrame(
    [[masks.jaccard(all_masks[a], all_masks[b]) for b in names99] for a in names99],
    index=names99,
    columns=names99,
)
jaccard_chance = masks.chance_jaccard(artifacts.KEEP)
jaccard_random = float(np.mean([jac.loc["fisher-99", f"random-99-s{s}"] for s in (0, 2001, 42)]))
jaccard_random_pairs = float(
    np.mean(
        [
            jac.loc["random-99-s0", "random-99-s2001"],
            jac.loc["random-99-s0", "random-99-s42"],
            jac.loc["random-99-s2001", "random-99-s42"],
        ]
    )
)
oracle_overlap = jac["oracle-99"].drop("oracle-99")
glue("jaccard_random", env.sig(jaccard_random), display=False)
glue("jaccard_random_pairs", env.sig(jaccard_random_pairs), display=False)
glue("jaccard_chance", env.sig(jaccard_chance), display=False)
glue("jaccard_fisher_oracle", env.sig(oracle_overlap["fisher-99"]), display=False)
glue("jaccard_magnitude_oracle", env.sig(oracle_overlap["magnitude-99"]), display=False)
glue(
    "jaccard_random_oracle",
    env.sig(oracle_overlap[[f"random-99-s{s}" for s in (0, 2001, 42)]].mean()),
    display=False,
)
px.imshow(
    jac.round(4), text_auto=True, title="Jaccard index between the 99% masks", color_continuous_scale="Blues"
)

# %% [markdown]
# The random masks share {glue:text}`jaccard_random` of their weights with the Fisher mask on
# average (and {glue:text}`jaccard_random_pairs` with each other), what chance gives: the masks
# that train select almost entirely different weights. Against the oracle, the weights the best
# full run moved most, the Fisher mask scores {glue:text}`jaccard_fisher_oracle`, the magnitude
# mask {glue:text}`jaccard_magnitude_oracle` and random masks {glue:text}`jaccard_random_oracle`.

# %% tags=["remove-cell"]
check(
    "random masks overlap the Fisher mask as chance does: within 20% of p / (2 - p)",
    abs(jaccard_random - jaccard_chance) <= 0.2 * jaccard_chance,
    jaccard=jaccard_random,
    chance=jaccard_chance,
)

# %% [markdown]
# ## Results beside the literature

# %%
size = f"{MODEL_NAME}: {sum(p.numel() for p in start.values()):,} weights; {steps} steps of {spec.group} x 16 completions"
chance_acc = float(np.mean([1 / np.prod(np.arange(1, n + 1)) for n in range(5, 9)]))
pd.DataFrame(
    [
        ("held-out exact accuracy before RL", env.sig(sft_acc), env.sig(chance_acc), "-", size),
        ("after GRPO, best rate", env.sig(rl_acc), env.sig(chance_acc), "-", f"lr {full_best_lr:g}"),
        ("unchanged weights, RL, bf16 rounded", env.sig(sparsity_bf16), "-", "0.70-0.95 (Mukherjee)", size),
        ("unchanged weights, RL, fp32 exact", env.sig(sparsity_fp32_tol0), "-", "-", size),
        (
            "unchanged weights, SFT, bf16 rounded",
            env.sig(sparsity_sft_bf16),
            "-",
            "0.06-0.15 (Mukherjee)",
            size,
        ),
        ("median update rank / full rank", env.sig(median_rank_ratio), "-", "> 0.99 (Mukherjee)", size),
        (
            "random 99% at its best rate",
            env.sig(random99_best_acc),
            env.sig(chance_acc),
            "matches full (post)",
            f"lr {random99_best_lr:g}",
        ),
        ("Fisher 99% at its best rate", env.sig(fisher99_best_acc), env.sig(chance_acc), "works (post)", "-"),
        (
            "Fisher 99.9% at its best rate",
            env.sig(fisher999_best_acc),
            env.sig(chance_acc),
            "falls short (post)",
            "-",
        ),
        (
            "Jaccard, random vs Fisher",
            env.sig(jaccard_random),
            env.sig(jaccard_chance),
            "about 0.005 (post)",
            "p = 0.01",
        ),
    ],
    columns=["metric", "this run", "chance level", "published", "size (this run)"],
)

# %% [markdown]
# Published values: Mukherjee et al. (2025), "Reinforcement learning finetunes small subnetworks in
# large language models" (7 algorithms, 10 models; sparsity in bfloat16 and with tolerance 1e-5);
# the multiple-tickets post (Qwen2.5-0.5B-Instruct, GRPO on alphabet sorting, 512 evaluation
# problems seeded 2001; Fisher mask from 1,024 samples). The chance level of exact accuracy is that
# of writing the letters in a random order, 1/n!, averaged over 5 to 8 letters.
#
# ## On a real model
#
# On a GPU, rerun the whole sweep on a small instruct model (the problem goes in its chat
# template; rates scaled to the post's):
#
# ```
# make run CHAPTER=rlvr_subnetworks PARAMS="-p MODEL_NAME Qwen/Qwen2.5-0.5B-Instruct -p DEVICE cuda -p RATE_SCALE 0.01 -p STEPS 300"
# ```
#
# The post reports, for that model: random 99% masks matching full fine-tuning at 5e-5 to 1e-4
# against 1e-6, Fisher 99% at 5e-6, 99.9% falling short, and masks overlapping as chance does.
