"""lib.directions: every routine against a slow, obviously correct reference on small random
models (learned positions with LayerNorm, and grouped-query attention with rotary positions) and
random left-padded prompts."""

import math

import pytest
import torch
from generation_cases import chat_tokenizer, padded, ragged, random_model
from transformer_lens.utilities import get_act_name

from benchmarks.directions import select_direction_loop
from lib import directions
from lib.generation import Prompts

KINDS = {"learned-positions": False, "rotary-gqa": True}
REFUSAL_IDS = [3, 7]


@pytest.fixture(params=list(KINDS), scope="module")
def model(request):
    return random_model(KINDS[request.param], n_layers=3)


def prompt_sets(seed: int = 0) -> tuple[Prompts, Prompts]:
    return padded(ragged([5, 7, 6, 7], seed=seed)), padded(ragged([6, 4, 7, 5, 6], seed=seed + 1))


def last_logits_reference(model, prompts: Prompts, hooks=()) -> torch.Tensor:
    """Each prompt alone, unpadded, all positions unembedded."""
    rows = []
    for tokens, mask in zip(prompts.tokens, prompts.mask):
        rows.append(model.run_with_hooks(tokens[mask.bool()][None], fwd_hooks=list(hooks))[0, -1])
    return torch.stack(rows)


def test_last_logits_is_each_prompt_alone(model):
    harmful, _ = prompt_sets()
    torch.testing.assert_close(
        directions.last_logits(model, harmful), last_logits_reference(model, harmful), atol=1e-5, rtol=1e-5
    )


def test_mean_diff_is_the_float64_difference_of_per_prompt_means(model):
    harmful, harmless = prompt_sets()
    n_pos = 3
    got = directions.mean_diff(model, harmful, harmless, n_pos, memory_budget=1)  # one prompt a pass

    def mean(prompts: Prompts) -> torch.Tensor:
        total = torch.zeros(n_pos, model.cfg.n_layers, model.cfg.d_model, dtype=torch.float64)
        for tokens, mask in zip(prompts.tokens, prompts.mask):
            _, cache = model.run_with_cache(tokens[mask.bool()][None])
            for layer in range(model.cfg.n_layers):
                total[:, layer] += cache[get_act_name("resid_pre", layer)][0, -n_pos:].double()
        return total / len(prompts)

    assert got.dtype == torch.float64 and got.shape == (n_pos, model.cfg.n_layers, model.cfg.d_model)
    torch.testing.assert_close(got, mean(harmful) - mean(harmless), atol=1e-5, rtol=1e-5)


def test_refusal_score_and_kl_are_the_reference_formulas():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 20, generator=g), torch.randn(4, 20, generator=g)
    p = a.softmax(-1)[:, REFUSAL_IDS].sum(-1).double()
    torch.testing.assert_close(
        directions.refusal_score(a, REFUSAL_IDS), torch.log(p + 1e-8) - torch.log(1 - p + 1e-8)
    )
    kl = torch.nn.functional.kl_div(b.log_softmax(-1), a.log_softmax(-1), log_target=True, reduction="none")
    torch.testing.assert_close(directions.kl_last(a, b), kl.sum(-1).double(), atol=1e-5, rtol=1e-4)
    assert directions.kl_last(a, a).abs().max() < 1e-6
    assert directions.is_refusal("Sure. I'm sorry, but") and not directions.is_refusal("Sure, here it is")
    assert directions.is_refusal("sorry , i cannot", ["cannot"])


