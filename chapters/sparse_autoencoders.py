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
MODEL_NAME: str = "language-4l"  # the language organism (language-4l), or a TransformerLens name (gpt2-small) with SAE_RELEASE and SAE_ID
SAE_NAME: str = "topk-1024-k20"  # on the organism, a stored SAE: topk-{256,1024}-k{5,...,80}, standard-{256,1024}-l1-{0.5,...,16}
SAE_RELEASE: str = ""  # real model: a SAELens release (gpt2-small-res-jb); empty: SAE_ID is a folder
SAE_ID: str = ""  # real model: the release's SAE id (blocks.8.hook_resid_pre), or a folder SAELens saved
SEED: int = 0  # [0, 2**32 - 1]: seed of the held-out rows the SAE is measured on
N_ROWS: int = 128  # [128, 512]: held-out rows of 128 tokens to measure on (fewer: rare latents look dead)
STEER: float = 0.75  # [0.5, 1.0]: a steered feature is clamped to this multiple of its largest held-out activation (above 1 the texts leave the grammar within a few tokens)
TRAIN: bool = False  # organism: retrain the SAE live from its recorded spec (minutes) rather than load it
DEVICE: str = "auto"  # {"auto", "cpu", "cuda"}: where the model and the SAE run
DTYPE: str = "float32"  # {"float32", "float16", "bfloat16"}: the model's weights and activations (the SAE reads them in float32)

# %%
import numpy as np
import pandas as pd
import plotly.express as px
import torch
from IPython.display import HTML, display
from myst_nb import glue

from lib import env, generation, language, models, params, saes, zoo
from lib.claims import check
from lib.saes import artifacts

params.validate(globals())
IS_ORGANISM = MODEL_NAME == artifacts.ORGANISM  # the language's latents, the zoo's SAEs and the checks
CHECK_BANDS = (
    IS_ORGANISM and SAE_NAME == artifacts.CHAPTER.name
)  # the checks on the chosen SAE bound the default
if IS_ORGANISM and SAE_NAME not in artifacts.NAMES:
    raise ValueError(f"SAE_NAME={SAE_NAME!r} is not a stored SAE; allowed: {', '.join(artifacts.NAMES)}")
if MODEL_NAME in zoo.ORGANISMS and not IS_ORGANISM:
    raise ValueError(f"the zoo's SAEs are of {artifacts.ORGANISM}; MODEL_NAME={MODEL_NAME!r} has none")
if not IS_ORGANISM and not SAE_ID:
    raise ValueError("on a real model, name its SAE: SAE_RELEASE and SAE_ID, or SAE_ID a folder")
if TRAIN and not IS_ORGANISM:
    raise ValueError("TRAIN retrains the organism's SAEs; on a real model the SAE is loaded")
env.setup(SEED)
model = models.load_model(MODEL_NAME, DEVICE, DTYPE)
device = str(model.cfg.device)
if IS_ORGANISM:
    spec = next(s for s in artifacts.SWEEP if s.name == SAE_NAME)
    LAYER, BOS, sae_name = artifacts.LAYER, language.BOS_ID, SAE_NAME
else:
    sae, LAYER = artifacts.load_pretrained(SAE_RELEASE, SAE_ID, device)
    if sae.cfg.d_in != model.cfg.d_model:
        raise ValueError(
            f"the SAE reads {sae.cfg.d_in} dimensions; {MODEL_NAME} has d_model {model.cfg.d_model}"
        )
    BOS, sae_name = model.tokenizer.bos_token_id, f"{SAE_RELEASE}/{SAE_ID}" if SAE_RELEASE else SAE_ID
print(models.describe(MODEL_NAME, model))

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
held = language.sample_corpus(artifacts.EVAL_SEED + SEED, N_ROWS, artifacts.N_CTX)
tokens = (
    held.tokens
    if IS_ORGANISM
    else language.retokenize(held.tokens, model.tokenizer, min(model.cfg.n_ctx, artifacts.N_CTX))
)
keep = tokens != BOS
acts = saes.cache_activations(model, tokens, saes.hook_name(LAYER), BOS).cpu()
if TRAIN:
    train_acts = saes.cache_activations(
        model,
        language.sample_corpus(artifacts.TRAIN_SEED, artifacts.TRAIN_ROWS, artifacts.N_CTX).tokens,
        saes.hook_name(LAYER),
        BOS,
    )
    sae, _ = saes.train(train_acts, spec, artifacts.SEED)
