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
# # Sparse autoencoders
#
# A sparse autoencoder (SAE) rewrites each activation vector of a model as a sparse sum of
# learned directions, its *features* or latents, in the hope that each one means one thing. On a
# real model nobody knows what the things are, so an SAE is judged by proxies: how well it
# reconstructs (explained variance), what splicing its reconstruction into the model costs (loss
# recovered), how sparse it is (L0), and whether people find its features interpretable. The
# book's language is different: the generator records, at every token, the variables that
# produced it: the word's class, the text's topic, the syntactic role, grammatical number, which
# character a name refers to and whether it is mentioned for the first time. So we can ask
# directly: does some SAE feature detect each of these, better than the directions we had
# without an SAE?
#
# The SAEs are SAELens's (`sae-lens`): its TopK and standard (L1) architectures, its losses and
# its trainer, trained on the residual stream of the language organism `language-4l` and stored
# in the zoo as the organism's artifacts. `TRAIN=True` retrains the chosen one live.

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
SAE_NAME: str = "topk-1024-k20"  # a stored SAE of language-4l: topk-{256,1024}-k{5,...,80}, standard-{256,1024}-l1-{0.5,...,16}
SEED: int = 0  # [0, 2**32 - 1]: seed of the held-out rows the SAE is measured on
N_ROWS: int = 128  # [128, 512]: held-out rows of 128 tokens to measure on (fewer: rare latents look dead)
TRAIN: bool = False  # retrain the SAE live from its recorded spec (minutes) instead of loading it

# %%
import numpy as np
import pandas as pd
import plotly.express as px
from IPython.display import display
from myst_nb import glue

from lib import env, language, models, params, saes
from lib.claims import check
from lib.saes import artifacts

params.validate(globals())
if SAE_NAME not in artifacts.NAMES:
    raise ValueError(f"SAE_NAME={SAE_NAME!r} is not a stored SAE; allowed: {', '.join(artifacts.NAMES)}")
env.setup(SEED)
model = models.load_model(artifacts.ORGANISM, "cpu")
LAYER, BOS = artifacts.LAYER, language.BOS_ID
print(models.describe(artifacts.ORGANISM, model))

# %% [markdown]
# ## Activations, cached once
#
# Every SAE here reads the residual stream entering block {glue:text}`layer` of the organism's
# {glue:text}`n_layers` (`blocks.2.hook_resid_pre`, the middle of the model). SAELens's own
# runner streams tokens through the model while it trains and keeps a shuffling buffer of
# activations; a model this small gives all the activations an SAE needs in one tensor, so the
# book runs the model once over {glue:text}`train_tokens` training tokens (each pass stopped at
# the SAE's layer, nothing else cached) and hands shuffled batches of that tensor to SAELens's
# `SAETrainer` as its data provider (`lib.saes.cache_activations`, `activation_batches`).
# `<bos>` positions are left out of training and of every measure: the first token is the
# attention sink, and its residual stream is many times the norm of any other (chapter
# 'Attention sinks'); one outlier per text would dominate a reconstruction loss.
#
# Written by hand in `lib.saes.training`, because SAELens v6 lacks it: the decoder bias starts
# at the activations' mean rather than at zero, as in Anthropic's and ARENA's recipes (the mean
# is {glue:text}`mean_share` of the typical norm here). And three of SAELens's defaults are
# changed for runs of 1,000 steps rather than hundreds of thousands: the learning rate is 1e-3
# rather than 3e-4, a latent counts as dead for the TopK auxiliary loss after 50 steps without
# firing rather than 1,000, and the L1 coefficient warms up over the first 5% of the steps.

# %%
held = language.sample_corpus(artifacts.EVAL_SEED + SEED, N_ROWS, model.cfg.n_ctx)
keep = held.tokens != BOS
acts = saes.cache_activations(model, held.tokens, saes.hook_name(LAYER), BOS)
if TRAIN:
    train_acts = saes.cache_activations(
        model,
        language.sample_corpus(artifacts.TRAIN_SEED, artifacts.TRAIN_ROWS, model.cfg.n_ctx).tokens,
        saes.hook_name(LAYER),
        BOS,
    )
    spec = next(s for s in artifacts.SWEEP if s.name == SAE_NAME)
    sae, _ = saes.train(train_acts, spec, artifacts.SEED)
else:
    sae = artifacts.load(SAE_NAME)
