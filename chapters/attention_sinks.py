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
# token, replace it, or hide it from a sliding attention window as StreamingLLM does.
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
MODEL_NAME: str = (
    "induction-2l"  # a zoo organism (induction-2l, language-4l) or a TransformerLens name (gpt2-small, ...)
)
DEVICE: str = "auto"  # auto, cpu or cuda
DTYPE: str = "float32"  # float32, float16 or bfloat16
SEED: int = 0  # seed of every random token sequence and text sample in this chapter
SEQ_LEN: int = 50  # length of each half of the repeated random tokens that find the induction heads
BATCH: int = 16  # number of sequences in every input set
PLAIN_LEN: int = 64  # length of the inputs with nothing to induct (Gu et al. measure sinks on 64 tokens)
WINDOW: int = 16  # window attention: each query sees only the last WINDOW tokens
N_SINK: int = (
    4  # window attention with sinks: the first N_SINK tokens stay visible too (StreamingLLM keeps 4)
)
WINDOW_LEN: int = 0  # length of the window-attention inputs; 0 means the model's longest input, n_ctx

# %%
import circuitsvis as cv
import pandas as pd
import plotly.express as px
import torch
from IPython.display import display
from myst_nb import glue

from lib import attention, data, env, language, models, params, plots, residual, sinks, zoo
from lib.claims import check