def test_ablation_removes_the_direction_everywhere_and_rows_take_their_own(model):
    harmful, _ = prompt_sets()
    g = torch.Generator().manual_seed(3)
    dirs = torch.randn(len(harmful), model.cfg.d_model, generator=g)
    # one direction per row, in one pass, against each row run alone with its own direction
    batched = directions.last_logits(model, harmful, directions.ablation_hooks(model, dirs))
    for i in range(len(harmful)):
        alone = last_logits_reference(model, harmful[i : i + 1], directions.ablation_hooks(model, dirs[i]))
        torch.testing.assert_close(batched[i], alone[0], atol=1e-5, rtol=1e-5)
    assert (batched - directions.last_logits(model, harmful)).abs().max() > 1e-3, "ablation changes logits"
    # what reaches the final norm has no component along the direction
    seen = {}
    final = get_act_name("resid_post", model.cfg.n_layers - 1)
    hooks = directions.ablation_hooks(model, dirs[0]) + [(final, lambda x, hook: seen.update(x=x))]
    model.run_with_hooks(harmful.tokens, attention_mask=harmful.mask, fwd_hooks=hooks)
    assert (seen["x"] @ (dirs[0] / dirs[0].norm())).abs().max() < 1e-4


def test_addition_per_row_and_at_other_sites(model):
    _, harmless = prompt_sets()
    g = torch.Generator().manual_seed(4)
    vecs = torch.randn(len(harmless), model.cfg.d_model, generator=g)
    batched = directions.last_logits(model, harmless, directions.addition_hooks(vecs, 1, -2.0))
    for i in range(len(harmless)):

        def add(x, hook, v=vecs[i]):
            return x - 2.0 * v

        alone = last_logits_reference(model, harmless[i : i + 1], [(get_act_name("resid_pre", 1), add)])
        torch.testing.assert_close(batched[i], alone[0], atol=1e-5, rtol=1e-5)
    post = directions.last_logits(model, harmless, directions.addition_hooks(vecs[0], 0, site="resid_post"))
    pre = directions.last_logits(model, harmless, directions.addition_hooks(vecs[0], 1))
    torch.testing.assert_close(post, pre, atol=1e-5, rtol=1e-5)


def test_head_outputs_are_the_heads_results_summed(model):
    harmful, _ = prompt_sets()
    heads = [(0, 1), (2, 3), (2, 0)]
    got = directions.head_outputs(model, harmful, heads, memory_budget=1)
    model.set_use_attn_result(True)
    try:
        want = []
        for tokens, mask in zip(harmful.tokens, harmful.mask):
            _, cache = model.run_with_cache(tokens[mask.bool()][None])
            want.append(sum(cache[get_act_name("result", layer)][0, -1, head] for layer, head in heads))
    finally:
        model.set_use_attn_result(False)
    torch.testing.assert_close(got, torch.stack(want), atol=1e-5, rtol=1e-5)


def test_filters_are_the_references():
    n_layer = 5  # int(5 * 0.8) = 4: layer 4 is pruned
    ablation = torch.zeros(2, n_layer, dtype=torch.float64)
    steering, kl = torch.ones_like(ablation), torch.zeros_like(ablation)
    steering[0, 1], kl[0, 2], ablation[1, 0], kl[1, 1] = -0.5, 0.2, math.nan, 0.1
    ok = directions.filter_candidates(ablation, steering, kl)
    assert ok.tolist() == [[True, False, False, True, False], [False, True, True, True, False]]


@pytest.mark.parametrize("kl_threshold", [0.1, math.inf])
def test_batched_selection_is_the_reference_loop(model, kl_threshold):
    """Same three scores for every candidate and the same winner as one pass per candidate and
    per score; a small memory budget splits the candidates over several passes."""
    train_harmful, train_harmless = prompt_sets(10)
    harmful, harmless = prompt_sets(20)
    candidates = directions.mean_diff(model, train_harmful, train_harmless, 2)
    kwargs = dict(kl_threshold=kl_threshold, steering_threshold=-math.inf)
    loop = select_direction_loop(model, candidates, harmful, harmless, REFUSAL_IDS, **kwargs)
    for budget in (directions.DEFAULT_MEMORY_BUDGET, 30_000):
        got = directions.select_direction(
            model, candidates, harmful, harmless, REFUSAL_IDS, memory_budget=budget, **kwargs
        )
        for key in ("ablation", "steering", "kl"):
            torch.testing.assert_close(getattr(got, key), getattr(loop, key), atol=1e-5, rtol=1e-5)
        assert torch.equal(got.eligible, loop.eligible)
        assert (got.pos, got.layer) == (loop.pos, loop.layer) and -2 <= got.pos < 0 and got.passed
        assert got.layer < int(model.cfg.n_layers * 0.8)
        torch.testing.assert_close(got.direction, candidates[got.pos, got.layer])


