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
# # Attention sinks
#
# An induction head attends from the second `A` in `A B ... A` to the `B`. What does it attend to
# when the text has no earlier `A`, when there is nothing to induct? The source post
# (Adewuyi 2025) looked at GPT-2's induction heads on ordinary text and found them staring at
# the first token. This is the *attention sink* (Xiao et al. 2023): heads that have nothing to do
# park their attention on the first position, where it changes little. This chapter measures
# where the induction heads look with and without something to copy, measures the sink with
# Gu et al.'s (2024) metric, asks why the first token is a safe place to park (value norms,
# dormant heads, the residual stream, massive activations), and intervenes: drop the first
# token or replace it, remove the sink inside the heads (zero its value, or hide it from the
# queries) and measure the loss, and hide it from a sliding attention window as StreamingLLM does.
#
# Set `MODEL_NAME` to any TransformerLens model to run the same analyses on it.

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
MODEL_NAME: str = "induction-2l"  # organism (induction-2l, language-4l) or TransformerLens name (gpt2-small)
DEVICE: str = "auto"  # {"auto", "cpu", "cuda"}: where the model runs
DTYPE: str = "float32"  # {"float32", "float16", "bfloat16"}: dtype of the weights and activations
SEED: int = 0  # [0, 2**32 - 1]: seed of every random token sequence and text sample in this chapter
SEQ_LEN: int = 50  # [20, (n_ctx - 1) // 2]: each half of the repeated tokens (shorter repeats score lower)
BATCH: int = 16  # [4, 64]: sequences in every input set (fewer make the checks' averages noisy)
PLAIN_LEN: int = 64  # [16, n_ctx]: length of the inputs with nothing to induct (Gu et al. use 64)
WINDOW: int = 16  # [2, (WINDOW_LEN or n_ctx) // 4]: window attention: each query sees the last WINDOW tokens
N_SINK: int = 4  # [1, min(8, WINDOW)]: the first N_SINK tokens stay visible too (StreamingLLM keeps 4)
WINDOW_LEN: int = 0  # 0 or [32, n_ctx]: length of the window-attention inputs (0: the model's n_ctx)

# %%
import circuitsvis as cv
import pandas as pd
import plotly.express as px
import torch
from IPython.display import display
from myst_nb import glue

from lib import attention, data, env, figures, language, memory, models, params, plots, residual, sinks, zoo
from lib.claims import check

config = models.model_config(MODEL_NAME)
params.validate(globals(), config)  # the types and ranges the parameters cell declares, n_ctx from the config
window_len = WINDOW_LEN or config.n_ctx
memory.check(
    config,
    DEVICE,
    DTYPE,
    {
        "BATCH, SEQ_LEN": (BATCH, 2 * SEQ_LEN + 1),
        "BATCH, PLAIN_LEN": (BATCH, PLAIN_LEN),
        "BATCH, WINDOW_LEN": (BATCH, window_len),
    },
)
env.setup(SEED)
model = models.load_model(MODEL_NAME, DEVICE, DTYPE)
IS_ORGANISM = MODEL_NAME in zoo.ORGANISMS
CHECK_BANDS = MODEL_NAME == "induction-2l"  # the default organism: the check cells' tolerance bands apply
SPEAKS_LANGUAGE = language.speaks_language(model)  # the language organism
bos = model.tokenizer.bos_token_id
ordinary = data.ordinary_tokens(model)
n_heads_total = model.cfg.n_layers * model.cfg.n_heads
print(models.describe(MODEL_NAME, model, len(ordinary)))


def later_queries(tokens: torch.Tensor) -> torch.Tensor:
    """Every query position but the first (which can only attend to itself)."""
    queries = torch.ones(tokens.shape, dtype=torch.bool)
    queries[:, 0] = False
    return queries


def mean_over(values: torch.Tensor, heads: list[tuple[int, int]]) -> float:
    """Mean of a per-head tensor over ``heads``."""
    return torch.stack([values[l, h] for l, h in heads]).mean().item()


# %% [markdown]
# ## The induction heads, with something to induct
#
# As in the induction-heads chapter: a BOS token, `SEQ_LEN` random tokens, the same tokens again.
# A head is an induction head when its induction score (the attention from each second-half token
# to the token after its first occurrence) exceeds 0.4, the source post's threshold. For the
# same heads, on the same second-half positions, we measure the attention that goes to the first
# token instead. Each score comes from one forward pass that reduces every head's pattern as it
# goes (`lib.attention.head_scores`, `lib.sinks.first_token_mass`).

# %%
repeated = data.repeated_tokens(ordinary, bos, SEQ_LEN, BATCH, SEED).to(model.cfg.device)
scores = attention.head_scores(model, repeated, ("induction",))["induction"]
induction_heads = (scores >= 0.4).nonzero().tolist()
n_induction_heads = len(induction_heads)
if not induction_heads:  # a model without induction heads: follow its best candidate
    induction_heads = [list(divmod(int(scores.argmax()), model.cfg.n_heads))]
head_names = [f"L{l}H{h}" for l, h in induction_heads]
heads_text = (
    ", ".join(head_names)
    if n_induction_heads
    else f"none reaches 0.4; the best candidate, followed below, is {head_names[0]}"
)
second_half = torch.zeros(repeated.shape, dtype=torch.bool)
second_half[:, SEQ_LEN + 1 :] = True
first_repeated = sinks.first_token_mass(model, repeated, second_half)
induction_first_attn_repeated = mean_over(first_repeated, induction_heads)
glue("induction_heads", heads_text, display=False)
glue("n_induction_heads", n_induction_heads, display=False)
glue("induction_first_attn_repeated", env.sig(induction_first_attn_repeated), display=False)
print(
    f"induction heads (score >= 0.4): {heads_text};",
    "scores:",
    {n: env.sig(scores[l, h].item()) for n, (l, h) in zip(head_names, induction_heads)},
)
print("their attention to the first token on the second half:", env.sig(induction_first_attn_repeated))
display(plots.head_heatmap(scores, f"induction score per head ({MODEL_NAME})", zmax=1.0))

# %% [markdown]
# The model has {glue:text}`n_induction_heads` induction heads ({glue:text}`induction_heads`).
# With something to copy, they spend only {glue:text}`induction_first_attn_repeated` of their
# attention on the first token.

# %% tags=["remove-cell"]
check("induction scores are attention masses", 0 <= scores.min() and scores.max() <= 1 + env.tolerance(DTYPE))
check("first-token attention is a fraction", 0 <= induction_first_attn_repeated <= 1)
if CHECK_BANDS:
    check("the organism has an induction head scoring >= 0.8", scores.max() >= 0.8, top=scores.max())

# %% [markdown]
# ## Nothing to induct
#
# Now inputs in which no token repeats, so an induction head finds no earlier occurrence of the
# current token: `PLAIN_LEN` random tokens drawn without replacement and, for a model that reads
# text, ordinary text. For the language organism the text is its own language (texts of
# `lib.language` run together behind a single BOS); for a real model it is the same words
# re-tokenized by the model's tokenizer. (Text repeats words, so it gives an induction head
# something to do now and then; random tokens without repeats never do.) We measure, per head, the
# mean attention that every query after the first pays to the first token. The chance level is
# what a head that spread its attention evenly would give: the query at position `i` (from 0)
# sees `i + 1` tokens, so uniform attention gives the first `1 / (i + 1)`, averaged over the same
# queries (`lib.sinks.uniform_first_mass`). The default model, the induction organism, reads no
# text (its vocabulary is 512 arbitrary ids), so its plain input is the random tokens; the
# language organism gets its own section below.

# %%
plain_inputs = {
    "random tokens without repeats": data.distinct_tokens(ordinary, bos, PLAIN_LEN, BATCH, SEED + 1)
}
if SPEAKS_LANGUAGE:
    plain_inputs["text"] = sinks.text_stream(SEED, BATCH, PLAIN_LEN)
elif not IS_ORGANISM:
    plain_inputs["text"] = sinks.retokenize(model, sinks.text_stream(SEED, BATCH, PLAIN_LEN + 1), PLAIN_LEN)