config = models.model_config(MODEL_NAME)
params.check_int("SEQ_LEN", SEQ_LEN, 2, (config.n_ctx - 1) // 2)
params.check_int("BATCH", BATCH, 1)
params.check_int("PLAIN_LEN", PLAIN_LEN, 8, config.n_ctx)
params.check_int("WINDOW_LEN", WINDOW_LEN, 0, config.n_ctx)
window_len = WINDOW_LEN or config.n_ctx
params.check_int("WINDOW", WINDOW, 1, window_len - 2)
params.check_int("N_SINK", N_SINK, 1, WINDOW)
env.setup(SEED)
model = models.load_model(MODEL_NAME, DEVICE, DTYPE)
IS_ORGANISM = MODEL_NAME in zoo.ORGANISMS
CHECK_BANDS = MODEL_NAME == "induction-2l"  # the default organism: the check cells' tolerance bands apply
SPEAKS_LANGUAGE = language.speaks_language(model)  # the language organism
bos = model.tokenizer.bos_token_id
ordinary = data.ordinary_tokens(model)
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
check("induction scores are attention masses", 0 <= scores.min() and scores.max() <= 1 + 1e-4)
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
# mean attention that every query after the first pays to the first token. The default model,
# the induction organism, reads no text (its vocabulary is 512 arbitrary ids), so its plain input
# is the random tokens; the language organism gets its own section below.

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
glue("plain_source", PLAIN, display=False)
glue("induction_first_attn_plain", env.sig(induction_first_attn_plain), display=False)
glue(
    "plain_over_repeated",
    env.sig(induction_first_attn_plain / max(induction_first_attn_repeated, 1e-6)),
    display=False,
)
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
# there was something to copy. Their patterns on the first sequence of each kind (hover over a
# token to see where it looks):

# %%
view = {"repeated": repeated[:1], "plain": plain[:1]}
patterns = {
    kind: attention.attention_patterns(model, toks, [tuple(h) for h in induction_heads])[:, 0]
    for kind, toks in view.items()
}
display(
    cv.attention.attention_heads(
        tokens=model.to_str_tokens(view["repeated"][0]),
        attention=patterns["repeated"].float().cpu(),
        attention_head_names=[f"{n}, repeated tokens" for n in head_names],
    )
)
cv.attention.attention_heads(
    tokens=model.to_str_tokens(view["plain"][0]),
    attention=patterns["plain"].float().cpu(),
    attention_head_names=[f"{n}, {PLAIN}" for n in head_names],
)

# %% tags=["remove-cell"]
check(
    "first-token masses are fractions",
    all(0 <= m.min() and m.max() <= 1 + 1e-4 for m in first_plain.values()),
)
if CHECK_BANDS:
    check(
        "with nothing to copy, induction heads put at least half their attention on the first token",
        induction_first_attn_plain >= 0.5,
        plain=induction_first_attn_plain,
    )
    check(
        "they look at the first token over 3x more than when they can copy",
        induction_first_attn_plain >= 3 * induction_first_attn_repeated,
        plain=induction_first_attn_plain,
        repeated=induction_first_attn_repeated,
    )

# %% [markdown]
# ## The sink metric
#
# Gu et al. (2024) measure sinks for every head at once. A token's *importance* to a head is the
# mean attention it receives from the queries at or after it; `Sink_1` is the percentage of
# (layer, head) pairs in which the first token's importance exceeds 0.3, on 64-token inputs.
# `lib.sinks.token_importance` reduces each layer's pattern to importances during one forward
# pass.

# %%
importance = {name: sinks.token_importance(model, toks) for name, toks in plain_inputs.items()}
sink1 = {name: sinks.sink_rate(imp) for name, imp in importance.items()}
sink1_pct = sink1[PLAIN]
glue("sink1_pct", env.sig(sink1_pct), display=False)
glue("sink1_pct_random", env.sig(sink1["random tokens without repeats"]), display=False)
print(
    f"Sink_1 over {PLAIN_LEN}-token inputs (% of heads with first-token importance > 0.3):",
    {name: env.sig(value) for name, value in sink1.items()},
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
# ({glue:text}`sink1_pct_random`% on random tokens without repeats). No later position is a sink:
# among the positions that at least half the queries can see (1 to {glue:text}`half_len`), the
# largest importance any head gives is {glue:text}`max_later_importance`. The rise at the right
# end of the plot is the metric's, not the model's: the last position's importance is the
# attention one query pays itself, the one before it averages two queries, and so on.

# %% tags=["remove-cell"]
check("Sink_1 is a percentage", all(0 <= value <= 100 for value in sink1.values()), **sink1)
check(
    "importances are fractions", all(0 <= imp.min() and imp.max() <= 1 + 1e-4 for imp in importance.values())
)
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
# harmless if what it moves from there is small or constant. Guo et al. (2024) found that sink
# tokens in real models have small value vectors and that "dormant" heads then write almost
# nothing; Sun et al. (2024) found huge activations in a few residual dimensions at the first
# token. We measure each in turn: the value norm per head at the first position against the
# others, the output norm of the induction heads with and without something to copy, the
# residual-stream norm at the first position by layer, and the largest residual activations.

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
glue("dormant_output_ratio", env.sig(dormant_output_ratio), display=False)
glue("spread_repeated", env.sig(mean_over(spread_repeated, induction_heads)), display=False)
glue("spread_plain", env.sig(mean_over(spread_plain, induction_heads)), display=False)
dormant_table = pd.DataFrame(
    {
        "output norm, repeated (second half)": [
            env.sig(out_repeated[l, h].item()) for l, h in induction_heads
        ],
        f"output norm, {PLAIN}": [env.sig(out_plain[l, h].item()) for l, h in induction_heads],
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
            "ratio": [env.sig(v) for v in (massive["value"][:, 0] / massive["median"]).tolist()],
        },
        index=points,
    )
)
glue("resid_first_ratio", [env.sig(v) for v in resid_first_ratio.tolist()], display=False)
glue("massive_ratio", env.sig((massive["value"][:, 0] / massive["median"]).max().item()), display=False)
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
# all heads); Guo et al. find it well below 1 for the sink tokens of real models. A small value is one way to make parking
# harmless; there is a second, which holds in any causal model: the first position attends only
# to itself, so everything computed there is the same in every context. A head parked on it
# writes a fixed vector, a bias that later layers can absorb. The *spread* measures this: the mean
# distance of a head's output from its average output, over the mean output norm. On the
# {glue:text}`plain_source` the induction heads' spread is {glue:text}`spread_plain`, against
# {glue:text}`spread_repeated` when they copy; their output norm is {glue:text}`dormant_output_ratio`
# times the copying one. The residual-stream norm at the first position, over the mean of the
# others, is {glue:text}`resid_first_ratio` from the embedding to the output (Guo et al. find it
# small at real models' sinks). The largest residual activation is up to {glue:text}`massive_ratio` times
# the median magnitude; the table says at which position and dimension each sits (Sun et al. find
# the massive activations of real models at the first token and at delimiter tokens, in a few
# fixed dimensions, with magnitudes up to thousands of times the median). The induction organism
# is safe to park in the second way, not the first: its parked heads write more than when they
# copy, but what they write barely varies.

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
    all(0 <= s.min() and s.max() <= 1 + 1e-4 for s in (spread_repeated, spread_plain)),
)
if CHECK_BANDS:
    check(
        "parked induction heads write a less context-dependent output (spread < 0.7x)",
        mean_over(spread_plain, induction_heads) < 0.7 * mean_over(spread_repeated, induction_heads),
        plain=mean_over(spread_plain, induction_heads),
        repeated=mean_over(spread_repeated, induction_heads),
    )
check("the largest activation is at least the median", (massive["value"][:, 0] >= massive["median"]).all())

# %% [markdown]
# ## Intervening on the first token
#
# Does the sink belong to the first *position* or to the BOS *token*? Two interventions on the
# plain inputs: drop the BOS so an ordinary token comes first, and replace the BOS by an
# ordinary token (the most frequent token of the plain inputs) at the same position. For each we
# measure the induction heads' attention to whatever now sits first, and `Sink_1`.

