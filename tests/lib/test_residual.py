"""lib.residual against slow, obviously correct references: per-layer and per-head Python loops
over a full TransformerLens cache, TransformerLens's own head results and LayerNorm stacking,
one hooked forward pass per ablation; and the chapter on the offline tiny GPT-2."""

import nbformat
import pytest
import torch
from offline_hf import glued
from random_models import random_model
from residual_cases import NORMS, random_tokens
from transformer_lens import HookedTransformer, HookedTransformerConfig

from lib import book, env, language, models, residual


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return random_tokens()


def test_decompose_matches_tl_head_results_and_sums_to_resid(tokens):
    model = random_model(use_attn_result=True)
    stack, labels = residual.decompose(model, tokens)
    _, cache = model.run_with_cache(tokens)
    expected = {
        "embed": cache["hook_embed"],
        "pos_embed": cache["hook_pos_embed"].expand_as(cache["hook_embed"]),
    }
    for layer in range(3):
        for head in range(4):
            expected[f"L{layer}H{head}"] = cache["result", layer][:, :, head]
        expected[f"L{layer} b_O"] = model.b_O[layer].expand_as(cache["hook_embed"])
        expected[f"MLP{layer}"] = cache["mlp_out", layer]
    assert set(labels) == set(expected) and len(labels) == len(expected)
    for label, value in zip(labels, stack):
        torch.testing.assert_close(value, expected[label], atol=1e-5, rtol=1e-5, msg=label)
    total = sum(expected.values())
    torch.testing.assert_close(stack.sum(0), cache["resid_post", 2], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(total, cache["resid_post", 2], atol=1e-4, rtol=1e-5)


def test_decompose_order_is_the_order_of_addition(tokens):
    _, labels = residual.decompose(random_model(), tokens)
    per_layer = [
        [f"L{layer}H{head}" for head in range(4)] + [f"L{layer} b_O", f"MLP{layer}"] for layer in range(3)
    ]
    assert labels == ["embed", "pos_embed"] + [label for layer in per_layer for label in layer]


@pytest.mark.parametrize("norm", NORMS)
def test_decomposition_errors_are_rounding(tokens, norm):
    errors = residual.decomposition_errors(random_model(norm), tokens)
    assert set(errors) == {"resid", "attn"} and max(errors.values()) < 1e-5, errors


def test_rotary_model_has_no_position_term(tokens):
    model = random_model(positional_embedding_type="rotary")
    stack, labels = residual.decompose(model, tokens)
    assert "pos_embed" not in labels
    assert residual.decomposition_errors(model, tokens)["resid"] < 1e-5


def slow_attribution(model, tokens, sites, correct, wrong, center=False):
    """One component vector at a time: LayerNorm with the run's scale, dot with W_U columns."""
    stack, labels = residual.decompose(model, tokens)
    if center:
        stack = stack - stack.mean(1, keepdim=True)  # [component, batch, pos, d]: per-position means
    names = {"ln_final.hook_scale"} if model.cfg.normalization_type else set()
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    out = torch.zeros(len(labels), len(sites))
    for i, (b, p) in enumerate(sites):
        direction = model.W_U[:, correct[i]] - model.W_U[:, wrong[i]]
        for c in range(len(labels)):
            x = stack[c, b, p]
            if model.cfg.normalization_type in ("LN", "LNPre"):
                x = x - x.mean()
            if model.cfg.normalization_type is not None:
                x = x / cache["ln_final.hook_scale"][b, p, 0]
            if model.cfg.normalization_type in ("LN", "RMS"):
                x = x * model.ln_final.w
            out[c, i] = x @ direction
    return out, labels


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("center", [False, True])
def test_dla_matches_per_component_loop_and_sums_to_the_logit_difference(tokens, norm, center):
    model = random_model(norm)
    sites = [(0, 3), (1, 13), (2, 0), (2, 7)]
    b, p = torch.tensor(sites).T
    correct, wrong = torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6, 7, 8])
    attr = residual.direct_logit_attribution(model, tokens, b, p, correct, wrong, center=center)
    slow, labels = slow_attribution(model, tokens, sites, correct, wrong, center)
    by_label = dict(zip(labels, slow))
    torch.testing.assert_close(attr.embed, by_label["embed"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attr.pos_embed, by_label["pos_embed"], atol=1e-5, rtol=1e-4)
    for layer in range(3):
        torch.testing.assert_close(attr.mlps[layer], by_label[f"MLP{layer}"], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(attr.attn_bias[layer], by_label[f"L{layer} b_O"], atol=1e-5, rtol=1e-4)
        for head in range(4):
            torch.testing.assert_close(
                attr.heads[layer, head], by_label[f"L{layer}H{head}"], atol=1e-5, rtol=1e-4
            )
    logits = model(tokens)
    torch.testing.assert_close(attr.total, logits[b, p, correct] - logits[b, p, wrong])
    if not center:
        torch.testing.assert_close(attr.summed(), attr.total, atol=1e-4, rtol=1e-4)
    rows, row_labels = attr.stacked()
    assert row_labels == ["embed", "pos_embed"] + [f"L{l}H{h}" for l in range(3) for h in range(4)] + [
        "MLP0",
        "MLP1",
        "MLP2",
    ]
    torch.testing.assert_close(
        rows, torch.stack([by_label[label] for label in row_labels]), atol=1e-5, rtol=1e-4
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("norm", ["LN", "RMS"])
def test_half_precision_sums_hold_to_the_dtypes_tolerance(tokens, dtype, norm):
    """In half precision the final norm's scale stays float32 (TransformerLens): attribution is
    computed in float32, and both sums hold to :func:`lib.env.tolerance` of the dtype."""
    model = random_model(norm, dtype=dtype)
    errors = residual.decomposition_errors(model, tokens)
    assert max(errors.values()) <= env.tolerance(dtype, 1e-4), errors
    b, p = torch.tensor([[0, 3], [1, 13], [2, 0], [2, 7]]).T
    correct, wrong = torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6, 7, 8])
    attr = residual.direct_logit_attribution(model, tokens, b, p, correct, wrong)
    assert attr.heads.dtype == attr.total.dtype == torch.float32
    assert ((attr.summed() - attr.total).abs().max() / attr.total.abs().max()) <= env.tolerance(dtype, 1e-3)
    exact = residual.direct_logit_attribution(random_model(norm), tokens, b, p, correct, wrong)
    torch.testing.assert_close(attr.heads, exact.heads, atol=0.05, rtol=0.05)


def test_dla_heads_match_tl_apply_ln_to_stack(tokens):
    """TransformerLens centres and divides by the final scale; its weights are folded (LNPre)."""
    model = random_model("LNPre", use_attn_result=True)
    correct, wrong = torch.tensor([3, 9, 11]), torch.tensor([4, 4, 2])
    b, p = torch.tensor([0, 1, 2]), torch.tensor([13, 13, 13])
    attr = residual.direct_logit_attribution(model, tokens, b, p, correct, wrong)
    _, cache = model.run_with_cache(tokens)
    stack, _ = cache.stack_head_results(layer=-1, return_labels=True, pos_slice=-1)  # [head, batch, d_model]
    scaled = cache.apply_ln_to_stack(stack, layer=-1, pos_slice=-1)
    directions = (model.W_U[:, correct] - model.W_U[:, wrong]).T  # [batch, d_model]
    expected = (scaled * directions).sum(-1).view(3, 4, 3)
    torch.testing.assert_close(attr.heads, expected, atol=1e-5, rtol=1e-4)


def test_mean_ablation_matches_one_hooked_run_per_component(tokens):
    model = random_model()
    target = tokens[:, 1:]

    def metric(logits):
        return -logits[:, :-1].log_softmax(-1).gather(-1, target[..., None])[..., 0].mean(-1)

    heads, mlps = residual.mean_ablation(model, tokens, metric)
    _, cache = model.run_with_cache(tokens)
    clean = metric(model(tokens)).mean()
    for layer in range(3):
        for head in range(4):

            def ablate_head(z, hook, head=head):
                z[:, :, head] = cache[hook.name][:, :, head].mean(0)  # the mean at each position
                return z

            out = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", ablate_head)])
            assert heads[layer, head].item() == pytest.approx((metric(out).mean() - clean).item(), abs=1e-5)

        def ablate_mlp(act, hook):
            return cache[hook.name].mean(0).expand_as(act)

        out = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.hook_mlp_out", ablate_mlp)])
        assert mlps[layer].item() == pytest.approx((metric(out).mean() - clean).item(), abs=1e-5)


def test_residual_norms_match_loop(tokens):
    model = random_model()
    norms = residual.residual_norms(model, tokens)
    _, cache = model.run_with_cache(tokens)
    stream = [cache["resid_pre", layer] for layer in range(3)] + [cache["resid_post", 2]]
    assert norms.shape == (4, *tokens.shape)
    for i, resid in enumerate(stream):
        for b in range(tokens.shape[0]):
            for p in range(tokens.shape[1]):
                assert norms[i, b, p].item() == pytest.approx(resid[b, p].norm().item(), rel=1e-5)


@pytest.fixture(scope="module")
def language_model(tmp_path_factory) -> HookedTransformer:
    tok = language.tokenizer(tmp_path_factory.mktemp("tok"))
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        n_ctx=64,
        d_vocab=len(language.VOCAB),
        act_fn="gelu_new",
        normalization_type="LN",
    )
    return HookedTransformer(cfg, tokenizer=tok).eval()