recorded = next(row for row in artifacts.sweep() if row["name"] == SAE_NAME)
glue("layer", LAYER, display=False)
glue("n_layers", model.cfg.n_layers, display=False)
glue("train_tokens", f"{int(recorded['train_tokens']):,}", display=False)
glue("mean_share", env.sig(float(acts.mean(0).norm() / acts.norm(dim=-1).mean())), display=False)
print(f"{len(acts)} held-out tokens ({N_ROWS} rows without <bos>); SAE {SAE_NAME}: d_sae {sae.cfg.d_sae}")

# %% [markdown]
# ## How good is the SAE? The standard measures
#
# On the held-out activations `x` (codes `f = encode(x)`, reconstructions `x̂ = decode(f)`), as
# SAELens's `evals` define them (a test checks `lib.saes.metrics` against it on the same SAE):
#
# - **L0**, the mean number of latents with `f > 0` per token;
# - **explained variance**, `1 - E‖x - x̂‖² / (E‖x‖² - ‖E x‖²)`;
# - **CE loss recovered**, `(CE_zero - CE_sae) / (CE_zero - CE_clean)`: the model's next-token
#   loss with the reconstruction spliced in at the SAE's hook, between the clean run (1) and the
#   run with the hook zero-ablated (0); the **KL version** replaces each loss gap by the KL
#   divergence from the clean next-token distribution;
# - **dead fraction**, the latents that never fire on these tokens, and the **density** of each
#   latent (the fraction of tokens it fires on).
#
# `SAE_NAME` = {glue:text}`sae_name` has L0 {glue:text}`sae_l0`, explains
# {glue:text}`sae_explained_variance` of the variance, recovers {glue:text}`sae_ce_recovered` of
# the loss ({glue:text}`sae_kl_recovered` of the KL), with {glue:text}`sae_dead_frac` of its
# latents dead. One SAE's numbers mean little alone: SAEBench recommends comparing SAEs at
# matched L0, over sweeps of L0 from 20 to 200, which is what the next section does. (This residual stream
# has 128 dimensions, so an L0 of 20 is a larger share of it than on a real model.)

# %%
measures = {
    f"sae_{k}": v for k, v in artifacts.measure(model, sae, acts, held.tokens[: artifacts.LOSS_ROWS]).items()
}
for name, value in measures.items():
    glue(name, env.sig(value), display=False)
glue("sae_name", SAE_NAME, display=False)
print(pd.Series(measures).map(env.sig).to_string())
codes = saes.encode(sae, acts)
density = saes.sparsity(codes)["density"]
alive = density[density > 0]
px.histogram(
    x=np.log10(alive.numpy()),
    nbins=40,
    title=f"Feature density of {SAE_NAME} ({int((density == 0).sum())} dead latents not shown)",
    labels={"x": "log10 fraction of tokens the latent fires on"},
)

# %% tags=["hide-cell"]
check("the SAE explains at least 0.9 of the variance", measures["sae_explained_variance"] >= 0.9, **measures)
check("splicing it in recovers at least 0.9 of the loss", measures["sae_ce_recovered"] >= 0.9, **measures)
check("at most 0.1 of its latents are dead", measures["sae_dead_frac"] <= 0.1, **measures)

# %% [markdown]
# ## Pareto fronts, not points
#
# One SAE is one point on a trade-off: more active latents per token reconstruct better. The zoo
# holds a sweep of {glue:text}`n_sweep` SAEs on the same activations (`lib.saes.SWEEP`): TopK
# with `k` from 5 to 80, and the standard SAE with its L1 coefficient from 0.5 to 16, each at
# widths {glue:text}`widths`, all trained for the same 1,000 steps. Each is measured here on the
# same held-out tokens as the chosen one (their training logs are in
# `lib/organisms/language-4l/artifacts/saes/sweep.json`). Explained variance and loss recovered
# rise with L0 along every front, and at matched L0 TopK reconstructs better than the L1 SAE:
# at L0 near 20, {glue:text}`topk_ev_20` against {glue:text}`l1_ev_20` explained variance.

