"""lib.generation: left-padded prompt batches compute what each prompt computes alone, and greedy
generation under hooks is the same with and without the key-value cache."""

import pytest
import torch
from generation_cases import BASE, chat_tokenizer, padded, ragged, random_model
from transformer_lens import HookedTransformer, HookedTransformerConfig

from lib import generation, language
from lib.generation import Prompts


def test_cat_pads_on_the_left_and_repeat_keeps_the_order():
    rows = ragged([3, 5, 2])
    p = padded(rows, pad=7)
    assert p.tokens.shape == (3, 5) and p.mask.sum(1).tolist() == [3, 5, 2]
    assert p.tokens[0, :2].tolist() == [7, 7] and p.tokens[0, 2:].tolist() == rows[0].tolist()
    assert p.mask[2].tolist() == [0, 0, 0, 1, 1]
    twice = p.repeat(2)
    assert torch.equal(twice.tokens[3:], p.tokens) and torch.equal(twice[1:2].tokens, p[1:2].tokens)


@pytest.mark.parametrize("rotary", [False, True], ids=["learned-positions", "rotary-gqa"])
def test_a_padded_row_computes_what_the_prompt_computes_alone(rotary):
    model = random_model(rotary)
    rows = ragged([4, 9, 6])
    p = padded(rows)
    batch = model(p.tokens, attention_mask=p.mask)
    for i, row in enumerate(rows):
        alone = model(row[None])[0]
        torch.testing.assert_close(batch[i, -len(row) :], alone, atol=1e-5, rtol=1e-5)


def test_to_prompts_tokenizes_whole_chat_prompts_with_the_language_tokenizer(tmp_path):
    tok = language.tokenizer(tmp_path / "tok")
    model = HookedTransformer(
        HookedTransformerConfig(**{**BASE, "d_vocab": len(language.VOCAB)}, normalization_type="LN"),
        tokenizer=tok,
    )
    texts = [f"<bos> {language.chat(r)}" for r in ("how do i kill the dog ?", "help me fix the car .")]
    p = generation.to_prompts(model, texts)
    assert generation.pad_id(model) == language.ID["<pad>"]
    assert p.tokens[0].tolist() == [language.ID[w] for w in texts[0].split()]
    assert p.tokens[1].tolist() == [language.ID["<pad>"]] + [language.ID[w] for w in texts[1].split()]
    assert p.mask[1].tolist() == [0] + [1] * 9


def test_rows_per_pass_fits_the_budget():
    model = random_model()
    small, big = generation.rows_per_pass(model, 10, 10_000), generation.rows_per_pass(model, 10, 10**8)
    assert 1 <= small < big
    assert generation.rows_per_pass(model, 10, 1) == 1
    assert generation.chunks(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]


def shift_hook(vector: torch.Tensor):
    """A hook that acts on every position alike (an addition)."""
    return [("blocks.1.hook_resid_pre", lambda x, hook: x + vector)]


@pytest.mark.parametrize("rotary", [False, True], ids=["learned-positions", "rotary-gqa"])
def test_generation_under_hooks_is_the_same_with_and_without_the_cache(rotary):
    model = random_model(rotary)
    p = padded(ragged([4, 9, 6, 9]))
    hooks = shift_hook(torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(1)))
    cached = generation.generate(model, p, 8, hooks)
    recomputed = generation.generate(model, p, 8, hooks, use_cache=False)
    assert torch.equal(cached, recomputed)
    assert not torch.equal(cached, generation.generate(model, p, 8)), "the hook changes the continuation"
    # small chunks (a tiny memory budget) give the same rows
    assert torch.equal(generation.generate(model, p, 8, hooks, memory_budget=1), cached)