PLAIN = "text" if "text" in plain_inputs else "random tokens without repeats"
plain = plain_inputs[PLAIN].to(model.cfg.device)
first_plain = {
    name: sinks.first_token_mass(model, toks, later_queries(toks)) for name, toks in plain_inputs.items()
}
induction_first_attn_plain = mean_over(first_plain[PLAIN], induction_heads)
uniform_first_plain = sinks.uniform_first_mass(later_queries(plain))
glue("plain_source", PLAIN, display=False)
glue("induction_first_attn_plain", env.sig(induction_first_attn_plain), display=False)
glue(
    "plain_over_repeated",
    env.sig(induction_first_attn_plain / max(induction_first_attn_repeated, 1e-6)),
    display=False,
)
glue("uniform_first_plain", env.sig(uniform_first_plain), display=False)
pd.DataFrame(
    {
        "repeated tokens, second half": [env.sig(first_repeated[l, h].item()) for l, h in induction_heads],
        **{
            name: [env.sig(mass[l, h].item()) for l, h in induction_heads]
            for name, mass in first_plain.items()
        },
    },
    index=head_names,
).rename_axis("attention to the first token")

# %%
for name, mass in first_plain.items():
    display(plots.head_heatmap(mass, f"attention to the first token per head: {name}", zmax=1.0))

# %% [markdown]
# On the {glue:text}`plain_source` the induction heads put {glue:text}`induction_first_attn_plain`
# of their attention on the first token, {glue:text}`plain_over_repeated` times as much as when
# there was something to copy; uniform attention would give it {glue:text}`uniform_first_plain`.
# Their patterns on the first sequence of each kind (hover over a token to see where it looks):

# %%
view = {"repeated": repeated[:1], "plain": plain[:1]}
patterns = {
    kind: attention.attention_patterns(model, toks, [tuple(h) for h in induction_heads])[:, 0]
    for kind, toks in view.items()
}
display(
    figures.Widget(
        cv.attention.attention_heads(
            tokens=model.to_str_tokens(view["repeated"][0]),
            attention=patterns["repeated"].float().cpu(),
            attention_head_names=[f"{n}, repeated tokens" for n in head_names],
        )
    )
)
figures.Widget(
    cv.attention.attention_heads(
        tokens=model.to_str_tokens(view["plain"][0]),
        attention=patterns["plain"].float().cpu(),
        attention_head_names=[f"{n}, {PLAIN}" for n in head_names],
    )
)

# %% tags=["remove-cell"]
check(
    "first-token masses are fractions",
    all(0 <= m.min() and m.max() <= 1 + env.tolerance(DTYPE) for m in first_plain.values()),
)
check("the chance level is a fraction", 0 < uniform_first_plain < 1, uniform=uniform_first_plain)
if CHECK_BANDS:
    check(
        "with nothing to copy, induction heads put at least half their attention on the first token",
        induction_first_attn_plain >= 0.5,
        plain=induction_first_attn_plain,
    )
    check(
        "they look at the first token over 3x more than when they can copy, and over 3x chance",
        induction_first_attn_plain >= 3 * max(induction_first_attn_repeated, uniform_first_plain),
        plain=induction_first_attn_plain,
        repeated=induction_first_attn_repeated,
        uniform=uniform_first_plain,
    )

# %% [markdown]
# ## The sink metric
#
# Gu et al. (2024) measure sinks for every head at once. A token's *importance* to a head is the
# mean attention it receives from the queries at or after it; `Sink_1` is the percentage of
# (layer, head) pairs in which the first token's importance exceeds 0.3, on 64-token inputs.
# `lib.sinks.token_importance` reduces each layer's pattern to importances during one forward
# pass. Two things to keep in mind when setting an organism beside the published numbers. The
# metric counts heads, so on a model with few heads it moves in coarse steps: one head is
# `100 / (number of heads)` percent. And a head without a sink scores 0: uniform attention gives
# the first of `PLAIN_LEN` tokens an importance of `H / PLAIN_LEN` (`H` the harmonic number,
# `lib.sinks.uniform_importance`), far under the 0.3 threshold.

