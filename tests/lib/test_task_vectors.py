"""lib.task_vectors: every routine against a slow, obviously correct reference (one hooked forward
pass per prompt, per layer, per head) on small random models: learned positions with LayerNorm
and perturbed biases, grouped-query attention with rotary positions, and half precision."""

from types import SimpleNamespace

import pytest
import torch
from random_models import random_model
from transformer_lens.utilities import get_act_name

from lib import task_vectors as tv

KINDS = {
    "learned-positions-biases": {},
    "rotary-gqa": dict(
        normalization_type="RMS",
        positional_embedding_type="rotary",
        n_key_value_heads=2,
        gated_mlp=True,
        act_fn="silu",
    ),
}
BATCH, POS = 4, 7
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(autouse=True, scope="module")
def single_threaded_no_grad(one_thread):
    with torch.no_grad():
        yield


@pytest.fixture(params=list(KINDS), scope="module")
def model(request):
    return random_model(**KINDS[request.param])


def prompts(model, seed: int = 0, batch: int = BATCH, pos: int = POS) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(model.cfg.d_vocab, (batch, pos), generator=g)


def last_logits(model, row: torch.Tensor, hooks=()) -> torch.Tensor:
    """One prompt alone, every position unembedded; the last position's logits, float32."""
    return model.run_with_hooks(row[None], fwd_hooks=list(hooks))[0, -1].float()


def edit_reference(model, tokens, layers, vectors, add: bool) -> torch.Tensor:
    """One forward pass per (layer, prompt), the last position's resid_post edited in a hook."""
    out = torch.empty(len(layers), len(tokens), model.cfg.d_vocab)
    for i, layer in enumerate(layers):
        for b, row in enumerate(tokens):

            def hook(act, hook, v=vectors[i, b]):
                act = act.clone()
                act[:, -1] = act[:, -1] + v if add else v
                return act

            out[i, b] = last_logits(model, row, [(get_act_name("resid_post", layer), hook)])
    return out


def test_last_residuals_is_each_prompts_cached_resid_post(model):
    tokens = prompts(model)
    got = tv.last_residuals(model, tokens)
    expected = torch.empty(model.cfg.n_layers, BATCH, model.cfg.d_model)
    for b, row in enumerate(tokens):
        _, cache = model.run_with_cache(row[None])
        for layer in range(model.cfg.n_layers):
            expected[layer, b] = cache[get_act_name("resid_post", layer)][0, -1]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, **TOL)


def test_patch_residual_and_add_at_layer_equal_one_hooked_pass_per_layer_and_prompt(model):
    tokens = prompts(model, seed=1)
    g = torch.Generator().manual_seed(2)
    layers = [2, 0, 1]
    per_row = torch.randn(len(layers), BATCH, model.cfg.d_model, generator=g)
    unpatched = torch.stack([last_logits(model, row) for row in tokens])
    for add, fn in [(False, tv.patch_residual), (True, tv.add_at_layer)]:
        expected = edit_reference(model, tokens, layers, per_row, add)
        got = fn(model, tokens, layers, per_row)
        assert got.shape == (len(layers), BATCH, model.cfg.d_vocab) and got.dtype == torch.float32
        torch.testing.assert_close(got, expected, **TOL)
        assert (got - unpatched).abs().amax(-1).min() > 1e-3  # every edit changed every prompt
        # one layer per forward pass: the same numbers
        torch.testing.assert_close(fn(model, tokens, layers, per_row, memory_budget=1), expected, **TOL)
        # one vector per layer [layer, d_model], and one for everything [d_model]
        torch.testing.assert_close(
            fn(model, tokens, layers, per_row[:, 0]),
            edit_reference(model, tokens, layers, per_row[:, :1].expand(-1, BATCH, -1), add),
            **TOL,
        )
        torch.testing.assert_close(
            fn(model, tokens, [1], per_row[0, 0]),
            edit_reference(model, tokens, [1], per_row[:1, :1].expand(-1, BATCH, -1), add),
            **TOL,
        )
    # patching each layer's own residual changes nothing; adding zero neither
    own = tv.last_residuals(model, tokens)
    torch.testing.assert_close(
        tv.patch_residual(model, tokens, None, own), unpatched.expand(3, -1, -1), **TOL
    )
    torch.testing.assert_close(
        tv.add_at_layer(model, tokens, [-1], torch.zeros(model.cfg.d_model)), unpatched[None], **TOL
    )


