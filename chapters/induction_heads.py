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
# # Induction heads
#
# A transformer that has seen `A B ... A` predicts `B` next. How? Olsson et al. (2022) traced
# this in-context copying to a two-head circuit: a *previous-token head* writes "the token before
# me was `A`" into every position, and an *induction head* in a later layer uses that
# information in its keys to find the position after the earlier `A` and copy the token there.
# This chapter finds that circuit, measures it with the metrics the literature uses, breaks it,
# reads it off the weights, and watches it form during training.
#
# By default everything runs on `induction-2l`, a two-layer attention-only transformer from the
# book's model zoo, trained on random tokens with copied spans at random offsets and lengths, so
# that copying can only be done by finding the earlier occurrence (see the appendix). A share of
# its random tokens also follow a skip-bigram rule (the token two back fixes the next one), so
# that, as in language, knowing the previous token pays at every position. Set `MODEL_NAME` to any
# TransformerLens model to run the same analyses on it.

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
MODEL_NAME: str = "induction-2l"  # a zoo organism (induction-2l) or a TransformerLens name (gpt2-small, ...)
DEVICE: str = "auto"  # auto, cpu or cuda
DTYPE: str = "float32"  # float32, float16 or bfloat16
SEED: int = 0  # seed of every random token sequence in this chapter
SEQ_LEN: int = 50  # length of each half of the repeated random tokens
BATCH: int = 30  # number of repeated-token sequences
TRAIN: bool = False  # retrain the zoo organism live for the phase-change section (a few minutes)

# %%
import circuitsvis as cv
import pandas as pd
import plotly.express as px
import torch
from IPython.display import display
from myst_nb import glue
from transformer_lens.utilities import get_act_name

from lib import attention, data, env, models, params, patching, plots, residual, zoo
from lib.claims import check

config = models.model_config(MODEL_NAME)
params.check_int("SEQ_LEN", SEQ_LEN, 2, (config.n_ctx - 1) // 2)
params.check_int("BATCH", BATCH, 1)
params.check_choice("TRAIN", TRAIN, [False, True])
if TRAIN and MODEL_NAME not in zoo.ORGANISMS:
    raise ValueError(
        f"TRAIN=True retrains a zoo organism; MODEL_NAME={MODEL_NAME!r} is not one ({', '.join(zoo.ORGANISMS)})"
    )
env.setup(SEED)
model = models.load_model(MODEL_NAME, DEVICE, DTYPE)
IS_ORGANISM = MODEL_NAME in zoo.ORGANISMS
print(models.describe(MODEL_NAME, model))

# %% [markdown]
# ## Repeated random tokens
#
# The cleanest test of in-context copying: a BOS token, then `SEQ_LEN` tokens drawn at random
# from the ordinary vocabulary, then the same tokens again. Nothing in the model's training can
# predict the first half; the second half is predictable only by looking back `SEQ_LEN`
# positions. The first half holds no token twice (`lib.data.repeated_tokens`): a token that
# recurs by chance has two successors, and no copying mechanism can know which one comes next.
# On GPT-2's 50,257 tokens a chance repeat is rare (about 2% of 50-token rows); on the organism's
# 512 it is the rule, so drawing with replacement would measure the vocabulary size as much as
# the model. The end of the next cell measures that too.

# %%
ordinary = data.ordinary_tokens(model)
tokens = data.repeated_tokens(ordinary, model.tokenizer.bos_token_id, SEQ_LEN, BATCH, SEED).to(
    model.cfg.device
)
logits = model(tokens)
logprobs = (
    logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0].float()
)  # [batch, 2*SEQ_LEN]
correct = (logits[:, :-1].argmax(-1) == tokens[:, 1:]).float()
first, second = slice(0, SEQ_LEN), slice(SEQ_LEN, 2 * SEQ_LEN)
rep = {
    "rep_logprob_first": logprobs[:, first].mean().item(),
    "rep_logprob_second": logprobs[:, second].mean().item(),
    "rep_acc_first": correct[:, first].mean().item(),
    "rep_acc_second": correct[:, second].mean().item(),
}
for name, value in rep.items():
    glue(name, round(value, 3), display=False)
glue("rep_logprob_chance", round(-torch.log(torch.tensor(float(len(ordinary)))).item(), 3), display=False)
print({name: round(value, 3) for name, value in rep.items()})