def test_agreement_prompts_are_grammatical_minimal_pairs(language_model):
    prompts = residual.agreement_prompts(language_model, 20, seed=3)
    assert len(prompts.texts) == 20 and prompts.clean.shape == prompts.corrupt.shape and prompts.paired.all()
    differ = prompts.clean != prompts.corrupt
    assert (differ.sum(1) == 1).all()  # only the subject noun changes ...
    changed = prompts.clean[differ]
    assert (language.OTHER_NUMBER[changed] == prompts.corrupt[differ]).all()  # ... to its other number
    assert (language.OTHER_NUMBER[prompts.correct] == prompts.wrong).all() and (
        prompts.correct != prompts.wrong
    ).all()
    rows = torch.arange(20)
    for prompt, right, other in (
        (prompts.clean, prompts.correct, prompts.wrong),
        (prompts.corrupt, prompts.wrong, prompts.correct),
    ):
        # the generator's distribution after the whole prompt (the answer appended is only scored)
        probs = language.true_next_token_probs(torch.cat([prompt, right[:, None]], 1))[:, -1]
        # the wrong form is ungrammatical; only the reading of the prompt as random words (prior
        # P_RANDOM_ROW, 1/|words| per word) leaves it any probability
        assert (probs[rows, right] > 0.01).all() and (probs[rows, other] < 1e-12).all()
    # attractor: the prepositional phrase's noun (the last word) has the other number than the subject
    singular = {
        sg
        for lex in (language.ANIMATE_NOUNS, language.THING_NOUNS)
        for pairs in lex.values()
        for sg, _ in pairs
    }
    for text, attractor in zip(prompts.texts, prompts.attractor.tolist()):
        words = text.split()  # there was a NOUN named NAME . the SUBJECT PREP the PLACE
        assert attractor == ((words[8] in singular) != (words[-1] in singular)), text