def test_left_padded_prompts_equal_each_prompt_alone(model):
    """With a left-padding tokenizer TransformerLens masks the pad tokens; the edited last
    position must see the same prompt as the prompt alone, unpadded."""
    tokens = prompts(model, seed=3).clamp(min=1)
    tokens[0, :3] = 0  # prompt 0 is three tokens shorter
    g = torch.Generator().manual_seed(4)
    vectors = torch.randn(model.cfg.n_layers, BATCH, model.cfg.d_model, generator=g)
    model.tokenizer = SimpleNamespace(padding_side="left", pad_token_id=0, bos_token_id=1)
    try:
        got = tv.add_at_layer(model, tokens, None, vectors)
    finally:
        model.tokenizer = None
    alone = tv.add_at_layer(model, tokens[:1, 3:], None, vectors[:, :1])
    torch.testing.assert_close(got[:, :1], alone, **TOL)
    torch.testing.assert_close(got[:, 1:], tv.add_at_layer(model, tokens[1:], None, vectors[:, 1:]), **TOL)


def test_mean_head_outputs_is_the_mean_of_each_prompts_last_z(model):
    tokens = prompts(model, seed=5)
    expected = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head)
    for row in tokens:
        _, cache = model.run_with_cache(row[None])
        for layer in range(model.cfg.n_layers):
            expected[layer] += cache[get_act_name("z", layer)][0, -1] / BATCH
    got = tv.mean_head_outputs(model, tokens)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, **TOL)


def indirect_effects_reference(model, tokens, answers, mean_z) -> torch.Tensor:
    """Todd et al.'s loop: per prompt and head, one forward pass with that head's last-position z
    replaced by its mean; the gain in probability of the answer over the unpatched pass."""
    cfg = model.cfg
    out = torch.zeros(cfg.n_layers, cfg.n_heads, len(tokens))
    for b, row in enumerate(tokens):
        clean = last_logits(model, row).softmax(-1)[answers[b]]
        for layer in range(cfg.n_layers):
            for head in range(cfg.n_heads):

                def hook(z, hook, head=head, layer=layer):
                    z = z.clone()
                    z[:, -1, head] = mean_z[layer, head].to(z.dtype)
                    return z

                patched = last_logits(model, row, [(get_act_name("z", layer), hook)]).softmax(-1)[answers[b]]
                out[layer, head, b] = patched - clean
    return out


def test_indirect_effects_equal_one_pass_per_prompt_and_head(model):
    mean_z = tv.mean_head_outputs(model, prompts(model, seed=6, batch=6))
    tokens = prompts(model, seed=7)
    answers = prompts(model, seed=8, batch=1, pos=BATCH)[0]
    expected = indirect_effects_reference(model, tokens, answers, mean_z)
    per_prompt = tv.indirect_effects(model, tokens, answers, mean_z, per_prompt=True)
    assert per_prompt.shape == (model.cfg.n_layers, model.cfg.n_heads, BATCH)
    torch.testing.assert_close(per_prompt, expected, **TOL)
    got = tv.indirect_effects(model, tokens, answers, mean_z)
    assert got.dtype == torch.float32 and got.shape == (model.cfg.n_layers, model.cfg.n_heads)
    torch.testing.assert_close(got, expected.mean(-1), **TOL)
    assert got.abs().max() > 1e-4  # the patches did something


def function_vector_reference(model, mean_z, heads) -> torch.Tensor:
    """Each head's contribution read off the model itself: its layer's attention output at the
    last position when every other head of the layer is silent and this one outputs its mean
    z, minus the bias b_O; summed over the heads."""
    total = torch.zeros(model.cfg.d_model)
    tokens = prompts(model, seed=9, batch=1)
    for layer, head in heads:

        def only(z, hook, layer=layer, head=head):
            z = torch.zeros_like(z)
            z[:, -1, head] = mean_z[layer, head]
            return z

        with model.hooks(fwd_hooks=[(get_act_name("z", layer), only)]):
            _, cache = model.run_with_cache(tokens, names_filter=get_act_name("attn_out", layer))
        total += cache[get_act_name("attn_out", layer)][0, -1] - model.blocks[layer].attn.b_O
    return total