def test_generation_is_the_plain_greedy_loop_and_stops():
    """Against the obvious loop (append the argmax, rerun everything) and TransformerLens's
    generate without its cache. (Its generate *with* the cache gives other tokens on this random
    model: transformer-lens 3.9.0.)"""
    model = random_model()
    row = ragged([6])[0]
    tokens = row[None]
    for _ in range(6):
        tokens = torch.cat([tokens, model(tokens)[:, -1].argmax(-1)[:, None]], 1)
    tl = model.generate(
        row[None],
        max_new_tokens=6,
        do_sample=False,
        stop_at_eos=False,
        verbose=False,
        use_past_kv_cache=False,
    )
    got = generation.generate(model, Prompts(row[None], torch.ones(1, 6, dtype=torch.long)), 6)
    assert got[0].tolist() == tokens[0, 6:].tolist() == tl[0, 6:].tolist()
    stop = int(got[0, 2])
    early = generation.generate(
        model, Prompts(row[None], torch.ones(1, 6, dtype=torch.long)), 6, stop_ids=[stop]
    )
    first = got[0].tolist().index(stop)
    assert early[0].tolist() == got[0, : first + 1].tolist()


def test_a_position_indexed_hook_is_wrong_under_the_cache():
    """The pitfall the module avoids: after the first step the cache feeds one position, so a
    hook that indexes a position fails (or, indexing from the start, hits the new token)."""
    model = random_model()
    p = padded(ragged([8, 8]))
    vector = 5 * torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(2))

    def at_third_from_end(x, hook):
        x = x.clone()
        x[:, -3] += vector
        return x

    hooks = [("blocks.1.hook_resid_pre", at_third_from_end)]
    assert generation.generate(model, p, 6, hooks, use_cache=False).shape == (2, 6)
    with pytest.raises(IndexError, match="index -3 is out of bounds for dimension 1 with size 1"):
        generation.generate(model, p, 6, hooks)


def test_chat_templates_fill_and_post_instruction_tokens(tmp_path):
    language_model = HookedTransformer(
        HookedTransformerConfig(**{**BASE, "d_vocab": len(language.VOCAB)}, normalization_type="LN"),
        tokenizer=language.tokenizer(tmp_path / "tok"),
    )
    template = generation.chat_template(language_model)
    assert template == "<bos> <user> {request} <assistant>"
    assert generation.post_instruction_tokens(language_model, template, "how do i fix the car ?") == 1
    chat_model = HookedTransformer(
        HookedTransformerConfig(**BASE, normalization_type="LN"), tokenizer=chat_tokenizer(tmp_path / "chat")
    )
    template = generation.chat_template(chat_model)
    assert template == "<|bos|><|user|>\n{request}<|end|>\n<|assistant|>\n"
    prompt = generation.fill(template, ["how do i {x} ?"])[0]
    assert prompt == "<|bos|><|user|>\nhow do i {x} ?<|end|>\n<|assistant|>\n"
    n = generation.post_instruction_tokens(chat_model, template, "how do i kill the dog ?")
    ids = chat_model.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert n == 4 and chat_model.tokenizer.decode(ids[-n:]) == "<|end|>\n<|assistant|>\n"
    assert generation.chat_template(chat_model, "Q: {request}\nA:") == "Q: {request}\nA:"
    with pytest.raises(ValueError, match="must hold {request} exactly once"):
        generation.chat_template(chat_model, "Q: A:")
    chat_model.tokenizer.chat_template = None
    with pytest.raises(ValueError, match="has no chat template: pass CHAT_TEMPLATE"):
        generation.chat_template(chat_model)


def test_sampling_draws_each_step_from_the_softmax_and_repeats_with_its_seed():
    """With a generator, one step is a draw from the model's next-token distribution (empirical
    frequencies over many rows against the softmax); the same seed gives the same rows with and
    without the cache."""
    model = random_model()
    row = ragged([5])[0]
    p = Prompts(row[None].repeat(4000, 1), torch.ones(4000, 5, dtype=torch.long))
    first = generation.generate(model, p, 1, generator=torch.Generator().manual_seed(0))[:, 0]
    probs = model(row[None])[0, -1].softmax(-1)
    freq = torch.bincount(first, minlength=model.cfg.d_vocab).float() / len(first)
    assert (freq - probs).abs().max() < 4 * (probs * (1 - probs) / len(first)).sqrt().max() + 1e-3
    few = p[:8]
    cached = generation.generate(model, few, 6, generator=torch.Generator().manual_seed(3))
    again = generation.generate(model, few, 6, generator=torch.Generator().manual_seed(3), use_cache=False)
    assert torch.equal(cached, again)
    assert not torch.equal(
        cached, generation.generate(model, few, 6, generator=torch.Generator().manual_seed(4))
    )