# %%
sweep = pd.DataFrame(
    [
        {"name": spec.name, "architecture": spec.architecture, "d_sae": spec.d_sae}
        | artifacts.measure(model, artifacts.load(spec.name), acts, held.tokens[: artifacts.LOSS_ROWS])
        for spec in artifacts.SWEEP
    ]
)
glue("n_sweep", len(sweep), display=False)
glue("widths", " and ".join(str(w) for w in artifacts.WIDTHS), display=False)
sweep["SAE"] = sweep["architecture"] + " " + sweep["d_sae"].astype(str)
near_20 = sweep.loc[(sweep["l0"] - 20).abs().groupby(sweep["architecture"]).idxmin()].set_index(
    "architecture"
)
glue(
    "topk_ev_20",
    f"{env.sig(near_20.loc['topk', 'explained_variance'])} (L0 {env.sig(near_20.loc['topk', 'l0'])})",
    display=False,
)
glue(
    "l1_ev_20",
    f"{env.sig(near_20.loc['standard', 'explained_variance'])} (L0 {env.sig(near_20.loc['standard', 'l0'])})",
    display=False,
)
long = sweep.melt(
    id_vars=["SAE", "name", "l0"], value_vars=["explained_variance", "ce_recovered"], var_name="measure"
)
fig = px.line(
    long.sort_values("l0"),
    x="l0",
    y="value",
    color="SAE",
    facet_col="measure",
    markers=True,
    log_x=True,
    hover_name="name",
    title="Reconstruction against sparsity, per architecture and width",
)
fig.update_yaxes(matches=None)
fig

# %% tags=["hide-cell"]
for sae_kind, front in sweep.sort_values("l0").groupby("SAE"):
    for measure in ("explained_variance", "ce_recovered"):
        values = front[measure].to_numpy()
        check(
            f"{sae_kind}: {measure} rises with L0 along the front",
            (np.diff(values) > -0.01).all(),
            l0=front["l0"].tolist(),
            values=values.tolist(),
        )
check(
    "at L0 near 20, TopK explains more variance than the L1 SAE",
    near_20.loc["topk", "explained_variance"] > near_20.loc["standard", "explained_variance"],
    topk=near_20.loc["topk"].to_dict(),
    standard=near_20.loc["standard"].to_dict(),
)

# %% [markdown]
# ## Do the features find the language's latents?
#
# Each value of a latent the generator records is a yes-or-no label on tokens:
# `word_class=noun`, `topic=sea`, `role=subj`, `number=pl`, `mention=first` (a name introduced
# for the first time), `entity=1` (the text's second character), {glue:text}`n_labels` labels in
# all (values on fewer than 50 of the held-out tokens left out). A feature *detects* a label at
# a threshold: the label is on where the feature exceeds it. For every label we take the single
# best feature at its best threshold (`lib.saes.match`) and report its F1 and AUROC, and the
# mean Matthews correlation of a one-to-one matching of features to labels (Hungarian
# algorithm, as in SAELens's synthetic-feature evaluation). A label counts as
# *matched* when its best feature reaches F1 0.8.
#
# The same measure applies to anything that gives one number per token, so the SAE gets
# baselines: the residual stream's own {glue:text}`d_model` dimensions and its principal
# directions (both with either sign, since their signs are arbitrary), the
# {glue:text}`n_neurons` MLP neurons of the layer just below, whose outputs write into this
# residual stream, and an SAE of the same architecture with its initial, random weights.

# %%
labels_names, labels = saes.latent_labels(held, keep)
neurons = saes.cache_activations(model, held.tokens, f"blocks.{LAYER - 1}.mlp.hook_post", BOS)
random_sae = saes.untrained(acts, next(s for s in artifacts.SWEEP if s.name == SAE_NAME), SEED)
candidates = {
    "SAE": (codes, False),
    "random SAE": (saes.encode(random_sae, acts), False),
    "PCA directions": (acts @ saes.pca_directions(acts), True),
    "residual dimensions": (acts, True),
    "MLP neurons": (neurons, False),
}
matches = {
    name: saes.match(features, labels, signed=signed) for name, (features, signed) in candidates.items()
}
summary = pd.DataFrame(
    {
        name: {
            "labels matched (F1 >= 0.8)": saes.matched_fraction(m),
            "mean best F1": float(m["best_f1"].mean()),
            "mean AUROC": float(m["auroc"].mean()),
            "matched MCC": m["matched_mcc"],
        }
        for name, m in matches.items()
    }
).T
display(summary.map(env.sig))
per_label = pd.DataFrame({name: m["best_f1"].numpy() for name, m in matches.items()}, index=labels_names)
glue("n_labels", len(labels_names), display=False)
glue("d_model", model.cfg.d_model, display=False)
glue("n_neurons", neurons.shape[1], display=False)
glue("latent_values_matched", env.sig(saes.matched_fraction(matches["SAE"])), display=False)
glue("random_sae_matched", env.sig(saes.matched_fraction(matches["random SAE"])), display=False)
glue("pca_matched", env.sig(saes.matched_fraction(matches["PCA directions"])), display=False)
px.bar(
    per_label.reset_index(names="label").melt(id_vars="label", var_name="features", value_name="best F1"),
    x="label",
    y="best F1",
    color="features",
    barmode="group",
    title="The best single feature's F1 for every latent value",
)