def test_function_vector_sums_the_heads_outputs_without_b_O(model):
    mean_z = tv.mean_head_outputs(model, prompts(model, seed=10))
    heads = [(2, 3), (0, 1), (2, 0)]
    expected = function_vector_reference(model, mean_z, heads)
    got = tv.function_vector(model, mean_z, heads)
    assert got.dtype == torch.float32 and got.shape == (model.cfg.d_model,)
    torch.testing.assert_close(got, expected, **TOL)
    torch.testing.assert_close(tv.function_vector(model, mean_z, torch.tensor(heads)), expected, **TOL)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_give_float32_means_and_effects(dtype):
    model = random_model(dtype=dtype, **KINDS["rotary-gqa"])
    tokens = prompts(model, seed=11)
    mean_z = tv.mean_head_outputs(model, tokens)
    _, cache = model.run_with_cache(tokens)
    expected = torch.stack(
        [cache[get_act_name("z", layer)][:, -1].float().mean(0) for layer in range(model.cfg.n_layers)]
    )
    assert mean_z.dtype == torch.float32
    torch.testing.assert_close(mean_z, expected, atol=1e-6, rtol=1e-5)  # summed in float32
    answers = torch.arange(BATCH)
    effects = tv.indirect_effects(model, tokens, answers, mean_z)
    assert effects.dtype == torch.float32
    reference = indirect_effects_reference(model, tokens, answers, mean_z).mean(-1)
    torch.testing.assert_close(effects, reference, atol=2e-3, rtol=0)  # half-precision rounding
    fv = tv.function_vector(model, mean_z, [(1, 1), (2, 3)])
    logits = tv.add_at_layer(model, tokens, None, fv)
    assert fv.dtype == logits.dtype == torch.float32 and logits.isfinite().all()


def test_bad_input_is_refused_before_any_forward_pass():
    model = random_model()
    cfg = model.cfg
    tokens = prompts(model)
    mean_z = torch.zeros(cfg.n_layers, cfg.n_heads, cfg.d_head)
    answers = torch.zeros(BATCH, dtype=torch.long)
    v = torch.zeros(cfg.d_model)

    def boom(x, hook):
        raise AssertionError("a forward pass ran before the input was checked")

    cases = [
        (lambda: tv.patch_residual(model, tokens, [3], v), r"layers must lie in \[0, 3\)"),
        (lambda: tv.add_at_layer(model, tokens, [0, 0], v), "duplicates"),
        (
            lambda: tv.patch_residual(model, tokens, [0, 1], torch.zeros(3, cfg.d_model)),
            "vectors must have shape",
        ),
        (
            lambda: tv.add_at_layer(model, tokens, None, torch.zeros(3, 2, cfg.d_model)),
            "vectors must have shape",
        ),
        (lambda: tv.last_residuals(model, tokens.float()), "integer token ids"),
        (lambda: tv.last_residuals(model, torch.full((1, 3), cfg.d_vocab)), "token ids must lie"),
        (lambda: tv.mean_head_outputs(model, torch.zeros(1, cfg.n_ctx + 1, dtype=torch.long)), "n_ctx"),
        (lambda: tv.indirect_effects(model, tokens, answers[:2], mean_z), "answers must be one token id"),
        (
            lambda: tv.indirect_effects(model, tokens, answers + cfg.d_vocab, mean_z),
            "answers must be token ids",
        ),
        (lambda: tv.indirect_effects(model, tokens, answers, mean_z[:, :2]), "mean_z must be"),
        (lambda: tv.function_vector(model, mean_z[1:], [(0, 0)]), "mean_z must be"),
        (lambda: tv.function_vector(model, mean_z, [(0, cfg.n_heads)]), "head in"),
        (lambda: tv.function_vector(model, mean_z, [(cfg.n_layers, 0)]), "layer in"),
        (lambda: tv.function_vector(model, mean_z, [(0, 1), (0, 1)]), "duplicates"),
        (lambda: tv.function_vector(model, mean_z, []), "non-empty"),
        (lambda: tv.add_at_layer(model, tokens, None, v, memory_budget=0), "memory_budget"),
    ]
    with model.hooks(fwd_hooks=[("hook_embed", boom)]):
        for call, message in cases:
            with pytest.raises(ValueError, match=message):
                call()