# the same test with the first half drawn with replacement, as the source posts do on GPT-2
half = ordinary[torch.randint(len(ordinary), (BATCH, SEQ_LEN), generator=torch.Generator().manual_seed(SEED))]
replaced = torch.cat([tokens[:, :1].cpu(), half, half], dim=1).to(model.cfg.device)
replaced_logprobs = (
    model(replaced).log_softmax(-1)[:, SEQ_LEN:-1].gather(-1, replaced[:, SEQ_LEN + 1 :, None])
)
rows_with_repeat = sum(len(set(row.tolist())) < SEQ_LEN for row in half) / BATCH
glue("rep_logprob_second_replacement", round(replaced_logprobs.mean().item(), 3), display=False)
glue("rows_with_repeat", round(rows_with_repeat, 2), display=False)
px.line(
    x=list(range(1, 2 * SEQ_LEN + 1)),
    y=logprobs.mean(0).cpu().numpy(),
    labels=dict(x="position of the predicted token", y="log-prob of the correct token"),
    title=f"{MODEL_NAME}: log-prob of the next token on repeated random tokens (mean of {BATCH})",
).add_vline(x=SEQ_LEN + 0.5, line_dash="dot")

# %% [markdown]
# In the first half the model does no better than chance: mean log-prob
# {glue:text}`rep_logprob_first` (a uniform guess over the ordinary tokens scores
# {glue:text}`rep_logprob_chance`) and top-1 accuracy {glue:text}`rep_acc_first`. In the second
# half it has the answer: log-prob {glue:text}`rep_logprob_second`, accuracy
# {glue:text}`rep_acc_second`. The first token of the second half is still unpredictable (nothing
# says the sequence is about to repeat), which the plot shows as the dip just after the dotted line.
# Drawn with replacement, {glue:text}`rows_with_repeat` of the rows hold a chance repeat and the
# second half scores {glue:text}`rep_logprob_second_replacement`: the price of the ambiguous
# successors, not of a weaker circuit.

# %% tags=["remove-cell"]
check(
    "log-probs are at most 0 and accuracies lie in [0, 1]",
    all(
        -1e4 < rep[f"rep_logprob_{half}"] <= 0 and 0 <= rep[f"rep_acc_{half}"] <= 1
        for half in ("first", "second")
    ),
    **rep,
)
if IS_ORGANISM:
    check(
        "in the second half the organism has the answer: top-1 accuracy >= 0.9",
        rep["rep_acc_second"] >= 0.9,
        **rep,
    )
    check("the first half is unpredictable: top-1 accuracy <= 0.05", rep["rep_acc_first"] <= 0.05, **rep)
    check("the second half's mean log-prob is >= -0.3", rep["rep_logprob_second"] >= -0.3, **rep)

# %% [markdown]
# ## Which heads do it: induction and previous-token scores
#
# A head's *induction score* is the attention it pays, from each second-half position, to the
# token right after that position's earlier occurrence (the `1 - SEQ_LEN` offset diagonal of its
# pattern), averaged over positions and sequences. The *previous-token score* is the attention
# paid to the position just before. The source posts call a head an induction head when its
# score exceeds 0.4. `lib.attention.head_scores` computes every score for every head from one
# forward pass, reducing each layer's pattern as it goes instead of caching it.

# %%
scores = attention.head_scores(model, tokens, ("induction", "previous", "duplicate", "first"))


def top_head(score: torch.Tensor) -> tuple[int, int]:
    layer, head = divmod(int(score.argmax()), model.cfg.n_heads)
    return layer, head


ind_head, prev_head = top_head(scores["induction"]), top_head(scores["previous"])
top_induction_score = scores["induction"][ind_head].item()
top_prev_token_score = scores["previous"][prev_head].item()
glue("top_induction_score", round(top_induction_score, 3), display=False)
glue("top_prev_token_score", round(top_prev_token_score, 3), display=False)
glue("ind_head", f"L{ind_head[0]}H{ind_head[1]}", display=False)
glue("prev_head", f"L{prev_head[0]}H{prev_head[1]}", display=False)
detected = [f"L{l}H{h}" for l, h in (scores["induction"] > 0.4).nonzero().tolist()]
print(
    f"top induction head L{ind_head[0]}H{ind_head[1]}: {top_induction_score:.3f}; "
    f"top previous-token head L{prev_head[0]}H{prev_head[1]}: {top_prev_token_score:.3f}"
)
print("induction heads (score > 0.4):", ", ".join(detected) or "none")
for kind in ("induction", "previous"):
    display(plots.head_heatmap(scores[kind], f"{kind} score per head ({MODEL_NAME})", zmax=1.0))

# %% [markdown]
# The top induction head is {glue:text}`ind_head` with score {glue:text}`top_induction_score`;
# the top previous-token head is {glue:text}`prev_head` with {glue:text}`top_prev_token_score`.
# The previous-token head sits in an earlier layer than the induction head, as the circuit
# requires. Their patterns on the first sequence (hover to see where each token attends):