elif IS_ORGANISM:
    sae = artifacts.load(SAE_NAME, device)
glue("layer", LAYER, display=False)
glue("n_layers", model.cfg.n_layers, display=False)
if IS_ORGANISM:
    glue("train_tokens", f"{int(artifacts.record(SAE_NAME)['train_tokens']):,}", display=False)
glue("mean_share", env.sig(float(acts.mean(0).norm() / acts.norm(dim=-1).mean())), display=False)
print(
    f"{len(acts)} held-out tokens ({len(tokens)} rows without position 0); SAE {sae_name}: d_sae {sae.cfg.d_sae}"
)

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
    f"sae_{k}": v
    for k, v in artifacts.measure(model, sae, acts, tokens[: artifacts.LOSS_ROWS], LAYER, BOS).items()
}
for name, value in measures.items():
    glue(name, env.sig(value), display=False)
glue("sae_name", sae_name, display=False)
print(pd.Series(measures).map(env.sig).to_string())
codes = saes.encode(sae, acts)
density = saes.sparsity(codes)["density"]
alive = density[density > 0]
px.histogram(
    x=np.log10(alive.numpy()),
    nbins=40,
    title=f"Feature density of {sae_name} ({int((density == 0).sum())} dead latents not shown)",
    labels={"x": "log10 fraction of tokens the latent fires on"},
)