# %%
filler = int(plain[:, 1:].flatten().mode().values)
interventions = {
    "BOS first (unchanged)": plain,
    "BOS dropped": plain[:, 1:],
    f"BOS replaced by {model.to_single_str_token(filler)!r}": sinks.replace_first(plain, filler),
}
first_after = {
    name: sinks.first_token_mass(model, toks, later_queries(toks)) for name, toks in interventions.items()
}
sink_after = {
    name: sinks.sink_rate(sinks.token_importance(model, toks)) for name, toks in interventions.items()
}
intervention_table = pd.DataFrame(
    {
        "induction heads' attention to the first token": [
            env.sig(mean_over(m, induction_heads)) for m in first_after.values()
        ],
        "Sink_1 (%)": [env.sig(v) for v in sink_after.values()],
    },
    index=list(interventions),
)
glue("first_attn_bos_dropped", env.sig(mean_over(first_after["BOS dropped"], induction_heads)), display=False)
glue(
    "first_attn_bos_replaced",
    env.sig(mean_over(list(first_after.values())[2], induction_heads)),
    display=False,
)
intervention_table

# %% [markdown]
# Without its BOS the first position draws {glue:text}`first_attn_bos_dropped` of the induction
# heads' attention, and {glue:text}`first_attn_bos_replaced` when an ordinary token replaces the
# BOS at the same position, against {glue:text}`induction_first_attn_plain` with the BOS. If the
# sink belonged to the position, both would stay near the last number; if it belongs to the
# token, both fall. The induction organism always saw a BOS first and learned the token. Real
# LLMs lean the other way: Xiao et al. found that the first tokens act as sinks whatever they are
# (four newline tokens in their place serve about as well), so it is their position that counts.

# %% tags=["remove-cell"]
check(
    "first-token masses after the interventions are fractions",
    all(0 <= m.min() and m.max() <= 1 + 1e-4 for m in first_after.values()),
)
check(
    "Sink_1 after the interventions is a percentage",
    all(0 <= v <= 100 for v in sink_after.values()),
    **sink_after,
)
if CHECK_BANDS:  # the organism's sink follows the BOS token
    check(
        "without its BOS token the first position draws under half the attention",
        intervention_table.iloc[1:, 0].max() < 0.5 * induction_first_attn_plain,
        after=intervention_table.iloc[1:, 0].tolist(),
        before=induction_first_attn_plain,
    )

# %% [markdown]
# ## The language organism: copying and sinks in a model with MLPs
#
# The sink is learned, not built in. The book's language organism, `language-4l` (four layers
# with MLPs, trained on the synthetic language, with repeated sentences and rows of repeated
# random words in its data), is the second case: below we find its induction heads on repeated
# random words and measure `Sink_1` on its own text and on random words without repeats, the
# input Gu et al. measure on. A head that spread its attention uniformly would give the first of
# 64 tokens an importance of about 0.07, under the 0.3 threshold, so `Sink_1` is 0% for a model
# without a sink. This section runs when the chapter's model is the induction organism.

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
    other_facts = {
        "other_top_induction": other_scores["induction"].max().item(),
        "other_top_prev": other_scores["previous"].max().item(),
        "other_sink1_text": other_sink1["its text"],
        "other_sink1_random": other_sink1["random words without repeats"],
        "other_top_first_importance": max(imp[..., 0].max().item() for imp in other_importance.values()),
    }
    for name, value in other_facts.items():
        glue(name, env.sig(value), display=False)
    glue("other_n_heads", other.cfg.n_layers * other.cfg.n_heads, display=False)
    print({name: env.sig(value) for name, value in other_facts.items()})
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
# {glue:text}`other_top_prev`. Of its {glue:text}`other_n_heads` heads, `Sink_1` finds
# {glue:text}`other_sink1_text`% with a first-token importance above 0.3 on its own text and
# {glue:text}`other_sink1_random`% on random words without repeats; the largest first-token
# importance is {glue:text}`other_top_first_importance`. Gu et al. report 70.29% (GPT2-XL) to
# 91.23% (LLaMA3-8B) on random tokens, and 18.18% for a 60M-parameter model trained in their
# controlled setting; the sink, they find, emerges only after effective optimisation on enough
# data.