# %%
str_tokens = model.to_str_tokens(tokens[0])
patterns = attention.attention_patterns(model, tokens[:1], [prev_head, ind_head])[:, 0]  # [2, dest, src]
cv.attention.attention_heads(
    tokens=str_tokens,
    attention=patterns.float().cpu(),
    attention_head_names=[
        f"L{prev_head[0]}H{prev_head[1]} (previous token)",
        f"L{ind_head[0]}H{ind_head[1]} (induction)",
    ],
)

# %% tags=["remove-cell"]
check(
    "scores are attention masses in [0, 1]",
    all(0 <= s.min() and s.max() <= 1 + 1e-4 for s in scores.values()),
)
if IS_ORGANISM:
    check(
        "the top induction head scores >= 0.8 and sits in layer 1",
        top_induction_score >= 0.8 and ind_head[0] == 1,
        score=top_induction_score,
        head=ind_head,
    )
    check(
        "the top previous-token head scores >= 0.8 and sits in layer 0, before the induction head",
        top_prev_token_score >= 0.8 and prev_head[0] == 0,
        score=top_prev_token_score,
        head=prev_head,
    )

# %% [markdown]
# ## Breaking it: ablation and patching
#
# Scores say where heads look, not what the model needs. Two interventions measure the latter.
# First, mean-ablate each head in turn (replace its output at every position by its mean over
# the batch and positions) and measure the loss on the second half. Second, patch the output of
# each layer's attention at each second-half position with its output at the matching
# first-half position, where the same token sits but nothing can be copied yet: if the layer's
# output at that position carries the copied prediction, the loss rises.