def test_language_tokens_and_metric(language_model):
    corpus = language.sample_corpus(0, 2, 40)
    assert language.speaks_language(language_model)
    assert torch.equal(residual.language_tokens(language_model, corpus), corpus.tokens)
    logits = torch.randn(3, 5, 7)
    metric = residual.logit_diff_metric(torch.tensor([1, 2, 3]), torch.tensor([0, 0, 6]))
    torch.testing.assert_close(
        metric(logits),
        torch.stack(
            [logits[i, -1, c] - logits[i, -1, w] for i, (c, w) in enumerate([(1, 0), (2, 0), (3, 6)])]
        ),
    )


@pytest.mark.parametrize("arch", ["neox", "qwen2"])
def test_text_starts_with_bos_for_models_run_without_one(checkpoints, arch):
    """TransformerLens runs Pythia and Qwen2 without a BOS (``default_prepend_bos=False``); the
    chapters' text and prompts start with one anyway (Qwen2's tokenizer has none: its end-of-text
    token stands in)."""
    model = models.load_model(str(checkpoints[arch]), "cpu")
    assert not model.cfg.default_prepend_bos
    bos = model.tokenizer.bos_token_id
    tokens = residual.language_tokens(model, language.sample_corpus(0, 3, 40))
    assert tokens.shape == (3, 40) and (tokens[:, 0] == bos).all() and (tokens[:, 1:] != bos).any()
    prompts = residual.agreement_prompts(model, 16, seed=0)
    assert (prompts.clean[:, 0] == bos).all() and (prompts.corrupt[:, 0] == bos).all()
    assert prompts.texts[0].startswith("there was") and model.to_str_tokens(prompts.clean[0])[1] == "there"