# %% tags=["hide-cell"]
if CHECK_BANDS:
    check(
        "the SAE explains at least 0.9 of the variance", measures["sae_explained_variance"] >= 0.9, **measures
    )
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
if IS_ORGANISM:
    sweep = pd.DataFrame(
        [
            {"name": other.name, "architecture": other.architecture, "d_sae": other.d_sae}
            | (
                {k.removeprefix("sae_"): v for k, v in measures.items()}
                if other.name == SAE_NAME and not TRAIN
                else artifacts.measure(
                    model, artifacts.load(other.name, device), acts, tokens[: artifacts.LOSS_ROWS]
                )
            )
            for other in artifacts.SWEEP
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
    display(fig)
else:
    print(
        "this section needs the language's latents or the zoo's SAEs; it runs when MODEL_NAME is language-4l"
    )

# %% tags=["hide-cell"]
if IS_ORGANISM:
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
# ## Dead latents: none, resampling, or the auxiliary loss
#
# A latent that stops firing gets no gradient (in a TopK SAE it never makes the top `k` again)
# and stays dead: width paid for and not used. Four ways to train the default SAE (TopK, width
# 1,024, `k` 20), on the same 1,000 steps of 2,048 activations from the same start:
#
# - **none**: the TopK loss alone;
# - **resampling** (Bricken et al. 2023): after steps 250, 500 and 750, every latent that has
#   not fired for 50 steps is reborn pointing at an input the SAE reconstructs badly (drawn with
#   probability proportional to its squared error, squared), its encoder column at 0.2 times
#   the live latents' mean norm, its Adam moments reset. SAELens v6 dropped resampling, so it
#   is written here (`lib.saes.resample_dead`);
# - **resampling at the live scale**: the same, with the encoder column at the live latents'
#   mean norm;
# - **the auxiliary loss** (Gao et al. 2024), SAELens's default for TopK and what every SAE
#   above used: the latents dead for 50 steps also reconstruct the residual error through their
#   own top 256, which pulls them back towards the data.
#
# On the held-out tokens: {glue:text}`dead_summary`. Bricken et al.'s recipe was made for
# ReLU SAEs with an L1 penalty, where a small encoder norm still fires; in a TopK SAE a latent
# must beat the `k` largest to fire, and the resampled ones died again: {glue:text}`resampled_counts`
# latents were resampled at steps 250, 500 and 750. At the live latents' scale they survive,
# and end close to the auxiliary loss. The dead latents cost little reconstruction at this L0:
# explained variance moves by {glue:text}`dead_ev_spread` across the four.

# %%
if IS_ORGANISM:
    remedies = {
        "none": "topk-1024-k20-noaux",
        "resampling": "topk-1024-k20-noaux-resample",
        "resampling at the live scale": "topk-1024-k20-noaux-resample-x1",
        "auxiliary loss": "topk-1024-k20",
    }
    dead_table = pd.DataFrame(
        {
            remedy: artifacts.measure(
                model, artifacts.load(name, device), acts, tokens[: artifacts.LOSS_ROWS]
            )
            for remedy, name in remedies.items()
        }
    ).T
    display(dead_table.map(env.sig))
    resampled = {
        remedy: [row["resampled"] for row in artifacts.record(name)["log"] if "resampled" in row]
        for remedy, name in remedies.items()
        if remedy.startswith("resampling")
    }
    glue(
        "dead_summary",
        "; ".join(
            f"{remedy}, {env.sig(row['dead_frac'])} of the latents dead (explained variance "
            f"{env.sig(row['explained_variance'])})"
            for remedy, row in dead_table.iterrows()
        ),
        display=False,
    )
    glue("resampled_counts", ", ".join(str(n) for n in resampled["resampling"]), display=False)
    ev_spread = float(dead_table["explained_variance"].max() - dead_table["explained_variance"].min())
    glue("dead_ev_spread", env.sig(ev_spread), display=False)
    display(
        px.histogram(
            pd.concat(
                [
                    pd.DataFrame({"remedy": remedy, "log10 density": np.log10(d[d > 0].numpy())})
                    for remedy, name in remedies.items()
                    for d in [saes.sparsity(saes.encode(artifacts.load(name, device), acts))["density"]]
                ]
            ),
            x="log10 density",
            color="remedy",
            barmode="overlay",
            nbins=40,
            title="Feature density of the live latents, per remedy for dead latents",
        )
    )
else:
    print(
        "this section needs the language's latents or the zoo's SAEs; it runs when MODEL_NAME is language-4l"
    )

# %% tags=["hide-cell"]
if IS_ORGANISM:
    dead = dead_table["dead_frac"]
    check(
        "resampling at Bricken et al.'s scale leaves as many latents dead as no remedy (within 0.02)",
        abs(dead["resampling"] - dead["none"]) < 0.02,
        dead_frac=dead.to_dict(),
    )
    check(
        "at that scale the resampled latents die again: the last resampling finds at least 0.9 times as many dead as the first",
        resampled["resampling"][-1] >= 0.9 * resampled["resampling"][0],
        resampled=resampled,
    )
    check(
        "resampling at the live scale and the auxiliary loss each leave at most half as many dead latents as no remedy",
        max(dead["resampling at the live scale"], dead["auxiliary loss"]) <= dead["none"] / 2,
        dead_frac=dead.to_dict(),
    )
    check(
        "explained variance differs by less than 0.02 across the four",
        ev_spread < 0.02,
        explained_variance=dead_table["explained_variance"].to_dict(),
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
if IS_ORGANISM:
    labels_names, labels = saes.latent_labels(held, keep)
    neurons = saes.cache_activations(model, tokens, f"blocks.{LAYER - 1}.mlp.hook_post", BOS).cpu()
    random_sae = saes.untrained(acts, spec, SEED)
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
    display(
        px.bar(
            per_label.reset_index(names="label").melt(
                id_vars="label", var_name="features", value_name="best F1"
            ),
            x="label",
            y="best F1",
            color="features",
            barmode="group",
            title="The best single feature's F1 for every latent value",
        )
    )
else:
    print(
        "this section needs the language's latents or the zoo's SAEs; it runs when MODEL_NAME is language-4l"
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
if IS_ORGANISM:
    sae_f1 = per_label["SAE"]
    latent_of = pd.Series([n.split("=")[0] for n in labels_names], index=labels_names)
    unmatched = [
        lat for lat in saes.LABELLED if lat in set(latent_of) and (sae_f1[latent_of == lat] < 0.8).all()
    ]
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
else:
    print(
        "this section needs the language's latents or the zoo's SAEs; it runs when MODEL_NAME is language-4l"
    )

# %% tags=["hide-cell"]
if CHECK_BANDS:
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
# ## Dashboards
#
# The usual way to judge a feature is to read its dashboard: how often it fires (density, and a
# histogram of its nonzero activations), which tokens its decoder direction promotes and
# suppresses through the unembedding (`W_dec[i] @ W_U`, the direct effect on the next-token
# logits), and the held-out contexts where it fires hardest, each token shaded by the
# activation (hover over a token for its activation and the generator's latents there). Below
# are the best detectors of the {glue:text}`n_dashboard_matched` labels the SAE matches best and
# {glue:text}`n_dashboard_unmatched` live features that are no label's best detector, drawn at
# random (on a real model, five live features drawn at random).
# The dashboards are written by hand (`lib.saes.dashboard`): SAELens's companion
# `sae-dashboard` requires transformer-lens < 3 and datasets < 4, and its pages load d3 and
# plotly from CDNs.


# %%
def values_of(feature: int) -> torch.Tensor:
    """The feature's activation at every held-out token, 0 at position 0."""
    out = torch.zeros(tokens.shape)
    out[keep] = codes[:, feature]
    return out


def latent_value(latent: str, value: int) -> str | int:
    """A latent's value by name, or the number itself for the numbered ones (entity, sent_pos)."""
    names = language.LATENTS[latent]
    return value if names is None else names[value]


def latents_at(row: int, pos: int) -> str:
    """The generator's latents at a token, for the organism's tooltips."""
    return " ".join(
        f"{lat}={latent_value(lat, v)}"
        for lat in saes.LABELLED
        if IS_ORGANISM and (v := int(held.latents[lat][row, pos])) >= 0
    )


N_MATCHED_SHOWN, N_UNMATCHED_SHOWN = (3, 2) if IS_ORGANISM else (0, 5)
live = torch.nonzero(density > 0)[:, 0]
shown, unclaimed = {}, live
if IS_ORGANISM:
    best = matches["SAE"]
    for i in best["best_f1"].argsort(descending=True).tolist():
        if len(shown) < N_MATCHED_SHOWN and int(best["feature"][i]) not in shown:
            shown[int(best["feature"][i])] = f"{labels_names[i]}, F1 {env.sig(float(best['best_f1'][i]))}"
    unclaimed = live[~torch.isin(live, best["feature"])]
drawn = torch.randperm(len(unclaimed), generator=torch.Generator().manual_seed(SEED))[:N_UNMATCHED_SHOWN]
shown |= {int(f): "no label's best detector" if IS_ORGANISM else "drawn at random" for f in unclaimed[drawn]}
glue("n_dashboard_matched", N_MATCHED_SHOWN, display=False)
glue("n_dashboard_unmatched", N_UNMATCHED_SHOWN, display=False)
vocab = saes.token_strings(model.tokenizer, model.cfg.d_vocab)
words = [[vocab[t] for t in row] for row in tokens.tolist()]
display(
    HTML(
        "".join(
            saes.dashboard(
                f"feature {f} of {sae_name}: {what}",
                values_of(f),
                keep,
                words,
                saes.logit_effects(model, sae, f),
                vocab,
                latents_at,
            )
            for f, what in shown.items()
        )
    )
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
if IS_ORGANISM:
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
        pair_codes = (
            codes if name == SAE_NAME and not TRAIN else saes.encode(artifacts.load(name, device), acts)
        )
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
else:
    print(
        "this section needs the language's latents or the zoo's SAEs; it runs when MODEL_NAME is language-4l"
    )

# %% tags=["hide-cell"]
if CHECK_BANDS:
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
# ## Absorption
#
# Splitting has a failure mode. Where a specific feature fires (a feature for one plural noun,
# say), a general one ("plural noun") may stay silent: the specific latent's decoder row
# carries the general direction too, so sparsity is served by firing one latent instead of
# two. Chanin et al. (2024) call this *absorption*, and SAEBench measures it with a probe as the
# ground truth. Here the ground truth is the label itself. For every label: a
# logistic-regression probe on the activations gives the label's direction; k-sparse probing
# picks the SAE's main latents for it (latents ranked by how much more they fire on the label,
# grown from one while a probe on them gains 0.03 held-out F1); and on every token where the
# label is on and the probe finds it, each latent's share of the probe direction is its
# activation times its decoder row's cosine with the probe. The *absorption fraction* of a
# token is the share of the activation's projection that up to three other probe-aligned
# latents carry in place of the main ones; *full absorption* is a token where no main latent
# fires and one other latent carries at least 0.4 of it (`lib.saes.absorption`, SAEBench's
# thresholds).
#
# The chosen SAE is set beside the SAE of the other architecture, same width, nearest in L0.
# Over the {glue:text}`n_labels` labels, {glue:text}`absorption_summary`. The labels with the
# most absorption in {glue:text}`sae_name`: {glue:text}`most_absorbed`. Full absorption, one
# latent standing in for the label entirely, is rarer than partial absorption in TopK. The L1
# SAE absorbs less than a fifth as much as TopK. Part of that may be the measure rather than
# the SAE: an L1 penalty shrinks every activation, and the measure counts nothing as absorbed
# unless the other latents carry 0.4 of the activation's projection.

# %%
if IS_ORGANISM:
    split = torch.rand(len(acts), generator=torch.Generator().manual_seed(SEED)) < 0.5
    probes = {name: saes.probe_direction(acts, labels[:, i], split) for i, name in enumerate(labels_names)}
    other_architecture = "standard" if spec.architecture == "topk" else "topk"
    rivals = sweep[(sweep["architecture"] == other_architecture) & (sweep["d_sae"] == spec.d_sae)]
    rival = rivals.loc[(rivals["l0"] - measures["sae_l0"]).abs().idxmin(), "name"]
    absorbing = {SAE_NAME: sae, rival: artifacts.load(rival, device)}
    rows = []
    for sae_label, each in absorbing.items():
        each_codes = codes if each is sae else saes.encode(each, acts)
        for i, name in enumerate(labels_names):
            direction, found = probes[name]
            main = saes.main_latents(each_codes, labels[:, i], split)
            on = labels[:, i] & found
            decoder = saes.decoder_directions(each, torch.arange(each.cfg.d_sae)).detach().cpu()
            result = saes.absorption_fractions(acts[on], each_codes[on], decoder, direction, main)
            rows.append(
                {
                    "SAE": sae_label,
                    "label": name,
                    "main latents": len(main),
                    "tokens": int(on.sum()),
                    "absorption fraction": float(result["fraction"].mean()),
                    "full absorption": float(result["full"].float().mean()),
                }
            )
    absorbed = pd.DataFrame(rows)
    by_sae = absorbed.groupby("SAE", sort=False)[["absorption fraction", "full absorption"]].mean()
    display(by_sae.map(env.sig))
    glue(
        "absorption_summary",
        "; ".join(
            f"`{name}` (L0 {env.sig(float(sweep.set_index('name').loc[name, 'l0']))}) has a mean absorption "
            f"fraction of {env.sig(row['absorption fraction'])} and full absorption on "
            f"{env.sig(row['full absorption'])} of the tokens"
            for name, row in by_sae.iterrows()
        ),
        display=False,
    )
    chosen = absorbed[absorbed["SAE"] == SAE_NAME].set_index("label")["absorption fraction"]
    glue(
        "most_absorbed",
        ", ".join(f"`{name}` ({env.sig(v)})" for name, v in chosen.nlargest(3).items()),
        display=False,
    )
    display(
        px.bar(
            absorbed,
            x="label",
            y="absorption fraction",
            color="SAE",
            barmode="group",
            title="Mean absorption fraction per label (tokens where the label is on and its probe finds it)",
        )
    )
else:
    print(
        "this section needs the language's latents or the zoo's SAEs; it runs when MODEL_NAME is language-4l"
    )

# %% tags=["hide-cell"]
if CHECK_BANDS:
    fraction, full = by_sae["absorption fraction"], by_sae["full absorption"]
    check(
        "the TopK SAE absorbs a mean fraction of at least 0.1, and the L1 SAE at matched L0 less than a fifth of that",
        fraction[SAE_NAME] >= 0.1 and fraction[rival] < fraction[SAE_NAME] / 5,
        fraction=fraction.to_dict(),
    )
    check(
        "in the TopK SAE, full absorption is rarer than the mean absorption fraction",
        full[SAE_NAME] < fraction[SAE_NAME],
        full=full.to_dict(),
        fraction=fraction.to_dict(),
    )

# %% [markdown]
# ## Steering: clamp a topic feature and generate
#
# A feature that detects a topic may or may not *cause* the model to write about it. To ask, we
# clamp it: at every position, the activation `x` at the SAE's hook becomes
# `x + (c - f_i(x)) W_dec[i]`, which sets feature `i` to `c` and leaves the rest of `x`,
# reconstruction error included, as it was (Templeton et al. 2024; `lib.saes.clamp_hook`).
# Here `c` is `STEER` = {glue:text}`steer` times the feature's largest activation on the
# held-out tokens. For each topic we clamp the SAE's best detector of `topic=...` from the
# previous section and sample {glue:text}`n_steer_texts` texts of up to
# {glue:text}`steer_tokens` tokens from a lone `<bos>`, at temperature 1. The
# generator then scores each text: its exact posterior over the five topics given the text's
# words, up to the first word its grammar cannot produce (`lib.language.continuation_topic_posterior`).
# The control clamps {glue:text}`n_random_features` live features drawn at random, each to the
# same multiple of its own largest activation. A random feature has no topic of its own, so it
# is credited with the topic whose posterior it raises most: an upper bound on what it does.
#
# Unsteered, the texts' mean posterior on each topic is {glue:text}`steer_base` (chance 1/5).
# Clamping a topic's feature raises the posterior of that topic by {glue:text}`steering_effect`
# on average over the topics ({glue:text}`steering_per_topic`); a random feature raises its best
# topic by {glue:text}`steering_random_effect`. Steering has a price: the texts leave the
# grammar sooner, after {glue:text}`steer_len_topic` tokens on average against
# {glue:text}`steer_len_base` unsteered and {glue:text}`steer_len_random` under the random
# features.

# %%
if IS_ORGANISM:
    N_STEER_TEXTS, STEER_TOKENS, N_RANDOM_FEATURES = 64, 32, 25
    topic_names = [n for n in labels_names if n.startswith("topic=")]
    topic_features = matches["SAE"]["feature"][[labels_names.index(n) for n in topic_names]]
    untargeted = live[~torch.isin(live, topic_features)]
    drawn = torch.randperm(len(untargeted), generator=torch.Generator().manual_seed(SEED))[:N_RANDOM_FEATURES]
    random_features = untargeted[drawn]
    conditions = torch.cat([torch.tensor([-1]), topic_features, random_features])
    clamp_to = torch.where(conditions >= 0, STEER * codes.max(0).values[conditions.clamp_min(0)], 0.0)
    new = saes.steered_texts(
        model, sae, saes.hook_name(LAYER), conditions, clamp_to, N_STEER_TEXTS, STEER_TOKENS, SEED
    )
    posterior, grammatical = language.continuation_topic_posterior(new.flatten(0, 1))
    posterior = posterior.view(len(conditions), N_STEER_TEXTS, -1).mean(1)  # [condition, topic]
    grammatical = grammatical.view(len(conditions), N_STEER_TEXTS).float().mean(1)
    topic_of = [language.TOPICS.index(n.split("=")[1]) for n in topic_names]
    shift = posterior - posterior[0]
    topic_rows = slice(1, 1 + len(topic_names))
    topic_effect = shift[topic_rows][torch.arange(len(topic_names)), topic_of]
    random_effect = shift[topic_rows.stop :].max(1).values
    steering = {
        "steering_effect": float(topic_effect.mean()),
        "steering_random_effect": float(random_effect.mean()),
    }
    for name, value in steering.items():
        glue(name, env.sig(value), display=False)
    glue("steer", STEER, display=False)
    glue("n_steer_texts", N_STEER_TEXTS, display=False)
    glue("steer_tokens", STEER_TOKENS, display=False)
    glue("n_random_features", N_RANDOM_FEATURES, display=False)
    glue(
        "steer_base",
        ", ".join(f"{topic} {env.sig(float(v))}" for topic, v in zip(language.TOPICS, posterior[0])),
        display=False,
    )
    glue(
        "steering_per_topic",
        ", ".join(f"{n.split('=')[1]} +{env.sig(float(e))}" for n, e in zip(topic_names, topic_effect)),
        display=False,
    )
    glue("steer_len_base", env.sig(float(grammatical[0])), display=False)
    glue("steer_len_topic", env.sig(float(grammatical[topic_rows].mean())), display=False)
    glue("steer_len_random", env.sig(float(grammatical[topic_rows.stop :].mean())), display=False)
    rows = ["unsteered"] + [f"{n} (feature {int(f)})" for n, f in zip(topic_names, topic_features)]
    rows += [f"random feature {int(f)}" for f in random_features]
    fig = px.imshow(
        posterior.numpy(),
        x=list(language.TOPICS),
        y=rows,
        color_continuous_scale="Blues",
        zmin=0,
        zmax=1,
        aspect="auto",
        title=f"The generator's topic posterior of texts written with a feature clamped (STEER {STEER})",
        labels={"x": "topic", "y": "clamped feature", "color": "posterior"},
    )
    fig.update_layout(height=700)
    display(fig)
else:
    print(
        "this section needs the language's latents or the zoo's SAEs; it runs when MODEL_NAME is language-4l"
    )

# %% [markdown]
# The first text of each condition, with the number of its tokens the grammar can produce:

# %%
if IS_ORGANISM:
    first = new[: topic_rows.stop, 0]
    with pd.option_context("display.max_colwidth", None):
        display(
            pd.DataFrame(
                {
                    "clamped": rows[: topic_rows.stop],
                    "grammatical tokens": language.continuation_topic_posterior(first)[1].tolist(),
                    "text": generation.decode(model, first, [BOS]),
                }
            )
        )
else:
    print(
        "this section needs the language's latents or the zoo's SAEs; it runs when MODEL_NAME is language-4l"
    )

# %% tags=["hide-cell"]
if CHECK_BANDS:
    check(
        "a topic feature raises its topic's posterior at least 3 times as much as a random feature raises its best topic's",
        steering["steering_effect"] >= 3 * steering["steering_random_effect"],
        **steering,
    )
    check(
        "each topic's feature raises that topic's posterior",
        (topic_effect > 0).all(),
        effect=dict(zip(topic_names, topic_effect.tolist())),
    )
    check(
        "steered by a topic feature, texts leave the grammar sooner than unsteered or under random features",
        grammatical[topic_rows].mean() < min(grammatical[0], grammatical[topic_rows.stop :].mean()),
        grammatical=grammatical.tolist(),
    )

# %% [markdown]
# ## Results
#
# No published SAE evaluation measures features against latents known for a language model's
# every token; SAELens's synthetic-feature evaluation plants features in toy data instead. So the table sets this run's numbers beside the baselines of the same run, with
# chance level where a measure has one.

# %%
results = [
    ("L0 (active latents per token)", env.sig(measures["sae_l0"]), "-", f"d_sae {sae.cfg.d_sae}"),
    ("explained variance", env.sig(measures["sae_explained_variance"]), "0", f"d_model {model.cfg.d_model}"),
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
]
if IS_ORGANISM:
    results += [
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
        (
            "topic posterior gained, topic feature clamped",
            env.sig(steering["steering_effect"]),
            f"0; a random feature's best topic: {env.sig(steering['steering_random_effect'])}",
            f"{N_STEER_TEXTS} texts x {len(topic_names)} topics",
        ),
    ]
pd.DataFrame(results, columns=["measure", "this run", "chance level", "size (this run)"])

# %% [markdown]
# ## On a real model
#
# With `MODEL_NAME` a TransformerLens model and an SAE for it, the chapter measures that SAE
# the same way: L0, explained variance, CE and KL loss recovered, the dead fraction and the
# density histogram, and dashboards of five live features drawn at random. It reads the
# language's held-out texts, retokenized by the model's tokenizer (`lib.language.retokenize`),
# since nothing can be downloaded here. The sections that need the generator's latents or the
# zoo's sweep say so and pass. SAELens loads a pretrained SAE by release and id
# (`SAE.from_pretrained`), or a folder it saved (`SAE_RELEASE` empty, `SAE_ID` the folder), which is
# how the tests run this path offline, on small random checkpoints and a random SAE. On a GPU,
# for GPT-2 small's residual-stream SAEs:
#
# ```
# make run CHAPTER=sparse_autoencoders PARAMS="-p MODEL_NAME gpt2-small -p SAE_RELEASE gpt2-small-res-jb -p SAE_ID blocks.8.hook_resid_pre -p DEVICE cuda"
# ```
#
# No number is given here to expect: the run computes them. SAEBench's advice holds there too:
# compare SAEs at matched L0, over sweeps from about 20 to 200.

# %% [markdown]
# References: Bricken et al. (2023), "Towards monosemanticity" (the standard SAE with an L1
# penalty, feature splitting); Gao et al. (2024), "Scaling and evaluating sparse autoencoders"
# (TopK SAEs and the auxiliary loss on dead latents); Karvonen et al. (2025), SAEBench (comparing
# SAEs at matched L0); SAELens (Bloom et al.), whose SAEs, trainer and evaluations these are.