# %%
def second_half_loss(patched: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean loss on the predictable second half: the ablation metric."""
    return data.second_half_nll(patched, tokens, SEQ_LEN).mean(-1)


def second_half_total(patched: torch.Tensor) -> torch.Tensor:
    """Per-sequence summed loss on the second half: what patching one position costs in all."""
    return data.second_half_nll(patched, tokens, SEQ_LEN).sum(-1)


clean_loss = second_half_loss(logits).mean().item()
z_names = [get_act_name("z", layer) for layer in range(model.cfg.n_layers)]
attn_names = [get_act_name("attn_out", layer) for layer in range(model.cfg.n_layers)]
_, cache = model.run_with_cache(tokens, names_filter=lambda name: name in z_names + attn_names)
mean_z = {name: cache[name].mean((0, 1), keepdim=True).expand_as(cache[name]) for name in z_names}
ablation, _ = residual.mean_ablation(model, tokens, second_half_loss)  # [layer, head]; no MLPs here
top_ablation_head = top_head(ablation)
glue("top_ablation_increase", round(ablation.max().item(), 3), display=False)
glue("top_ablation_head", f"L{top_ablation_head[0]}H{top_ablation_head[1]}", display=False)
display(plots.head_heatmap(ablation, "second-half loss increase when the head is mean-ablated", zmid=0.0))

# all the detected induction heads mean-ablated at once
induction_mask = scores["induction"] > 0.4  # [layer, head]


def ablate_induction_heads(z: torch.Tensor, hook) -> torch.Tensor:
    heads = induction_mask[hook.layer()]
    z[:, :, heads] = mean_z[hook.name][:, :, heads]
    return z


joint_logits = model.run_with_hooks(
    tokens, fwd_hooks=[(lambda name: name in z_names, ablate_induction_heads)]
)
joint_ablation_increase = second_half_loss(joint_logits).mean().item() - clean_loss
single_induction_max = ablation[induction_mask].max().item() if induction_mask.any() else float("nan")
glue("joint_ablation_increase", round(joint_ablation_increase, 3), display=False)
glue("single_induction_max", env.sig(single_induction_max), display=False)  # None without induction heads
glue("n_induction_heads", int(induction_mask.sum()), display=False)
print(
    f"mean-ablating the {int(induction_mask.sum())} induction heads together: +{joint_ablation_increase:.3f} nats; "
    f"one at a time: at most +{single_induction_max:.3f}"
)

# attention output at each second-half position <- its output at the matching first-half position
second_pos = torch.arange(SEQ_LEN + 1, 2 * SEQ_LEN + 1)
shifted = {name: cache[name].clone() for name in attn_names}
for name in attn_names:
    shifted[name][:, second_pos] = cache[name][:, second_pos - SEQ_LEN]
layer_pos = (
    patching.patch_sweep(
        model, tokens, shifted, "attn_out", "layer_pos", second_half_total, positions=second_pos
    )
    - second_half_total(logits).mean()
)
patch_by_layer = layer_pos.mean(-1)
glue("patch_by_layer", [round(v, 3) for v in patch_by_layer.tolist()], display=False)
print(
    f"clean second-half loss {clean_loss:.3f} per token; nats added to the whole second half by patching one",
    "position of each layer's attention output (mean over positions):",
    [round(v, 3) for v in patch_by_layer.tolist()],
)
plots.layer_position_map(
    layer_pos,
    second_pos.tolist(),
    "second-half loss increase (nats, summed): attention output patched from the first half",
    "loss change",
)

# %% [markdown]
# Mean-ablating a single head raises the second-half loss by up to {glue:text}`top_ablation_increase`
# nats, at {glue:text}`top_ablation_head`. The two halves of the circuit are not equally
# redundant. Copying needs the previous token written at every key, and one head does most of
# that writing; the induction step is shared by the {glue:text}`n_induction_heads` heads above
# the 0.4 threshold, so ablating any one of them costs at most
# {glue:text}`single_induction_max` nats while ablating them together costs
# {glue:text}`joint_ablation_increase`. Per-head ablation alone would have undersold the induction
# heads. Patching by layer and position tells *where* the prediction is written: patching one
# second-half position of a layer's attention output adds, on average over positions,
# {glue:text}`patch_by_layer` nats to the whole second half (layer 0, layer 1, ...). Patching the
# last layer's attention output with its first-half value removes the copied token, since at the
# first occurrence there was nothing to copy. Patching layer 0 barely matters on the organism:
# at both positions the previous-token head reports the same previous token, and the keys it
# feeds (at first-half positions) are left untouched.

# %% tags=["remove-cell"]
check(
    "ablation and patching effects are finite",
    torch.isfinite(ablation).all() and torch.isfinite(layer_pos).all(),
)
if IS_ORGANISM:
    check(
        "mean-ablating the previous-token head costs the most, over 1 nat",
        top_ablation_head == prev_head and ablation.max() > 1.0,
        top_ablation_head=top_ablation_head,
        prev_head=prev_head,
        increase=ablation.max(),
    )
    check(
        "the induction heads are redundant: ablated together they cost over twice the most any one costs",
        joint_ablation_increase > max(1.0, 2 * single_induction_max),
        joint=joint_ablation_increase,
        single_max=single_induction_max,
    )
    check(
        "the last layer's attention output carries the copy; layer 0's barely matters",
        patch_by_layer[-1] > 1.0 and patch_by_layer[0] < 0.2 * patch_by_layer[-1],
        patch_by_layer=patch_by_layer,
    )

# %% [markdown]
# ## Reading the circuit off the weights
#
# The induction head finds the right key because the previous-token head wrote the *previous*
# token into it: K-composition. Multiplying out the path gives a vocabulary-by-vocabulary
# matrix, the full K-composition circuit $W_E W_Q^{h_2} (W_E W_V^{h_1} W_O^{h_1} W_K^{h_2})^\top$:
# entry $(a, b)$ is how strongly a query on token $a$ attends to a key whose previous token is
# $b$. If the circuit works, each row's largest entry is on the diagonal.

# %%
circuit = attention.k_composition_circuit(model, prev_head, ind_head)
kcomp_top1_acc = attention.diagonal_top1_accuracy(circuit, ordinary, chunk=1024)
glue("kcomp_top1_acc", round(kcomp_top1_acc, 3), display=False)
print(
    f"K-composition circuit L{prev_head[0]}H{prev_head[1]} -> L{ind_head[0]}H{ind_head[1]}: "
    f"top-1 accuracy {kcomp_top1_acc:.3f} over {len(ordinary)} tokens (chance {1 / len(ordinary):.4f})"
)
sample = ordinary[:64].to(model.cfg.device)
block = circuit.A[sample] @ circuit.B[:, sample]
px.imshow(
    block.float().cpu().numpy(),
    color_continuous_scale="RdBu",
    color_continuous_midpoint=0.0,
    labels=dict(x="key: previous token", y="query token"),
    title="K-composition full circuit, first 64 tokens",
)

# %% [markdown]
# Over the whole vocabulary, the diagonal wins in {glue:text}`kcomp_top1_acc` of the rows.
# The same product for every pair of heads, normalised (Elhage et al. 2021: the Frobenius norm of
# the product over the product of the norms), gives the composition scores; the pair we found
# should stand out for K-composition.

# %%
kcomp = attention.composition_scores(model, "k")
L, H = model.cfg.n_layers, model.cfg.n_heads
pair_names = [f"L{l}H{h}" for l in range(L) for h in range(H)]
px.imshow(
    kcomp.reshape(L * H, L * H).float().cpu().numpy(),
    x=pair_names,
    y=pair_names,
    labels=dict(x="later head (keys)", y="earlier head (writes)", color="K-comp"),
    title="K-composition scores for every pair of heads",
)

# %% tags=["remove-cell"]
check("the K-composition top-1 accuracy is a fraction", 0 <= kcomp_top1_acc <= 1, accuracy=kcomp_top1_acc)
if IS_ORGANISM:
    into_induction = kcomp[:, :, ind_head[0], ind_head[1]]
    check(
        "the pair found stands out: the strongest K-composition into the induction head",
        kcomp[prev_head + ind_head] == into_induction[~into_induction.isnan()].max(),
        pair=kcomp[prev_head + ind_head],
        strongest=into_induction[~into_induction.isnan()].max(),
    )
    check("the diagonal wins in at least half of the rows", kcomp_top1_acc >= 0.5, accuracy=kcomp_top1_acc)

# %% [markdown]
# ## The phase change
#
# Induction heads form abruptly (Olsson et al. 2022): loss sits on a plateau, then drops in a
# few hundred steps while the induction score jumps. The organism's training log, recorded in
# its manifest, shows it. Set `TRAIN=True` to retrain it here and watch it live.

# %%
if IS_ORGANISM:
    log = zoo.train(MODEL_NAME)[1] if TRAIN else zoo.manifest(MODEL_NAME)["training_log"]
    steps = [entry["step"] for entry in log]
    fig = plots.curves(
        steps,
        {
            "loss on repeated tokens, second half": [entry["loss_second_half"] for entry in log],
            "top induction score (layer 1)": [entry["top_induction_score"] for entry in log],
            "top previous-token score (layer 0)": [entry["top_prev_token_score"] for entry in log],
        },
        f"{MODEL_NAME}: training",
        "step",
        "",
    )
    phase_change_step = next(e["step"] for e in log if e["top_induction_score"] > 0.4)
    glue("phase_change_step", phase_change_step, display=False)
    print(f"the top induction score first exceeds 0.4 at step {phase_change_step}")
    display(fig)
else:
    print(f"{MODEL_NAME} has no recorded training log in the zoo: this section runs on zoo organisms.")

# %% tags=["remove-cell"]
if IS_ORGANISM:
    before = [e for e in log if e["step"] < phase_change_step]
    check(
        "the induction score stays below 0.4 before the phase change",
        before and max(e["top_induction_score"] for e in before[:-1] or before) < 0.4,
        step=phase_change_step,
    )
    check(
        "after training the induction score is above 0.8 and the second-half loss has more than halved",
        log[-1]["top_induction_score"] > 0.8
        and log[-1]["loss_second_half"] < 0.5 * log[0]["loss_second_half"],
        final=log[-1],
        first=log[0],
    )

# %% [markdown]
# ## Results
#
# This run beside what the source posts report for GPT-2 small on the same experiment
# (repeated random tokens, `SEQ_LEN` 50).

# %%
results = pd.DataFrame(
    [
        ("log-prob, first half", rep["rep_logprob_first"], -13.898),
        ("log-prob, second half", rep["rep_logprob_second"], -0.644),
        ("log-prob, second half, drawn with replacement", replaced_logprobs.mean().item(), -0.644),
        ("top-1 accuracy, first half", rep["rep_acc_first"], 0.0),
        ("top-1 accuracy, second half", rep["rep_acc_second"], 0.93),
        ("top induction score", top_induction_score, 0.91),
        ("K-composition circuit top-1 accuracy", kcomp_top1_acc, 0.2283),
    ],
    columns=["metric", MODEL_NAME, "GPT-2 small (published)"],
).round(3)
results

# %% [markdown]
# Published values: the induction-heads walkthrough on GPT-2 small (repeated random tokens of
# length 50, drawn with replacement: on GPT-2's vocabulary about 2% of such rows hold a chance
# repeat, so the two draws agree there; induction head L5H5, previous-token head L4H11) and
# Olsson et al. (2022). A random
# model's first-half log-prob is near $-\ln(\text{vocabulary})$; GPT-2's is far lower because it
# is confidently wrong on random tokens.
#
# ## On a real model
#
# On a GPU (e.g. Colab), re-run this chapter on GPT-2 small:
#
# ```
# make run CHAPTER=induction_heads PARAMS="-p MODEL_NAME gpt2-small -p DEVICE cuda"
# ```
#
# Expect log-prob near -13.9 and -0.64 on the two halves, an induction score of about 0.9 for
# L5H5, the previous-token head L4H11, and a K-composition top-1 accuracy of about 0.23.