def test_selection_without_survivors_says_why(model):
    harmful, harmless = prompt_sets()
    candidates = directions.mean_diff(model, harmful, harmless, 1)
    with pytest.raises(ValueError, match="no candidate direction passes the filters"):
        directions.select_direction(model, candidates, harmful, harmless, REFUSAL_IDS, steering_threshold=1e9)
    loose = directions.select_direction(
        model, candidates, harmful, harmless, REFUSAL_IDS, steering_threshold=1e9, strict=False
    )
    assert not loose.passed and not loose.eligible.any() and loose.layer < int(0.8 * model.cfg.n_layers)
    assert loose.ablation[0, loose.layer] == loose.ablation[0, : int(0.8 * model.cfg.n_layers)].min()


def test_orthogonalized_weights_match_the_hooks(model):
    """Folding the ablation into the weights gives the hooked ablation's logits; with learned
    positions that needs the positional embedding projected too."""
    harmful, _ = prompt_sets()
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(5))
    hooked = directions.last_logits(model, harmful, directions.ablation_hooks(model, direction))
    edited = random_model(model.cfg.positional_embedding_type == "rotary", n_layers=3)
    edited.load_state_dict(model.state_dict())
    directions.orthogonalize_weights(edited, direction)
    assert (directions.last_logits(edited, harmful) - hooked).abs().max() < 1e-4
    if model.cfg.positional_embedding_type == "standard":
        edited.pos_embed.W_pos.data.copy_(model.pos_embed.W_pos)
        assert (directions.last_logits(edited, harmful) - hooked).abs().max() > 1e-3


def test_orthogonalization_refuses_post_norm_models():
    gemma2_like = random_model(True, use_normalization_before_and_after=True)
    with pytest.raises(ValueError, match="normalises attention and MLP outputs after W_O"):
        directions.orthogonalize_weights(gemma2_like, torch.ones(gemma2_like.cfg.d_model))


def test_refusal_tokens_default_per_tokenizer(tmp_path):
    """The organism refuses with ``sorry`` and complies with ``sure``; a real chat model gets the
    reference's ``I`` (``I,As`` for Qwen) and the source post's ``Sure``; the words given are
    read as the first token of each."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from lib import language

    sizes = dict(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=16, act_fn="gelu")
    organism = HookedTransformer(
        HookedTransformerConfig(**sizes, d_vocab=len(language.VOCAB)),
        tokenizer=language.tokenizer(tmp_path / "t"),
    )
    refusal, comply, phrases = directions.default_refusal_words(organism)
    assert directions.first_token_ids(organism, refusal) == [language.ID["sorry"]]
    assert directions.first_token_ids(organism, comply) == [language.ID["sure"]]
    assert directions.is_refusal("sorry , i cannot help with that .", phrases)
    chat = HookedTransformer(
        HookedTransformerConfig(**sizes, d_vocab=300, model_name="Qwen-1_8B-Chat"),
        tokenizer=chat_tokenizer(tmp_path / "c"),
    )
    refusal, comply, phrases = directions.default_refusal_words(chat)
    assert (refusal, comply, phrases) == ("I,As", "Sure", directions.REFUSAL_PHRASES)
    ids = directions.first_token_ids(chat, "I, As")
    assert chat.tokenizer.decode([ids[0]]) == "I" and "As".startswith(chat.tokenizer.decode([ids[1]]))
    with pytest.raises(ValueError, match="is no token of"):
        directions.first_token_ids(chat, "I,")