# %% [markdown]
# The SAE matches {glue:text}`latent_values_matched` of the labels, against
# {glue:text}`pca_matched` for the principal directions, {glue:text}`random_sae_matched` for the
# random SAE and {glue:text}`neurons_matched` for the MLP neurons. Matched, with the best
# feature's F1: {glue:text}`sae_matched_labels`. Latents none of whose values any single
# feature matches: {glue:text}`unmatched_latents`. A detector at chance has AUROC 0.5 and F1 at
# most twice its label's frequency (the mean frequency of a label is
# {glue:text}`mean_label_freq`).
#
# AUROC ranks the other way round from F1: the SAE's best features have a mean AUROC of
# {glue:text}`sae_auroc`, the residual stream's raw dimensions {glue:text}`raw_auroc`. A sparse
# feature is exactly zero on most tokens, so it cannot rank them, while a dense direction ranks
# every token; F1 at the best threshold asks instead whether one feature *alone* picks out the
# label, which is what an SAE promises.

# %%
sae_f1 = per_label["SAE"]
latent_of = pd.Series([n.split("=")[0] for n in labels_names], index=labels_names)
unmatched = [lat for lat in saes.LABELLED if lat in set(latent_of) and (sae_f1[latent_of == lat] < 0.8).all()]
glue(
    "sae_matched_labels",
    ", ".join(f"`{n}` ({env.sig(f)})" for n, f in sae_f1[sae_f1 >= 0.8].items()),
    display=False,
)
glue("unmatched_latents", ", ".join(f"`{lat}`" for lat in unmatched) or "none", display=False)
glue("mean_label_freq", env.sig(float(labels.float().mean())), display=False)
glue("neurons_matched", env.sig(saes.matched_fraction(matches["MLP neurons"])), display=False)
auroc = {name: float(m["auroc"].mean()) for name, m in matches.items()}
mean_f1 = {name: float(m["best_f1"].mean()) for name, m in matches.items()}
glue("sae_auroc", env.sig(auroc["SAE"]), display=False)
glue("raw_auroc", env.sig(auroc["residual dimensions"]), display=False)

# %% tags=["hide-cell"]
matched = {name: saes.matched_fraction(m) for name, m in matches.items()}
check(
    "the SAE matches at least twice as many labels as the principal directions, and more than any baseline",
    matched["SAE"] >= 2 * matched["PCA directions"]
    and matched["SAE"] > max(v for k, v in matched.items() if k != "SAE"),
    **matched,
)
check(
    "the SAE matches at least 0.15 more of the labels than the same SAE with random weights",
    matched["SAE"] >= matched["random SAE"] + 0.15,
    **matched,
)
check(
    "the SAE's best features have a higher mean F1 but a lower mean AUROC than the raw dimensions",
    mean_f1["SAE"] > mean_f1["residual dimensions"] and auroc["SAE"] < auroc["residual dimensions"],
    mean_f1=mean_f1,
    auroc=auroc,
)

# %% [markdown]
# ## Feature splitting across widths
#
# A label the SAE does not match with one feature may still be covered by several: an SAE with
# more latents can afford one for plural nouns of the farm and another for plural nouns of the
# sea, where a narrower one keeps a single "plural noun" feature. Bricken et al. call this
# *feature splitting*. For every label, count the features that fire almost only where it is on
# (precision at least 0.9, at least 10 firings) and the recall of their union, in the
# {glue:text}`narrow_name` and {glue:text}`wide_name` SAEs (same `k`, widths
# {glue:text}`widths`). Summed over labels, the wider SAE has {glue:text}`wide_precise` such
# features against {glue:text}`narrow_precise`; the most split label is
# {glue:text}`most_split`, covered by {glue:text}`most_split_count` precise features of the wider
# SAE (their union recalls {glue:text}`most_split_recall` of it) and
# {glue:text}`most_split_narrow` of the narrower. Its best single features reach a mean F1 of
# {glue:text}`wide_f1` against {glue:text}`narrow_f1`: splitting buys precision, not a better
# single detector.