# %%
importance = {name: sinks.token_importance(model, toks) for name, toks in plain_inputs.items()}
sink1 = {name: sinks.sink_rate(imp) for name, imp in importance.items()}
sink1_pct = sink1[PLAIN]
sink1_step = 100 / n_heads_total
uniform_importance = sinks.uniform_importance(PLAIN_LEN)
glue("sink1_pct", env.sig(sink1_pct), display=False)
glue("sink1_pct_random", env.sig(sink1["random tokens without repeats"]), display=False)
glue("n_heads_total", n_heads_total, display=False)
glue("sink1_step", env.sig(sink1_step), display=False)
glue("uniform_importance", env.sig(uniform_importance), display=False)
print(
    f"Sink_1 over {PLAIN_LEN}-token inputs (% of heads with first-token importance > 0.3):",
    {name: env.sig(value) for name, value in sink1.items()},
    f"in steps of {env.sig(sink1_step)}% ({n_heads_total} heads); uniform importance {env.sig(uniform_importance)}",
)
max_later_importance = (
    importance[PLAIN][..., 1 : PLAIN_LEN // 2 + 1].max().item()
)  # sources half the queries see
glue("max_later_importance", env.sig(max_later_importance), display=False)
glue("half_len", PLAIN_LEN // 2, display=False)
display(plots.head_heatmap(importance[PLAIN][..., 0], f"first-token importance per head ({PLAIN})", zmax=1.0))
mean_importance = importance[PLAIN].mean((0, 1))
px.line(
    x=list(range(PLAIN_LEN)),
    y=mean_importance.cpu().numpy(),
    log_y=True,
    labels=dict(x="source position", y="importance (mean over heads)"),
    title=f"importance of each position, mean over all heads ({PLAIN})",
)

# %% [markdown]
# `Sink_1` is {glue:text}`sink1_pct`% on the {glue:text}`plain_source`
# ({glue:text}`sink1_pct_random`% on random tokens without repeats). With
# {glue:text}`n_heads_total` heads it can only move in steps of {glue:text}`sink1_step`%: it
# counts heads, and the published models have about a thousand. Uniform attention would give the
# first token an importance of {glue:text}`uniform_importance`, so a head without a sink counts 0.
# No later position is a sink: among the positions that at least half the queries can see (1 to
# {glue:text}`half_len`), the largest importance any head gives is
# {glue:text}`max_later_importance`. The rise at the right end of the plot is the metric's, not
# the model's: the last position's importance is the attention one query pays itself, the one
# before it averages two queries, and so on.

# %% tags=["remove-cell"]
check("Sink_1 is a percentage", all(0 <= value <= 100 for value in sink1.values()), **sink1)
check(
    "importances are fractions",
    all(0 <= imp.min() and imp.max() <= 1 + env.tolerance(DTYPE) for imp in importance.values()),
)
check("uniform attention gives the first token no sink", uniform_importance < 0.3, uniform=uniform_importance)
if CHECK_BANDS:
    check(
        "some heads sink on the first token and no later position passes the 0.3 threshold",
        sink1_pct > 0 and max_later_importance < 0.3,
        max_later_importance=max_later_importance,
        **sink1,
    )

# %% [markdown]
# ## Why the first token is safe to park on
#
# Attention to a token moves that token's value vector. A head that parks on the first token is
# harmless if what it moves from there is small or constant. Guo et al. (2024) found two companions
# of the sink at the sink tokens of real models (Llama, OLMo) and of one- to three-layer
# transformers trained on a toy task: *residual-state peaks* (the residual stream at the sink has a
# much larger norm than elsewhere) and *value-state drains* (the value vectors there are much
# smaller), so dormant heads that attend to the sink write almost nothing. Sun et al. (2024) found
# huge activations in a few residual dimensions at the first token. We measure each in turn: the
# value norm per head at the first position against the others, the output norm of the induction
# heads with and without something to copy, the residual-stream norm at the first position by layer,
# and the largest residual activations.

# %%
values = sinks.value_norms(model, plain)  # [layer, head, pos]
value_ratio = values[..., 0] / values[..., 1:].mean(-1)
first_value_norm_ratio = mean_over(value_ratio, induction_heads)
glue("first_value_norm_ratio", env.sig(first_value_norm_ratio), display=False)
glue("first_value_norm_ratio_all", env.sig(value_ratio.mean().item()), display=False)
print(
    "value norm at the first position / mean over the others, induction heads:",
    {n: env.sig(value_ratio[l, h].item()) for n, (l, h) in zip(head_names, induction_heads)},
)
plots.head_heatmap(value_ratio, f"value norm: first position / mean of the others ({PLAIN})", zmid=1.0)

# %%
out_repeated = sinks.head_output_norms(model, repeated)[..., SEQ_LEN + 1 :].mean(-1)
out_plain = sinks.head_output_norms(model, plain)[..., 1:].mean(-1)
spread_repeated = sinks.head_output_spread(model, repeated, second_half)
spread_plain = sinks.head_output_spread(model, plain, later_queries(plain))
dormant_output_ratio = mean_over(out_plain / out_repeated, induction_heads)
induction_spread_repeated = mean_over(spread_repeated, induction_heads)
induction_spread_plain = mean_over(spread_plain, induction_heads)
glue("dormant_output_ratio", env.sig(dormant_output_ratio), display=False)
glue("spread_repeated", env.sig(induction_spread_repeated), display=False)
glue("spread_plain", env.sig(induction_spread_plain), display=False)
dormant_table = pd.DataFrame(
    {
        "output norm, repeated (second half)": [
            env.sig(out_repeated[l, h].item()) for l, h in induction_heads
        ],
        f"output norm, {PLAIN}": [env.sig(out_plain[l, h].item()) for l, h in induction_heads],
        "output ratio": [env.sig((out_plain / out_repeated)[l, h].item()) for l, h in induction_heads],
        "spread, repeated (second half)": [env.sig(spread_repeated[l, h].item()) for l, h in induction_heads],
        f"spread, {PLAIN}": [env.sig(spread_plain[l, h].item()) for l, h in induction_heads],
    },
    index=head_names,
)
display(dormant_table)
px.bar(
    pd.DataFrame(
        {
            "head": head_names * 2,
            "input": ["repeated, second half"] * len(head_names) + [PLAIN] * len(head_names),
            "spread": [spread_repeated[l, h].item() for l, h in induction_heads]
            + [spread_plain[l, h].item() for l, h in induction_heads],
        }
    ),
    x="head",
    y="spread",
    color="input",
    barmode="group",
    title="how much of what each induction head writes depends on the context",
)

# %%
resid = residual.residual_norms(model, plain).mean(1)  # [n_layers + 1, pos], mean over rows
resid_first_ratio = resid[:, 0] / resid[:, 1:].mean(-1)
massive = sinks.massive_activations(model, plain)
massive_ratio = massive["value"][:, 0] / massive["median"]
normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
n_activations = plain.numel() * model.cfg.d_model  # entries at each residual point
# the typical largest |z| of that many Gaussian entries over their median |z|: the chance level
gaussian_ratio = (normal.icdf(torch.tensor(1 - 0.5 / n_activations)) / normal.icdf(torch.tensor(0.75))).item()
glue("gaussian_ratio", env.sig(gaussian_ratio), display=False)
points = [f"before layer {l}" for l in range(model.cfg.n_layers)] + ["after the last layer"]
print(
    "residual norm at the first position / mean over the others:",
    [env.sig(v) for v in resid_first_ratio.tolist()],
)
display(
    pd.DataFrame(
        {
            "largest |activation|": [env.sig(v) for v in massive["value"][:, 0].tolist()],
            "position": massive["position"][:, 0].tolist(),
            "dimension": massive["dim"][:, 0].tolist(),
            "median |activation|": [env.sig(v) for v in massive["median"].tolist()],
            "ratio": [env.sig(v) for v in massive_ratio.tolist()],
        },
        index=points,
    )
)
glue("resid_first_ratio", [env.sig(v) for v in resid_first_ratio.tolist()], display=False)
glue("resid_first_ratio_min", env.sig(resid_first_ratio.min().item()), display=False)
glue("resid_first_ratio_max", env.sig(resid_first_ratio.max().item()), display=False)
glue("massive_ratio", env.sig(massive_ratio.max().item()), display=False)
plots.curves(
    points,
    {"first position": resid[:, 0].tolist(), "mean of the other positions": resid[:, 1:].mean(-1).tolist()},
    f"residual-stream norm ({PLAIN})",
    "",
    "L2 norm",
)

# %% [markdown]
# At the first position the induction heads' value vectors have {glue:text}`first_value_norm_ratio`
# times the norm of the other positions' ({glue:text}`first_value_norm_ratio_all` averaged over
# all heads): a value-state drain, as Guo et al. find in real models. So a parked head writes
# less: on the {glue:text}`plain_source` the induction heads' output norm is
# {glue:text}`dormant_output_ratio` times what it is when they copy (the table gives each head;
# the ratio is the mean of the heads' ratios). There is a second way to be harmless, which holds
# in any causal model: the first position attends only to itself, so everything computed there is
# the same in every context, and a head parked on it writes a fixed vector, a bias that later
# layers can absorb. The *spread* measures this: the mean distance of a head's output from its
# average output, over the mean output norm. The induction heads' spread is
# {glue:text}`spread_plain` when parked, against {glue:text}`spread_repeated` when they copy. The
# induction organism is safe to park in both ways: its parked heads write less than when they
# copy, and what they write barely varies.
#
# The residual stream shows Guo et al.'s residual-state peak, in miniature: the norm at the first
# position, over the mean of the others, is {glue:text}`resid_first_ratio` from the embedding to
# the output (between {glue:text}`resid_first_ratio_min` and {glue:text}`resid_first_ratio_max`
# times the others). The largest residual activation is at most {glue:text}`massive_ratio` times
# the median magnitude (as many Gaussian entries would give about {glue:text}`gaussian_ratio`);
# the table says at which position and dimension each sits. These are not
# Sun et al.'s massive activations, which in real models sit at the first token and at delimiter
# tokens, in a few fixed dimensions, above 100 and about a thousand times the median (up to about
# 100,000 times typical activations): this attention-only organism parks its heads without them.

# %% tags=["remove-cell"]
check(
    "value norms are finite and non-negative",
    torch.isfinite(values).all() and (values >= 0).all() and first_value_norm_ratio > 0,
)
check(
    "residual norms are finite, output ratios positive",
    torch.isfinite(resid).all() and dormant_output_ratio > 0,
)
check(
    "spreads lie in [0, 1]",
    all(0 <= s.min() and s.max() <= 1 + env.tolerance(DTYPE) for s in (spread_repeated, spread_plain)),
)
check("the largest activation is at least the median", (massive["value"][:, 0] >= massive["median"]).all())
if CHECK_BANDS:
    check(
        "the induction heads' values are smaller at the first position than elsewhere",
        first_value_norm_ratio < 1,
        ratio=first_value_norm_ratio,
    )
    check(
        "parked induction heads write less than when they copy",
        dormant_output_ratio < 1,
        ratio=dormant_output_ratio,
    )
    check(
        "parked induction heads write a less context-dependent output (spread < 0.7x)",
        induction_spread_plain < 0.7 * induction_spread_repeated,
        plain=induction_spread_plain,
        repeated=induction_spread_repeated,
    )
    check(
        "the residual norm peaks at the first position at every layer",
        resid_first_ratio.min() > 1,
        ratios=resid_first_ratio,
    )
    check("no massive activations: the largest is under 100x the median", massive_ratio.max() < 100)

# %% [markdown]
# ## Intervening on the first token: the token and the position
#
# Does the sink belong to the first *position* or to the BOS *token*? Two interventions on the
# plain inputs: drop the BOS so an ordinary token comes first, and replace the BOS by an
# ordinary token (the most frequent token of the plain inputs) at the same position. For each we
# measure the induction heads' attention to whatever now sits first, its chance level (uniform
# attention over the same queries), and `Sink_1`.

# %%
filler = int(plain[:, 1:].flatten().mode().values)
replaced_name = f"BOS replaced by {model.to_single_str_token(filler)!r}"
interventions = {
    "BOS first (unchanged)": plain,
    "BOS dropped": plain[:, 1:],
    replaced_name: sinks.replace_first(plain, filler),
}
first_after = {
    name: mean_over(sinks.first_token_mass(model, toks, later_queries(toks)), induction_heads)
    for name, toks in interventions.items()
}
uniform_after = {name: sinks.uniform_first_mass(later_queries(toks)) for name, toks in interventions.items()}
sink_after = {
    name: sinks.sink_rate(sinks.token_importance(model, toks)) for name, toks in interventions.items()
}
intervention_table = pd.DataFrame(
    {
        "induction heads' attention to the first token": [env.sig(m) for m in first_after.values()],
        "uniform attention (chance)": [env.sig(u) for u in uniform_after.values()],
        "times chance": [env.sig(first_after[n] / uniform_after[n]) for n in interventions],
        "Sink_1 (%)": [env.sig(v) for v in sink_after.values()],
    },
    index=list(interventions),
)
first_no_bos = {name: first_after[name] for name in ("BOS dropped", replaced_name)}
no_bos_over_uniform = min(first_after[n] / uniform_after[n] for n in first_no_bos)
# the token's part: of the attention the position alone leaves elsewhere, the share the BOS takes
token_share = (induction_first_attn_plain - max(first_no_bos.values())) / (1 - max(first_no_bos.values()))
for name, value in (
    ("first_attn_bos_dropped", first_after["BOS dropped"]),
    ("first_attn_bos_replaced", first_after[replaced_name]),
    ("uniform_first_dropped", uniform_after["BOS dropped"]),
    ("no_bos_over_uniform", no_bos_over_uniform),
    ("token_share", token_share),
):
    glue(name, env.sig(value), display=False)
intervention_table

# %% [markdown]
# The sink has two parts. The *position* carries one: without its BOS the first position still
# draws {glue:text}`first_attn_bos_dropped` of the induction heads' attention (BOS dropped; chance
# {glue:text}`uniform_first_dropped`), and {glue:text}`first_attn_bos_replaced` when an ordinary
# token replaces the BOS at the same position (chance {glue:text}`uniform_first_plain`): at least
# {glue:text}`no_bos_over_uniform` times what uniform attention would give, with no special
# token there. The *token* carries the rest: with the BOS the same position draws
# {glue:text}`induction_first_attn_plain`. Of the attention that the position alone leaves
# elsewhere (one minus the larger of the two numbers above), the BOS takes
# {glue:text}`token_share`. The induction organism always saw a BOS first and learned both the position
# and the token. Real LLMs lean further to the position: Xiao et al. found that the first tokens
# act as sinks whatever they are (four newline tokens in their place serve about as well).

# %% tags=["remove-cell"]
check(
    "first-token masses after the interventions are fractions",
    all(0 <= m <= 1 + env.tolerance(DTYPE) for m in first_after.values()),
    **first_after,
)
check(
    "Sink_1 after the interventions is a percentage",
    all(0 <= v <= 100 for v in sink_after.values()),
    **sink_after,
)
if CHECK_BANDS:
    check(
        "the position: without its BOS the first position still draws over 2x chance",
        no_bos_over_uniform > 2,
        **first_no_bos,
        uniform=uniform_after,
    )
    check(
        "the token: the BOS takes over half the attention the position alone leaves elsewhere",
        token_share > 0.5,
        token_share=token_share,
        bos=induction_first_attn_plain,
        **first_no_bos,
    )

# %% [markdown]
# ## Removing the sink
#
# Is the sink harmless, or does the model need it? Two ways to take it away inside the heads,
# both used in the literature: zero the first position's value vectors, so attention to the sink
# still happens but moves nothing (the query at the first position then writes nothing either);
# or hide the first position from every later query, so the attention it drew is spread over the
# other positions (the softmax renormalises). `lib.sinks.sink_removal_loss` does either for many
# sets of heads in one batched pass (each set on its own copy of the batch): in every head at
# once, in the induction heads only, and in each head alone. We measure the next-token loss on
# the plain inputs (all positions after the first) and on the predictable second half of the
# repeated tokens. For scale: a model that spread its prediction evenly over the ordinary tokens
# would lose `ln(number of ordinary tokens)`.

# %%
L, H = model.cfg.n_layers, model.cfg.n_heads
induction_mask = torch.zeros(L, H, dtype=torch.bool)
for l, h in induction_heads:
    induction_mask[l, h] = True
head_sets = torch.cat(
    [
        torch.zeros(1, L, H, dtype=torch.bool),  # unchanged
        torch.ones(1, L, H, dtype=torch.bool),  # every head
        induction_mask[None],  # the induction heads
        torch.eye(L * H, dtype=torch.bool).view(L * H, L, H),  # each head alone
    ]
)
set_names = ["unchanged", "every head", "the induction heads"]
REMOVALS = {"value": "first value zeroed", "attention": "first position hidden"}
removal_inputs = {
    PLAIN: (plain, slice(1, None)),
    "repeated tokens, second half": (repeated, slice(SEQ_LEN + 1, None)),
}
removal = {
    (kind, mode): sinks.sink_removal_loss(model, toks, head_sets, mode)[:, positions].mean(-1)
    for kind, (toks, positions) in removal_inputs.items()
    for mode in REMOVALS
}
uniform_loss = torch.tensor(float(len(ordinary))).log().item()
removal_table = pd.DataFrame(
    {
        f"{kind}: {REMOVALS[mode]}": [env.sig(v) for v in losses[:3].tolist()]
        for (kind, mode), losses in removal.items()
    },
    index=set_names,
).T
display(removal_table)
per_head = pd.DataFrame(
    [
        {
            "head": f"L{l}H{h}",
            "removal": f"{kind}: {REMOVALS[mode]}",
            "loss increase": (losses[3 + l * H + h] - losses[0]).item(),
        }
        for (kind, mode), losses in removal.items()
        for l in range(L)
        for h in range(H)
    ]
)
removal_rise = {key: (losses[1] - losses[0]).item() for key, losses in removal.items()}
rise_plain = {mode: removal_rise[(PLAIN, mode)] for mode in REMOVALS}
rise_repeated = {mode: removal_rise[("repeated tokens, second half", mode)] for mode in REMOVALS}
loss_plain = removal[(PLAIN, "value")][0].item()
loss_repeated = removal[("repeated tokens, second half", "value")][0].item()
top_head = {}  # per removal on the plain input: the head whose sink costs most alone, and the cost
for mode in REMOVALS:
    single = removal[(PLAIN, mode)][3:] - removal[(PLAIN, mode)][0]
    top_head[mode] = (f"L{int(single.argmax()) // H}H{int(single.argmax()) % H}", single.max().item())
for name, value in (
    ("removal_loss_plain", loss_plain),
    ("removal_loss_repeated", loss_repeated),
    ("removal_value_plain", removal[(PLAIN, "value")][1].item()),
    ("removal_attention_plain", removal[(PLAIN, "attention")][1].item()),
    ("removal_value_repeated", removal[("repeated tokens, second half", "value")][1].item()),
    ("removal_attention_repeated", removal[("repeated tokens, second half", "attention")][1].item()),
    ("rise_plain_value", rise_plain["value"]),
    ("rise_plain_attention", rise_plain["attention"]),
    ("rise_repeated_largest", max(abs(v) for v in rise_repeated.values())),
    ("top_rise_value", top_head["value"][1]),
    ("top_rise_attention", top_head["attention"][1]),
    ("uniform_loss", uniform_loss),
):
    glue(name, env.sig(value), display=False)
glue("top_head_value", top_head["value"][0], display=False)
glue("top_head_attention", top_head["attention"][0], display=False)
px.bar(
    per_head,
    x="head",
    y="loss increase",
    color="removal",
    barmode="group",
    title="loss increase when the sink is removed in one head alone (nats)",
)

# %% [markdown]
# Unchanged, the model's loss is {glue:text}`removal_loss_plain` on the
# {glue:text}`plain_source` and {glue:text}`removal_loss_repeated` on the repeated tokens' second
# half (uniform over the ordinary tokens: {glue:text}`uniform_loss`). Zeroing the sink's value in
# every head moves them to {glue:text}`removal_value_plain` and
# {glue:text}`removal_value_repeated`; hiding the first position from every later query moves
# them to {glue:text}`removal_attention_plain` and {glue:text}`removal_attention_repeated`.
#
# So the sink is not there for copying: where the heads have something to copy they look
# elsewhere, and removing the sink in every head changes the repeated tokens' loss by at most
# {glue:text}`rise_repeated_largest` nats. It is there for when they have nothing to do: on the
# plain input the loss rises by {glue:text}`rise_plain_value` nats with the sink's value zeroed and
# by {glue:text}`rise_plain_attention` with the first position hidden. The two removals break
# parking in different ways: hidden, the sink's share of attention goes to other tokens, whose
# values the parked heads then move; zeroed, the fixed vector the parked heads wrote is gone, and
# later layers had come to count on it. The heads
# differ (the figure): the costliest alone, {glue:text}`top_head_value`, costs
# {glue:text}`top_rise_value` nats with its sink's value zeroed; with the first position hidden
# the costliest, {glue:text}`top_head_attention`, costs {glue:text}`top_rise_attention`.

# %% tags=["remove-cell"]
check(
    "sink-removal losses are finite and non-negative",
    all(torch.isfinite(v).all() and (v >= 0).all() for v in removal.values()),
)
if CHECK_BANDS:
    check(
        "removing the sink in every head raises the loss on the plain input by over 1 nat, both ways",
        min(rise_plain.values()) > 1,
        **rise_plain,
    )
    check(
        "on the repeated tokens it changes the loss by under a tenth of that",
        max(abs(v) for v in rise_repeated.values()) < 0.1 * min(rise_plain.values()),
        repeated=rise_repeated,
        plain=rise_plain,
    )

# %% [markdown]
# ## The language organism: copying, sinks and massive activations in a model with MLPs
#
# The sink is learned, not built in. The book's language organism, `language-4l` (four layers with
# MLPs, trained on the synthetic language, with repeated sentences and rows of repeated random words
# in its data), is the second case: below we find its induction heads on repeated random words and
# measure `Sink_1` on its own text and on random words without repeats, the input Gu et al. measure
# on. Beside the sink we look for what Sun et al. (2024) found next to the sinks of real models:
# *massive activations*, residual-stream entries far larger than the median magnitude (above 100 and
# about a thousand times the median, up to about 100,000 times typical activations), at the first
# token and at delimiters, in a few fixed dimensions. For each point of the residual stream we give
# the largest |activation| over the median |activation|, and the position and dimension where it
# sits; and the residual norm at the first position over the others' (Guo et al.'s peak). And we
# remove its sink in every head at once, as above, on its own text. This section runs when the
# chapter's model is the induction organism.

# %%
if IS_ORGANISM and not SPEAKS_LANGUAGE:
    other = models.load_model("language-4l", DEVICE, DTYPE)
    other_repeated = data.repeated_tokens(language.WORD_IDS, language.BOS_ID, SEQ_LEN, BATCH, SEED)
    other_scores = attention.head_scores(other, other_repeated, ("previous", "induction"))
    other_inputs = {
        "its text": sinks.text_stream(SEED, BATCH, PLAIN_LEN),
        "random words without repeats": data.distinct_tokens(
            language.WORD_IDS, language.BOS_ID, PLAIN_LEN, BATCH, SEED + 1
        ),
    }
    other_importance = {kind: sinks.token_importance(other, t) for kind, t in other_inputs.items()}
    other_sink1 = {kind: sinks.sink_rate(imp) for kind, imp in other_importance.items()}
    other_text = other_inputs["its text"].to(other.cfg.device)
    other_massive = sinks.massive_activations(other, other_text)
    other_massive_ratio = other_massive["value"][:, 0] / other_massive["median"]
    other_resid = residual.residual_norms(other, other_text).mean(1)
    other_resid_ratio = other_resid[:, 0] / other_resid[:, 1:].mean(-1)
    other_sets = torch.stack(
        [
            torch.zeros(other.cfg.n_layers, other.cfg.n_heads),
            torch.ones(other.cfg.n_layers, other.cfg.n_heads),
        ]
    ).bool()
    other_removal = {
        mode: sinks.sink_removal_loss(other, other_text, other_sets, mode)[:, 1:].mean(-1)
        for mode in REMOVALS
    }
    other_facts = {
        "other_top_induction": other_scores["induction"].max().item(),
        "other_top_prev": other_scores["previous"].max().item(),
        "other_sink1_text": other_sink1["its text"],
        "other_sink1_random": other_sink1["random words without repeats"],
        "other_top_first_importance": max(imp[..., 0].max().item() for imp in other_importance.values()),
        "other_massive_ratio": other_massive_ratio.max().item(),
        "other_resid_ratio_max": other_resid_ratio.max().item(),
        "other_loss_text": other_removal["value"][0].item(),
        "other_loss_value": other_removal["value"][1].item(),
        "other_loss_attention": other_removal["attention"][1].item(),
    }
    for name, value in other_facts.items():
        glue(name, env.sig(value), display=False)
    other_n_heads = other.cfg.n_layers * other.cfg.n_heads
    glue("other_massive_at_first", int((other_massive["position"][:, 0] == 0).sum()), display=False)
    glue("other_n_points", len(other_massive_ratio), display=False)
    glue("other_n_heads", other_n_heads, display=False)
    glue("other_sink1_step", env.sig(100 / other_n_heads), display=False)
    print({name: env.sig(value) for name, value in other_facts.items()})
    other_points = [f"before layer {l}" for l in range(other.cfg.n_layers)] + ["after the last layer"]
    display(
        pd.DataFrame(
            {
                "largest |activation|": [env.sig(v) for v in other_massive["value"][:, 0].tolist()],
                "position": other_massive["position"][:, 0].tolist(),
                "dimension": other_massive["dim"][:, 0].tolist(),
                "median |activation|": [env.sig(v) for v in other_massive["median"].tolist()],
                "ratio": [env.sig(v) for v in other_massive_ratio.tolist()],
                "residual norm, first position / others": [env.sig(v) for v in other_resid_ratio.tolist()],
            },
            index=other_points,
        ).rename_axis("language-4l, its text")
    )
    for kind, imp in other_importance.items():
        display(
            plots.head_heatmap(
                imp[..., 0], f"language-4l: first-token importance per head ({kind})", zmax=1.0
            )
        )
else:
    print(
        "this section compares the induction organism with language-4l; it runs when MODEL_NAME is induction-2l"
    )

# %% [markdown]
# `language-4l`'s best induction score on repeated random words is
# {glue:text}`other_top_induction` and its best previous-token score
# {glue:text}`other_top_prev`. Of its {glue:text}`other_n_heads` heads (so `Sink_1` moves in steps
# of {glue:text}`other_sink1_step`%), `Sink_1` finds {glue:text}`other_sink1_text`% with a
# first-token importance above 0.3 on its own text and {glue:text}`other_sink1_random`% on random
# words without repeats; the largest first-token importance is
# {glue:text}`other_top_first_importance`. Gu et al. report 70.29% (GPT2-XL, 1,200 heads) to
# 91.23% (LLaMA3-8B, 1,024 heads) on random tokens, and 18.18% for a 60M-parameter model trained
# in their controlled setting; the sink, they find, emerges only after effective optimisation on
# enough data. Its largest residual activation is at most {glue:text}`other_massive_ratio` times
# the median, and sits at the first position at {glue:text}`other_massive_at_first` of its
# {glue:text}`other_n_points` residual points (the table): under Sun et al.'s thousand, so the
# organism has no massive activations in their sense. Its residual norm at the first position is
# up to {glue:text}`other_resid_ratio_max` times the others'. Removing its sink in every head moves the
# loss on its text from {glue:text}`other_loss_text` to {glue:text}`other_loss_value` (value
# zeroed) and {glue:text}`other_loss_attention` (first position hidden).

# %% tags=["remove-cell"]
if IS_ORGANISM and not SPEAKS_LANGUAGE:
    check(
        "the other organism's scores are in range",
        all(
            0 <= other_scores[k].min() and other_scores[k].max() <= 1 + env.tolerance(DTYPE)
            for k in other_scores
        )
        and all(0 <= v <= 100 for v in other_sink1.values()),
        **other_facts,
    )
    check(
        "its massive-activation ratios and losses are finite",
        torch.isfinite(other_massive_ratio).all()
        and (other_massive_ratio >= 1).all()
        and all(torch.isfinite(v).all() for v in other_removal.values()),
    )
    check(
        "language-4l has no massive activations in Sun et al.'s sense (under 1000x the median)",
        other_massive_ratio.max() < 1000,
        ratios=other_massive_ratio,
    )

# %% [markdown]
# ## Window attention, with and without sinks
#
# StreamingLLM (Xiao et al. 2023) serves long streams with a sliding window: each query sees only
# the last `WINDOW` tokens. Once the first tokens leave the window, heads that parked on them
# must put their attention somewhere else, and the model breaks; keeping the first few tokens
# visible (`N_SINK`, 4 in the paper) repairs it. We run the model on inputs of the longest length
# it takes (`WINDOW_LEN`, default `n_ctx`) with a hook on every layer's attention scores that hides
# the keys outside the window, and measure the next-token loss on the positions where the window
# cuts something off: full attention, window without sinks, window with sinks. The inputs are
# the kind of text the model models: its own language for the language organism, the language's
# text re-tokenized for a real model, and for the induction organism its training data (random
# tokens with copied spans at random distances). A second set, random tokens without repeats,
# has nothing beyond the window worth seeing, so there any loss the window causes comes from
# the attention it displaces, not from information it hides. The share of the window's cost
# that the sinks give back is `(window - window with sinks) / (window - full)`.

# %%
if SPEAKS_LANGUAGE:
    own_inputs = sinks.text_stream(SEED + 2, BATCH, window_len)
elif IS_ORGANISM:
    own_inputs = data.induction_batch(
        len(ordinary), bos, BATCH, window_len, torch.Generator().manual_seed(SEED + 2)
    )
else:
    own_inputs = sinks.retokenize(model, sinks.text_stream(SEED + 2, BATCH, window_len + 1), window_len)
long_inputs = {
    "the model's own kind of input": own_inputs,
    "random tokens without repeats": data.distinct_tokens(ordinary, bos, window_len, BATCH, SEED + 3),
}
conditions = {
    "full attention": (None, 0),
    "window, no sink": (WINDOW, 0),
    f"window + first {N_SINK} tokens": (WINDOW, N_SINK),
}
window_curves = {
    source: {
        cond: sinks.next_token_loss(model, toks.to(model.cfg.device), *args)
        for cond, args in conditions.items()
    }
    for source, toks in long_inputs.items()
}
window_means = {
    source: [c[WINDOW:].mean().item() for c in curves.values()] for source, curves in window_curves.items()
}
given_back = {
    source: (no_sink - with_sink) / max(no_sink - full, 1e-6)
    for source, (full, no_sink, with_sink) in window_means.items()
}
window_losses = pd.DataFrame(
    {
        source: [env.sig(v) for v in means] + [env.sig(given_back[source])]
        for source, means in window_means.items()
    },
    index=[*conditions, "share of the window's cost the sinks give back"],
).T
loss_full, loss_window_no_sink, loss_window_with_sink = window_means["the model's own kind of input"]
for name, value in (
    ("loss_full", loss_full),
    ("loss_window_no_sink", loss_window_no_sink),
    ("loss_window_with_sink", loss_window_with_sink),
    ("given_back_own", given_back["the model's own kind of input"]),
    ("given_back_random", given_back["random tokens without repeats"]),
    ("gap_with_sink", loss_window_with_sink - loss_full),
):
    glue(name, env.sig(value), display=False)
for name, value in zip(
    ("loss_random_full", "loss_random_no_sink", "loss_random_with_sink"),
    window_means["random tokens without repeats"],
):
    glue(name, env.sig(value), display=False)
print(
    f"mean next-token loss on positions {WINDOW} to {window_len - 2} of {BATCH} inputs of {window_len} tokens:"
)
display(window_losses)
fig = plots.curves(
    list(range(window_len - 1)),
    {c: v.tolist() for c, v in window_curves["the model's own kind of input"].items()},
    f"next-token loss by position, the model's own kind of input (window {WINDOW})",
    "predicting position",
    "loss (nats)",
)
fig.add_vline(x=WINDOW - 0.5, line_dash="dot")

# %% [markdown]
# On the model's own kind of input, full attention has loss {glue:text}`loss_full`, window
# attention without sinks {glue:text}`loss_window_no_sink`, and the same window with the first
# tokens kept visible {glue:text}`loss_window_with_sink`: the sinks give back only
# {glue:text}`given_back_own` of what the window costs, and the window with sinks stays
# {glue:text}`gap_with_sink` nats above full attention. Before the window starts cutting (left of
# the dotted line) the three coincide. After it, part of what the window loses on this input is
# information that lies beyond it (for the induction organism, copies of spans that began more
# than `WINDOW` tokens back), which no sink can restore. On random tokens without repeats there is
# nothing beyond the window to lose: full attention {glue:text}`loss_random_full`, window without
# sinks {glue:text}`loss_random_no_sink`, window with sinks {glue:text}`loss_random_with_sink`;
# there the sinks give back {glue:text}`given_back_random` of the cost. Evicting the first tokens
# costs loss by itself, and keeping them visible repairs that part; what lies beyond the window
# stays lost. (StreamingLLM's sinks keep perplexity flat with windows of about a thousand tokens
# of natural text; here the window is `WINDOW` tokens of an input built around long-range copies.)

# %% tags=["remove-cell"]
check(
    "window-attention losses are finite and non-negative",
    all(
        torch.isfinite(c).all() and (c >= 0).all()
        for curves in window_curves.values()
        for c in curves.values()
    ),
)
if CHECK_BANDS:
    check(
        "keeping the sink tokens visible lowers the window-attention loss on both inputs",
        all(no_sink > with_sink for _, no_sink, with_sink in window_means.values()),
        **window_means,
    )
    check(
        "on random tokens without repeats the sinks give back over 3/4 of the window's cost",
        given_back["random tokens without repeats"] > 0.75,
        **given_back,
    )
    check(
        "on the model's own input they give back less, by over 0.1 (information beyond the window)",
        given_back["the model's own kind of input"] < given_back["random tokens without repeats"] - 0.1,
        **given_back,
    )

# %% [markdown]
# ## An attention that needs no sink
#
# Gu et al. (2024) trace the sink to the softmax: a head's weights must sum to one, so a head with
# nothing to do has to put them on some position. Their controlled 60M-parameter model has
# `Sink_1` 18.18% with softmax attention and 0.44% with sigmoid attention without normalisation,
# whose weights need not sum to anything. The book's variant keeps the softmax and gives it a way
# out: an extra logit fixed at zero beside the keys' ("softmax1", Miller 2023; GPT-OSS learns one
# such logit per head). A head's weights are then `softmax([scores, 0])` without the last entry,
# that is `softmax(scores) * sigmoid(logsumexp(scores))` per query, and they sum to less than one.
# `induction-2l-softmax1` is `induction-2l` retrained with that one change: the same data, seed,
# initial weights, optimiser and steps (`lib/zoo/recipes/induction_softmax1.py`; TransformerLens
# computes it with `use_attention_sinks`, the logit frozen at zero). For this model "attention
# mass" on a position is that position's weight in the head's output, as for the softmax model;
# what a query's weights leave unspent, one minus their sum, goes to the extra logit, which moves
# nothing (`lib.sinks.null_mass`; it is 0 under softmax). `Sink_1` and the first-token mass count
# only what goes to positions, so a head that gives its attention to nothing scores 0 on both.
#
# Both organisms on the same inputs: `Sink_1`, the first-token mass and the null mass on the random
# tokens without repeats, the induction score and the loss on the predictable second half of the
# repeated tokens. Then the formation: both training logs record `Sink_1`, the first-token mass and
# the null mass on 64 random tokens without repeats every 25 steps. When the chapter's model is not one of the two induction organisms, only its
# own numbers are shown.

# %%
VARIANT = "induction-2l-softmax1"
COMPARE = IS_ORGANISM and not SPEAKS_LANGUAGE  # the two induction organisms, side by side
nosink_models = (
    {
        name: model if name == MODEL_NAME else models.load_model(name, DEVICE, DTYPE)
        for name in ("induction-2l", VARIANT)
    }
    if COMPARE
    else {MODEL_NAME: model}
)
random_plain = plain_inputs["random tokens without repeats"].to(model.cfg.device)
random_later = later_queries(random_plain)
# all scores equal (as at initialisation): query i (from 0) shares its attention among its i + 1
# keys and, under softmax1, the zero logit, which gets 1 / (i + 2)
uniform_null = (1 / torch.arange(3, PLAIN_LEN + 2, dtype=torch.float64)).mean().item()
uniform_first_random = sinks.uniform_first_mass(random_later)


def sink_facts(m) -> dict[str, float]:
    """The sink, the null mass and copying of one model on this chapter's inputs."""
    first = sinks.first_token_mass(m, random_plain, random_later)
    null = sinks.null_mass(m, random_plain, random_later)
    return {
        "Sink_1 (%)": sinks.sink_rate(sinks.token_importance(m, random_plain)),
        "first-token mass, mean over heads": first.mean().item(),
        "first-token mass, largest head": first.max().item(),
        "null mass, mean over heads": null.mean().item(),
        "null mass, largest head": null.max().item(),
        "best induction score": attention.head_scores(m, repeated, ("induction",))["induction"].max().item(),
        "loss, predictable second half of the repeated tokens": sinks.next_token_loss(m, repeated)[
            SEQ_LEN + 1 :
        ]
        .mean()
        .item(),
    }


def shown(key: str, value: float) -> float:
    """A fact as printed: null masses to 4 decimals, since softmax rows sum to 1 only to rounding
    (about 1e-7; ``+ 0.0`` turns -0.0 into 0.0), the others to 3 significant digits."""
    return round(value, 4) + 0.0 if key.startswith("null") else env.sig(value)


nosink = {name: sink_facts(m) for name, m in nosink_models.items()}
nosink_table = pd.DataFrame(
    {name: {k: shown(k, v) for k, v in facts.items()} for name, facts in nosink.items()}
)
glue("nosink_null_this", shown("null", nosink[MODEL_NAME]["null mass, mean over heads"]), display=False)
glue("uniform_null", env.sig(uniform_null), display=False)
if COMPARE:
    logs = {name: zoo.manifest(name)["training_log"] for name in nosink_models}
    for name, log in logs.items():
        nosink_table.loc["held-out loss on the training data, end of training (log)", name] = env.sig(
            log[-1]["heldout_loss"]
        )
nosink_table.rename_axis(f"{PLAIN_LEN} random tokens without repeats; repeated tokens")

# %%
if COMPARE:
    sink_step = {name: next(e["step"] for e in log if e["sink1_random"] > 0) for name, log in logs.items()}
    induction_step = {
        name: next((e["step"] for e in log if e["top_induction_score"] >= 0.7), None)
        for name, log in logs.items()
    }
    std, var = nosink["induction-2l"], nosink[VARIANT]
    for key, value in {
        "nosink_sink1_softmax": std["Sink_1 (%)"],
        "nosink_sink1_softmax1": var["Sink_1 (%)"],
        "nosink_first_softmax": std["first-token mass, mean over heads"],
        "nosink_first_softmax1": var["first-token mass, mean over heads"],
        "nosink_first_max_softmax1": var["first-token mass, largest head"],
        "nosink_null_softmax1": var["null mass, mean over heads"],
        "nosink_null_max_softmax1": var["null mass, largest head"],
        "nosink_induction_softmax": std["best induction score"],
        "nosink_induction_softmax1": var["best induction score"],
        "nosink_loss_softmax": std["loss, predictable second half of the repeated tokens"],
        "nosink_loss_softmax1": var["loss, predictable second half of the repeated tokens"],
        "nosink_heldout_softmax": logs["induction-2l"][-1]["heldout_loss"],
        "nosink_heldout_softmax1": logs[VARIANT][-1]["heldout_loss"],
        "nosink_null_start": logs[VARIANT][0]["null_mass"],
        "nosink_null_end": logs[VARIANT][-1]["null_mass"],
        "nosink_first_start": logs["induction-2l"][0]["first_token_mass"],
        "nosink_first_end": logs["induction-2l"][-1]["first_token_mass"],
        "uniform_first_random": uniform_first_random,
    }.items():
        glue(key, env.sig(value), display=False)
    glue("nosink_sink_step_softmax", sink_step["induction-2l"], display=False)
    glue("nosink_sink_step_softmax1", sink_step[VARIANT], display=False)
    glue("nosink_induction_step", induction_step["induction-2l"], display=False)
    glue("nosink_steps", logs["induction-2l"][-1]["step"], display=False)
    panels = {
        "Sink_1 (%)": "sink1_random",
        "first-token mass": "first_token_mass",
        "null mass": "null_mass",
        "best induction score": "top_induction_score",
    }
    display(
        plots.stacked_curves(
            [e["step"] for e in logs["induction-2l"]],
            {
                label: {name: [e[key] for e in log] for name, log in logs.items()}
                for label, key in panels.items()
            },
            "the sink's formation: 64 random tokens without repeats, mean over heads (training logs)",
            "training step",
        )
    )
else:
    print(
        "the comparison and the formation are of the two induction organisms; they run when MODEL_NAME is one"
    )

# %% [markdown]
# This run's model gives {glue:text}`nosink_null_this` of its attention, averaged over heads, to
# no position (0 under softmax). On the same
# `PLAIN_LEN` random tokens without repeats, `Sink_1` is {glue:text}`nosink_sink1_softmax`% for
# `induction-2l` and {glue:text}`nosink_sink1_softmax1`% for `induction-2l-softmax1` (in steps of
# {glue:text}`sink1_step`%; a head without a sink counts 0, uniform importance being
# {glue:text}`uniform_importance`), and the first-token mass, averaged over heads, is
# {glue:text}`nosink_first_softmax` against {glue:text}`nosink_first_softmax1` (up to
# {glue:text}`nosink_first_max_softmax1` in one head; uniform attention gives
# {glue:text}`uniform_first_random`). The sink did not vanish. The way out went unused: the extra
# logit takes {glue:text}`nosink_null_softmax1` of the attention on average and at most
# {glue:text}`nosink_null_max_softmax1` in any head, less than the {glue:text}`uniform_null` it
# gets when all scores are equal, as at initialisation (a query gives it `1 / (1 + sum exp(scores))`).
# The heads learned scores well above the zero logit, which makes softmax1 all but softmax, and
# park on the first token as softmax heads do.
# Gu et al.'s 0.44% is for sigmoid attention without normalisation, which has no softmax left to
# sum to anything; one extra logit at zero is a way out that this model, at least, did not take.
#
# Nor did the variant learn induction. Its best induction score is
# {glue:text}`nosink_induction_softmax1` (`induction-2l`: {glue:text}`nosink_induction_softmax`),
# its loss on the predictable second half of the repeated tokens
# {glue:text}`nosink_loss_softmax1` nats against {glue:text}`nosink_loss_softmax`, and its held-out
# loss on its training data at the end of training {glue:text}`nosink_heldout_softmax1` against
# {glue:text}`nosink_heldout_softmax`: in this run (one seed, the recipe's
# {glue:text}`nosink_steps` steps) the induction phase change never came. So the comparison does
# not show dormant induction heads without a sink: the variant's layer-1 heads park on the first
# token without ever having had a pattern to look for.
#
# The logs show when the sink forms. `induction-2l` starts with none (`Sink_1` 0%, first-token mass
# {glue:text}`nosink_first_start` over heads); its induction head forms at step
# {glue:text}`nosink_induction_step` (score 0.7, the zoo appendix's mark) and its first sink head
# (first-token importance above 0.3) at step {glue:text}`nosink_sink_step_softmax`, right after.
# The first-token mass then keeps rising, to {glue:text}`nosink_first_end` at the end, as the
# heads become dormant: copying when there is something to copy, parked otherwise (Guo et al.). In
# this organism the sink comes with the induction head. `induction-2l-softmax1` forms its first sink
# head at step {glue:text}`nosink_sink_step_softmax1` with no induction head at all, while its null
# mass falls from {glue:text}`nosink_null_start` at initialisation to {glue:text}`nosink_null_end`.

# %% tags=["remove-cell"]
check(
    "null masses are fractions",
    all(
        -env.tolerance(DTYPE) <= facts["null mass, mean over heads"] <= facts["null mass, largest head"] <= 1
        for facts in nosink.values()
    ),
    **{name: facts["null mass, largest head"] for name, facts in nosink.items()},
)
if COMPARE:
    check(
        "the sink does not vanish under softmax1: its Sink_1 is above 0 and below induction-2l's",
        0 < var["Sink_1 (%)"] < std["Sink_1 (%)"],
        softmax=std["Sink_1 (%)"],
        softmax1=var["Sink_1 (%)"],
    )
    check(
        "softmax1 parks on the first token: its largest head's first-token mass is over 3x uniform",
        var["first-token mass, largest head"] > 3 * uniform_first_random,
        first=var["first-token mass, largest head"],
        uniform=uniform_first_random,
    )
    check(
        "softmax1's heads leave the zero logit less than equal scores would give it, in every head",
        var["null mass, largest head"] < uniform_null,
        null=var["null mass, largest head"],
        uniform=uniform_null,
    )
    check(
        "induction-2l-softmax1 has no induction head (best score < 0.1) and loses over 3 nats on the "
        "repeated half, where induction-2l loses under 0.5",
        var["best induction score"] < 0.1
        and var["loss, predictable second half of the repeated tokens"] > 3
        and std["loss, predictable second half of the repeated tokens"] < 0.5,
        softmax=std,
        softmax1=var,
    )
    check(
        "in both logs Sink_1 is 0 at initialisation and at least 25% at the end",
        all(log[0]["sink1_random"] == 0 and log[-1]["sink1_random"] >= 25 for log in logs.values()),
        **{name: (log[0]["sink1_random"], log[-1]["sink1_random"]) for name, log in logs.items()},
    )
    check(
        "induction-2l's first sink head forms within 200 steps after its induction head",
        0 <= sink_step["induction-2l"] - induction_step["induction-2l"] <= 200,
        sink=sink_step,
        induction=induction_step,
    )
    check(
        "induction-2l's first-token mass grows over training; softmax1's null mass shrinks",
        logs["induction-2l"][-1]["first_token_mass"] > 3 * logs["induction-2l"][0]["first_token_mass"]
        and logs[VARIANT][-1]["null_mass"] < logs[VARIANT][0]["null_mass"],
    )

# %% [markdown]
# ## What it means
#
# A head is a fixed circuit: it attends with the same weights to whatever the context holds. When
# its pattern is absent, softmax still has to put its mass somewhere, and a head that must not
# disturb the residual stream needs a place where attention does no harm. The first token is the one
# place every query can see, and a model learns to make it a no-op: Guo et al. (2024) call such
# heads *dormant* (active when their trigger is present, parked on the sink otherwise) and show what
# comes with it, a residual-state peak (a large residual norm) at the sink together with a
# value-state drain (small value vectors there); Sun et al. (2024) trace the sink to massive
# activations acting as fixed biases; Gu et al. (2024) show the sink comes from the softmax's need
# to sum to one (it nearly vanishes with unnormalised sigmoid attention; in the organism, one extra
# logit at zero beside the keys' was not enough to make it go); Barbero et al. (2025)
# argue it also keeps deep models from *over-mixing*, letting heads decline to average their inputs
# together. StreamingLLM turns the finding into an engineering rule: never evict the first tokens.
#
# ## Results
#
# This run beside the published numbers for real models. Each row gives the chance level (what
# a head without the phenomenon would give, computed in this run) and the size of both models:
# this run's model has {glue:text}`n_heads_total` heads, so its `Sink_1` moves in steps of
# {glue:text}`sink1_step`%, where the published models have about a thousand heads.

# %%
size = f"{MODEL_NAME}: {n_heads_total} heads"
results = pd.DataFrame(
    [
        (
            "induction heads' attention to the first token, repeated tokens",
            env.sig(induction_first_attn_repeated),
            env.sig(sinks.uniform_first_mass(second_half)),
            "-",
            size,
        ),
        (
            f"induction heads' attention to the first token, {PLAIN}",
            env.sig(induction_first_attn_plain),
            env.sig(uniform_first_plain),
            "most of it (GPT-2 small, 144 heads, Pile text)",
            size,
        ),
        (
            "the same, BOS replaced by an ordinary token",
            env.sig(first_after[replaced_name]),
            env.sig(uniform_after[replaced_name]),
            "first tokens sink whatever they are (Xiao et al.)",
            size,
        ),
        *(
            [
                (
                    f"Sink_1 (%), {PLAIN_LEN} tokens of text",
                    env.sig(sink1_pct),
                    f"0 (uniform importance {env.sig(uniform_importance)} < 0.3)",
                    "-",
                    f"{size}, steps of {env.sig(sink1_step)}%",
                )
            ]
            if PLAIN == "text"
            else []
        ),
        (
            f"Sink_1 (%), {PLAIN_LEN} random tokens",
            env.sig(sink1["random tokens without repeats"]),
            f"0 (uniform importance {env.sig(uniform_importance)} < 0.3)",
            "70.29 (GPT2-XL, 1,200 heads) to 91.23 (LLaMA3-8B, 1,024 heads); 18.18 (60M model)",
            f"{size}, steps of {env.sig(sink1_step)}%",
        ),
        *(
            [
                (
                    f"Sink_1 (%), {PLAIN_LEN} random tokens: softmax / softmax1 (one extra zero logit)",
                    f"{env.sig(std['Sink_1 (%)'])} / {env.sig(var['Sink_1 (%)'])}",
                    f"0 (uniform importance {env.sig(uniform_importance)} < 0.3)",
                    "18.18 (softmax) / 0.44 (sigmoid attention without normalisation): "
                    "a 60M-parameter model (Gu et al.)",
                    f"{', '.join(nosink_models)}: {n_heads_total} heads each, steps of {env.sig(sink1_step)}%",
                )
            ]
            if COMPARE
            else []
        ),
        (
            "value norm, first position / others (induction heads)",
            env.sig(first_value_norm_ratio),
            "1 (no position special)",
            "much < 1 (value-state drains; Guo et al., Llama and OLMo)",
            size,
        ),
        (
            "residual norm, first position / others (largest over layers)",
            env.sig(resid_first_ratio.max().item()),
            "1 (no position special)",
            "much > 1 (residual-state peaks; Guo et al., Llama and OLMo)",
            f"{size}, d_model {model.cfg.d_model}",
        ),
        (
            "largest residual |activation| / median",
            env.sig(massive_ratio.max().item()),
            f"about {env.sig(gaussian_ratio)} (Gaussian activations, as many)",
            "massive: > 100 and about 1,000x the median, up to about 100,000x (Sun et al.)",
            f"{size}, d_model {model.cfg.d_model}",
        ),
        *(
            (
                f"loss on the {kind}, sink's value zeroed / hidden in every head (unchanged)",
                f"{env.sig(removal[(kind, 'value')][1].item())} / "
                f"{env.sig(removal[(kind, 'attention')][1].item())} ({env.sig(removal[(kind, 'value')][0].item())})",
                f"{env.sig(uniform_loss)} (uniform over {len(ordinary)} tokens)",
                "-",
                size,
            )
            for kind in removal_inputs
        ),
        ("loss, full attention", env.sig(loss_full), f"{env.sig(uniform_loss)} (uniform)", "-", size),
        (
            "loss, window without sinks",
            env.sig(loss_window_no_sink),
            f"{env.sig(uniform_loss)} (uniform)",
            "perplexity explodes once the first tokens leave (Llama-2, Falcon, Pythia, MPT)",
            f"{size}, {window_len} tokens, window {WINDOW}",
        ),
        (
            f"loss, window + {N_SINK} sink tokens",
            env.sig(loss_window_with_sink),
            f"{env.sig(uniform_loss)} (uniform)",
            "perplexity stays flat over long streams (4 sinks + 1,020 recent tokens; Xiao et al.)",
            f"{size}, {window_len} tokens, window {WINDOW}",
        ),
    ],
    columns=["metric", "this run", "chance level (this run)", "published (real models)", "size (this run)"],
)
results

# %% [markdown]
# Published values: the source post (Adewuyi 2025, GPT-2 small induction heads on Pile text);
# Gu et al. (2024), "When attention sink emerges in language models" (`Sink_1` on 64 random
# tokens over about a thousand heads; a controlled 60M model gives 18.18%, and 0.44% with sigmoid
# attention without normalisation); Miller (2023), "Attention is off by one" (softmax with an
# extra zero logit); Xiao et al. (2023), StreamingLLM (4 sink tokens plus a window keep perplexity
# flat, the window alone collapses); Guo et al. (2024), active-dormant attention heads (residual-state
# peaks and value-state drains at the sink); Sun et al. (2024), massive activations.
#
# ## On a real model
#
# On a GPU (e.g. Colab), re-run this chapter on GPT-2 small:
#
# ```
# make run CHAPTER=attention_sinks PARAMS="-p MODEL_NAME gpt2-small -p DEVICE cuda"
# ```
#
# The plain inputs are then the book's synthetic text re-tokenized by GPT-2's tokenizer, and the
# window experiment runs on 1024-token inputs (cap it with `-p WINDOW_LEN 256` on a big model).
# Expect the induction heads (e.g. L5H5) to put most of their attention on the first token when
# nothing repeats, and window attention without sinks to lose far more than window attention that
# keeps 4 sink tokens. Gu et al. do not report `Sink_1` for GPT-2 small (144 heads, in steps of
# 0.69%); the nearest published number is GPT2-XL's 70.29% (1,200 heads).