# %% tags=["remove-cell"]
if IS_ORGANISM and not SPEAKS_LANGUAGE:
    check(
        "the other organism's scores are in range",
        all(0 <= other_scores[k].min() and other_scores[k].max() <= 1 + 1e-4 for k in other_scores)
        and all(0 <= v <= 100 for v in other_sink1.values()),
        **other_facts,
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
# the attention it displaces, not from information it hides.

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
window_losses = pd.DataFrame(
    {
        source: [env.sig(c[WINDOW:].mean().item()) for c in curves.values()]
        for source, curves in window_curves.items()
    },
    index=list(conditions),
).T
loss_full, loss_window_no_sink, loss_window_with_sink = (float(v) for v in window_losses.iloc[0])
for name, value in (
    ("loss_full", loss_full),
    ("loss_window_no_sink", loss_window_no_sink),
    ("loss_window_with_sink", loss_window_with_sink),
):
    glue(name, value, display=False)
glue("loss_random_full", float(window_losses.iloc[1, 0]), display=False)
glue("loss_random_no_sink", float(window_losses.iloc[1, 1]), display=False)
glue("loss_random_with_sink", float(window_losses.iloc[1, 2]), display=False)
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
# tokens kept visible {glue:text}`loss_window_with_sink`. Before the window starts cutting (left
# of the dotted line) the three coincide. After it, part of what the window loses is information
# that lies beyond it (for the induction organism, copies of spans that began more than `WINDOW`
# tokens back), which no sink can restore; the rest is what the sinks give back. On random tokens
# without repeats there is nothing beyond the window to lose: full attention
# {glue:text}`loss_random_full`, window without sinks {glue:text}`loss_random_no_sink`, window
# with sinks {glue:text}`loss_random_with_sink`. Evicting the first tokens costs loss by itself.

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
        "keeping the sink tokens visible lowers the window-attention loss",
        loss_window_no_sink > loss_window_with_sink,
        without_sink=loss_window_no_sink,
        with_sink=loss_window_with_sink,
    )

# %% [markdown]
# ## What it means
#
# A head is a fixed circuit: it attends with the same weights to whatever the context holds.
# When its pattern is absent, softmax still has to put its mass somewhere, and a head that must
# not disturb the residual stream needs a place where attention does no harm. The first token is
# the one place every query can see, and a model learns to make it a no-op: Guo et al. (2024)
# call such heads *dormant* (active when their trigger is present, parked on the sink otherwise)
# and show the sink's small value vectors and residual norms that make parking cheap; Sun et al.
# (2024) trace the sink to massive activations acting as fixed biases; Gu et al. (2024) show the
# sink comes from the softmax's need to sum to one (it nearly vanishes with unnormalised sigmoid
# attention); Barbero et al. (2025) argue it also keeps deep models from *over-mixing*, letting
# heads decline to average their inputs together. StreamingLLM turns the finding into an
# engineering rule: never evict the first tokens.
#
# ## Results
#
# This run beside the published numbers for real models.

# %%
results = pd.DataFrame(
    [
        (
            "induction heads' attention to the first token, repeated tokens",
            env.sig(induction_first_attn_repeated),
            "-",
        ),
        (
            f"induction heads' attention to the first token, {PLAIN}",
            env.sig(induction_first_attn_plain),
            "most of it (GPT-2 small, Pile text)",
        ),
        *([(f"Sink_1 (%), {PLAIN_LEN} tokens of text", env.sig(sink1_pct), "-")] if PLAIN == "text" else []),
        (
            f"Sink_1 (%), {PLAIN_LEN} random tokens",
            env.sig(sink1["random tokens without repeats"]),
            "70.29 (GPT2-XL) to 91.23 (LLaMA3-8B); 18.18 (60M model)",
        ),
        (
            "value norm, first position / others (induction heads)",
            env.sig(first_value_norm_ratio),
            "< 1 (small values at sinks)",
        ),
        ("loss, full attention", env.sig(loss_full), "-"),
        ("loss, window without sinks", env.sig(loss_window_no_sink), "explodes once the first tokens leave"),
        (f"loss, window + {N_SINK} sink tokens", env.sig(loss_window_with_sink), "close to full attention"),
    ],
    columns=["metric", MODEL_NAME, "published (real models)"],
)
results

# %% [markdown]
# Published values: the source post (Adewuyi 2025, GPT-2 small induction heads on Pile text);
# Gu et al. (2024), "When attention sink emerges in language models" (`Sink_1` on 64 random
# tokens; a controlled 60M model gives 18.18%, and 0.44% with sigmoid attention); Xiao et al.
# (2023), StreamingLLM (4 sink tokens plus a window keep perplexity flat, the window alone
# collapses); Guo et al. (2024), active-dormant attention heads; Sun et al. (2024), massive
# activations.
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
# nothing repeats, `Sink_1` of the order of the 70% Gu et al. report for GPT-2, and window
# attention without sinks to lose far more than window attention that keeps 4 sink tokens.