# %%
spec = next(s for s in artifacts.SWEEP if s.name == SAE_NAME)
pair = {
    width: next(
        s.name
        for s in artifacts.SWEEP
        if (s.architecture, s.sparsity, s.d_sae) == (spec.architecture, spec.sparsity, width)
    )
    for width in artifacts.WIDTHS
}
splitting = {}
for name in pair.values():
    pair_codes = codes if name == SAE_NAME and not TRAIN else saes.encode(artifacts.load(name), acts)
    count, recall = saes.precise_features(pair_codes, labels)
    best = saes.match(pair_codes, labels)["best_f1"]
    splitting[name] = {"count": count, "recall": recall, "best_f1": best}
narrow, wide = pair[min(pair)], pair[max(pair)]
table = pd.DataFrame(
    {
        f"{name} {what}": values[key].numpy()
        for name, values in splitting.items()
        for what, key in (
            ("precise features", "count"),
            ("their union's recall", "recall"),
            ("best F1", "best_f1"),
        )
    },
    index=labels_names,
)
display(table.map(env.sig))
glue("narrow_name", narrow, display=False)
glue("wide_name", wide, display=False)
glue("narrow_precise", int(splitting[narrow]["count"].sum()), display=False)
glue("wide_precise", int(splitting[wide]["count"].sum()), display=False)
glue("narrow_f1", env.sig(float(splitting[narrow]["best_f1"].mean())), display=False)
glue("wide_f1", env.sig(float(splitting[wide]["best_f1"].mean())), display=False)
top = int(splitting[wide]["count"].argmax())
glue("most_split", f"`{labels_names[top]}`", display=False)
glue("most_split_count", int(splitting[wide]["count"][top]), display=False)
glue("most_split_recall", env.sig(float(splitting[wide]["recall"][top])), display=False)
glue("most_split_narrow", int(splitting[narrow]["count"][top]), display=False)

# %% tags=["hide-cell"]
check(
    "the wider SAE has more features that are precise for some label",
    splitting[wide]["count"].sum() > splitting[narrow]["count"].sum(),
    narrow=int(splitting[narrow]["count"].sum()),
    wide=int(splitting[wide]["count"].sum()),
)
check(
    "the wider SAE's best single features are no better detectors on average",
    splitting[wide]["best_f1"].mean() <= splitting[narrow]["best_f1"].mean(),
    narrow=float(splitting[narrow]["best_f1"].mean()),
    wide=float(splitting[wide]["best_f1"].mean()),
)

# %% [markdown]
# ## Results
#
# No published SAE evaluation measures features against latents known for a language model's
# every token; SAELens's synthetic-feature evaluation plants features in toy data instead. So the table sets this run's numbers beside the baselines of the same run, with
# chance level where a measure has one.

# %%
pd.DataFrame(
    [
        ("L0 (active latents per token)", env.sig(measures["sae_l0"]), "-", f"d_sae {sae.cfg.d_sae}"),
        (
            "explained variance",
            env.sig(measures["sae_explained_variance"]),
            "0",
            f"d_model {model.cfg.d_model}",
        ),
        (
            "CE loss recovered",
            env.sig(measures["sae_ce_recovered"]),
            "0 (zero ablation)",
            f"{artifacts.LOSS_ROWS} rows",
        ),
        (
            "KL recovered",
            env.sig(measures["sae_kl_recovered"]),
            "0 (zero ablation)",
            f"{artifacts.LOSS_ROWS} rows",
        ),
        ("dead fraction", env.sig(measures["sae_dead_frac"]), "-", f"{len(acts)} tokens"),
        *(
            (f"labels matched (F1 >= 0.8): {name}", env.sig(value), "0", f"{len(labels_names)} labels")
            for name, value in matched.items()
        ),
        (
            "mean best-feature AUROC: SAE",
            env.sig(float(matches["SAE"]["auroc"].mean())),
            "0.5",
            f"{len(labels_names)} labels",
        ),
    ],
    columns=["measure", "this run", "chance level", "size (this run)"],
)

# %% [markdown]
# References: Bricken et al. (2023), "Towards monosemanticity" (the standard SAE with an L1
# penalty, feature splitting); Gao et al. (2024), "Scaling and evaluating sparse autoencoders"
# (TopK SAEs and the auxiliary loss on dead latents); Karvonen et al. (2025), SAEBench (comparing
# SAEs at matched L0); SAELens (Bloom et al.), whose SAEs, trainer and evaluations these are.