def test_chapter_runs_on_gpt2_small(offline_gpt2, tmp_path):
    out = book.execute(
        "residual_stream",
        tmp_path / "gpt2.ipynb",
        {
            "MODEL_NAME": "gpt2-small",
            "DEVICE": "cpu",
            "BATCH": 8,
            "N_CTX": 64,
            "N_PROMPTS": 60,
            "SEQ_LEN": 10,
            "REP_BATCH": 4,
        },
    )
    values = glued(nbformat.read(out, as_version=4))
    assert values["decomp_max_rel_err"] <= 1e-4 and values["dla_sum_rel_err"] <= 1e-3
    for kind in ("lens", "tuned"):
        agreement = values[f"{kind}_agreement_by_layer"]
        assert len(agreement) == 3 and agreement[-1] == 1.0 and all(0 <= v <= 1 for v in agreement)
    assert 0 < values["heldout_loss"] < 20 and "true_entropy" not in values and "name_copy_mass" not in values
    assert values["mlp_patch_max_loss_increase"] > -20 and values["mlp_patch_bos_first_pos"] > -20
    assert values["pos0_norm_ratio"] > 0 and values["n_prompts"] >= 1
    assert (
        values["n_pairs"] == 0 or -1 <= values["attrib_corr"] <= 1
    )  # no pairs where the tokenizer splits singular and plural differently


@pytest.mark.parametrize(
    "params, message",
    [
        ({"N_CTX": 1000}, r"N_CTX=1000 is not allowed; expected an integer in \[64, 128\]"),
        ({"SEQ_LEN": 64}, r"SEQ_LEN=64 is not allowed; expected an integer in \[10, 63\]"),
        ({"N_PROMPTS": 0}, r"N_PROMPTS=0 is not allowed; expected an integer in \[16, 256\]"),
        ({"BATCH": 4}, r"BATCH=4 is not allowed; expected an integer in \[8, 64\]"),
        ({"MODEL_NAME": "induction-2l"}, "MODEL_NAME='induction-2l' is attention-only"),
    ],
)
def test_bad_parameters_fail_fast_without_output(tmp_path, params, message):
    """Refused by the runner, or by the chapter's validation cell where the bound needs the model."""
    out = tmp_path / "out.ipynb"
    with pytest.raises(ValueError, match=message):
        book.execute("residual_stream", out, params)
    assert not list(tmp_path.iterdir())
