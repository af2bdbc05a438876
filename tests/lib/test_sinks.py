"""lib.sinks and the attention-sink scores of lib.attention against slow, obviously correct
references: per-head, per-position Python loops over a full cache, and window attention against
running each truncated window on its own; then the chapter itself, on the offline tiny GPT-2 and
with bad parameters."""

import nbformat
import pytest
import torch
from offline_hf import glued
from random_models import random_model
from transformer_lens import HookedTransformer

from lib import book, language, residual, sinks


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    return random_model(perturb=0.0, n_layers=2, n_ctx=40, d_vocab=20)


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, 20, (3, 24), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def cache(model, tokens):
    return model.run_with_cache(tokens)[1]


def test_first_token_mass_matches_loop(model, tokens, cache):
    queries = torch.rand(tokens.shape, generator=torch.Generator().manual_seed(2)) > 0.5
    fast = sinks.first_token_mass(model, tokens, queries)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            masses = [
                cache["pattern", layer][b, head, q, 0].item()
                for b in range(tokens.shape[0])
                for q in range(tokens.shape[1])
                if queries[b, q]
            ]
            assert fast[layer, head].item() == pytest.approx(sum(masses) / len(masses), abs=1e-5)


def test_token_importance_and_sink_rate_match_loop(model, tokens, cache):
    fast = sinks.token_importance(model, tokens)
    n = tokens.shape[1]
    expected = torch.zeros_like(fast)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            for k in range(n):
                received = [
                    cache["pattern", layer][b, head, i, k].item()
                    for b in range(tokens.shape[0])
                    for i in range(k, n)
                ]
                expected[layer, head, k] = sum(received) / len(received)
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=0)
    for threshold in (0.05, 0.1, 0.3):
        count = sum(expected[l, h, 0].item() > threshold for l in range(2) for h in range(4))
        assert sinks.sink_rate(fast, threshold) == pytest.approx(100 * count / 8)


def test_value_and_output_norms_match_loop(model, tokens, cache):
    values, outputs = sinks.value_norms(model, tokens), sinks.head_output_norms(model, tokens)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            for pos in range(tokens.shape[1]):
                v = [cache["v", layer][b, pos, head].norm().item() for b in range(tokens.shape[0])]
                out = [
                    (cache["z", layer][b, pos, head] @ model.W_O[layer, head]).norm().item()
                    for b in range(tokens.shape[0])
                ]
                assert values[layer, head, pos].item() == pytest.approx(sum(v) / len(v), abs=1e-5)
                assert outputs[layer, head, pos].item() == pytest.approx(sum(out) / len(out), abs=1e-5)


def test_value_norms_under_grouped_query_attention(tokens):
    """With 2 key/value heads for 4 query heads, each query head reads the value head of its group
    (consecutive query heads share one): recomputed head by head from the grouped weights, and
    checked to be what the head's output ``z = pattern . v`` is made of."""
    model = random_model("RMS", n_layers=2, n_ctx=40, d_vocab=20, n_key_value_heads=2, gated_mlp=True)
    _, cache = model.run_with_cache(tokens)
    assert cache["v", 0].shape[2] == 2  # hook_v holds the key/value heads, not one per query head
    norms = sinks.value_norms(model, tokens)
    for layer in range(model.cfg.n_layers):
        attn, normed = model.blocks[layer].attn, model.blocks[layer].ln1(cache["resid_pre", layer])
        for head in range(model.cfg.n_heads):
            v = normed @ attn._W_V[head // 2] + attn._b_V[head // 2]
            z = torch.einsum("bqk,bke->bqe", cache["pattern", layer][:, head], v)
            torch.testing.assert_close(z, cache["z", layer][:, :, head], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(norms[layer, head], v.norm(dim=-1).mean(0), atol=1e-5, rtol=1e-4)


def test_head_output_spread_matches_loop(model, tokens, cache):
    queries = torch.rand(tokens.shape, generator=torch.Generator().manual_seed(5)) > 0.3
    fast = sinks.head_output_spread(model, tokens, queries)
    picked = [(b, q) for b in range(tokens.shape[0]) for q in range(tokens.shape[1]) if queries[b, q]]
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            outs = [cache["z", layer][b, q, head] @ model.W_O[layer, head] for b, q in picked]
            mean = sum(outs) / len(outs)
            expected = sum((o - mean).norm().item() for o in outs) / sum(o.norm().item() for o in outs)
            assert fast[layer, head].item() == pytest.approx(expected, abs=1e-5)


def test_massive_activations_match_loop(model, tokens, cache):
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(2)] + ["blocks.1.hook_resid_post"]
    assert residual.residual_names(model) == names
    massive = sinks.massive_activations(model, tokens, top=4)
    for point, name in enumerate(names):
        resid = cache[name]
        entries = sorted(
            (
                (abs(resid[b, p, d].item()), p, d)
                for b in range(resid.shape[0])
                for p in range(resid.shape[1])
                for d in range(resid.shape[2])
            ),
            reverse=True,
        )
        for rank, (value, pos, dim) in enumerate(entries[:4]):
            assert massive["value"][point, rank].item() == pytest.approx(value, abs=1e-5)
            assert (massive["position"][point, rank].item(), massive["dim"][point, rank].item()) == (pos, dim)
        assert massive["median"][point].item() == pytest.approx(
            resid.abs().flatten().median().item(), abs=1e-6
        )


def test_window_mask_matches_definition():
    mask = sinks.window_mask(12, 4, 2)
    for dest in range(12):
        for src in range(12):
            assert mask[dest, src].item() == (src <= dest and (dest - src < 4 or src < 2))


@pytest.mark.parametrize("window, n_sink", [(4, 0), (4, 1), (5, 3)])
def test_window_attention_matches_truncated_runs(window, n_sink):
    """With one layer and no positional information, window attention at query ``i`` is exactly
    the model run on the visible tokens alone: the first ``n_sink`` then the last ``window``."""
    model = random_model(perturb=0.0, seed=3, n_layers=1, n_ctx=40, d_vocab=20)
    model.W_pos.data.zero_()
    tokens = torch.randint(0, 20, (2, 16), generator=torch.Generator().manual_seed(4))
    fast = sinks.next_token_loss(model, tokens, window, n_sink)
    for i in range(tokens.shape[1] - 1):
        visible = sorted({*range(min(n_sink, i + 1)), *range(max(0, i - window + 1), i + 1)})
        logits = model(tokens[:, visible])[:, -1].log_softmax(-1)
        expected = -logits.gather(-1, tokens[:, i + 1, None]).mean()
        assert fast[i].item() == pytest.approx(expected.item(), abs=1e-4), i


def test_window_attention_hides_the_masked_keys(model, tokens):
    patterns = {}
    model.run_with_hooks(
        tokens,
        fwd_hooks=sinks.window_hooks(5, 2)
        + [(lambda name: name.endswith("hook_pattern"), lambda p, hook: patterns.update({hook.layer(): p}))],
    )
    hidden = ~sinks.window_mask(tokens.shape[1], 5, 2)
    for pattern in patterns.values():
        assert pattern[..., hidden].abs().max() == 0
        torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]))
    full = sinks.next_token_loss(model, tokens)
    torch.testing.assert_close(sinks.next_token_loss(model, tokens, chunk=1), full)
    torch.testing.assert_close(sinks.next_token_loss(model, tokens, tokens.shape[1], 0), full)
    assert not torch.allclose(sinks.next_token_loss(model, tokens, 3, 0), full)


@pytest.mark.parametrize("seed", range(10))
def test_text_stream_fills_every_row_for_every_seed(seed):
    """However many of the corpus's first rows are rows of random words, the stream has ``batch``
    text rows, and the same ones each time."""
    stream = sinks.text_stream(seed, 16, 64)
    assert stream.shape == (16, 64) and torch.equal(stream, sinks.text_stream(seed, 16, 64))
    assert torch.equal(sinks.text_stream(seed, 4, 64), stream[:4])


def test_text_stream_and_first_token_edit():
    stream = sinks.text_stream(0, 3, 100)
    assert (
        stream.shape == (3, 100)
        and (stream[:, 0] == language.BOS_ID).all()
        and (stream[:, 1:] != language.BOS_ID).all()
    )
    replaced = sinks.replace_first(stream, 7)
    assert (
        (replaced[:, 0] == 7).all()
        and torch.equal(replaced[:, 1:], stream[:, 1:])
        and (stream[:, 0] == language.BOS_ID).all()
    )


def test_chapter_runs_on_gpt2_small(offline_gpt2, tmp_path):
    out = book.execute(
        "attention_sinks",
        tmp_path / "gpt2.ipynb",
        {
            "MODEL_NAME": "gpt2-small",
            "DEVICE": "cpu",
            "SEQ_LEN": 20,
            "BATCH": 4,
            "PLAIN_LEN": 32,
            "WINDOW": 8,
        },
    )
    values = glued(nbformat.read(out, as_version=4))
    for name in ("induction_first_attn_repeated", "induction_first_attn_plain"):
        assert 0 <= values[name] <= 1
    assert 0 <= values["sink1_pct"] <= 100 and values["first_value_norm_ratio"] > 0
    for name in ("loss_full", "loss_window_no_sink", "loss_window_with_sink"):
        assert 0 < values[name] < 20
    for name in ("removal_loss_plain", "removal_value_plain", "removal_attention_repeated"):
        assert 0 < values[name] < 20
    assert values["sink1_step"] == pytest.approx(100 / 8) and 0 < values["uniform_first_plain"] < 1


@pytest.mark.parametrize(
    "params, message",
    [
        ({"WINDOW": 1}, r"WINDOW=1 is not allowed; expected an integer in \[2, \(WINDOW_LEN or n_ctx"),
        ({"WINDOW": 33}, r"WINDOW=33 is not allowed; expected an integer in \[2, 32\]"),
        ({"N_SINK": 9, "WINDOW": 32}, r"N_SINK=9 is not allowed; expected an integer in \[1, 8\]"),
        ({"N_SINK": 3, "WINDOW": 2}, r"N_SINK=3 is not allowed; expected an integer in \[1, 2\]"),
        ({"SEQ_LEN": 19}, r"SEQ_LEN=19 is not allowed; expected an integer in \[20, \(n_ctx - 1\) // 2\]"),
        ({"BATCH": 3}, r"BATCH=3 is not allowed; expected an integer in \[4, 64\]"),
        ({"BATCH": 65}, r"BATCH=65 is not allowed; expected an integer in \[4, 64\]"),
        ({"PLAIN_LEN": 15}, r"PLAIN_LEN=15 is not allowed; expected an integer in \[16, n_ctx\]"),
        ({"PLAIN_LEN": 1000}, r"PLAIN_LEN=1000 is not allowed; expected an integer in \[16, 128\]"),
        ({"WINDOW_LEN": 129}, r"WINDOW_LEN=129 is not allowed; expected 0 or an integer in \[32, 128\]"),
        ({"WINDOW_LEN": 31}, r"WINDOW_LEN=31 is not allowed; expected 0 or an integer in \[32, n_ctx\]"),
    ],
)
def test_bad_parameters_fail_fast_without_output(tmp_path, params, message):
    """Refused by the runner, or by the chapter's validation cell where the bound needs the model."""
    out = tmp_path / "out.ipynb"
    with pytest.raises(ValueError, match=message):
        book.execute("attention_sinks", out, params)
    assert not list(tmp_path.iterdir())


def _loop_loss(model, tokens, hooks) -> torch.Tensor:
    """Per-position next-token loss averaged over the batch, the plain way."""
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return torch.stack(
        [
            torch.nn.functional.cross_entropy(logits[:, i], tokens[:, i + 1])
            for i in range(tokens.shape[1] - 1)
        ]
    )


def _reference_hooks(mode, heads):
    """The obvious interventions, one head at a time: zero the value vector at position 0, or
    zero the attention later queries pay to position 0 and divide their rows by the rest."""

    def zero_value(v, hook):
        v = v.clone()
        for layer, head in heads:
            if layer == hook.layer():
                v[:, 0, head] = 0.0
        return v

    def hide(pattern, hook):
        pattern = pattern.clone()
        for layer, head in heads:
            if layer == hook.layer():
                for q in range(1, pattern.shape[2]):
                    pattern[:, head, q, 0] = 0.0
                    pattern[:, head, q] = pattern[:, head, q] / pattern[:, head, q].sum(-1, keepdim=True)
        return pattern

    if mode == "value":
        return [(lambda name: name.endswith("hook_v"), zero_value)]
    return [(lambda name: name.endswith("hook_pattern"), hide)]


@pytest.mark.parametrize("mode", ["value", "attention"])
@pytest.mark.parametrize("rows_per_pass", [None, 2])
def test_sink_removal_loss_matches_one_run_per_set(model, tokens, mode, rows_per_pass):
    sets = [[], [(0, 1)], [(1, 2)], [(0, 0), (0, 3), (1, 1)], [(l, h) for l in range(2) for h in range(4)]]
    head_sets = torch.zeros(len(sets), 2, 4, dtype=torch.bool)
    for i, heads in enumerate(sets):
        for layer, head in heads:
            head_sets[i, layer, head] = True
    fast = sinks.sink_removal_loss(model, tokens, head_sets, mode, rows_per_pass)
    assert fast.shape == (len(sets), tokens.shape[1] - 1)
    with torch.no_grad():
        for i, heads in enumerate(sets):
            expected = _loop_loss(model, tokens, _reference_hooks(mode, heads))
            torch.testing.assert_close(fast[i], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast[0], sinks.next_token_loss(model, tokens), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(fast[-1], fast[0])


def test_sink_removal_rejects_unknown_mode(model):
    with pytest.raises(ValueError, match="mode='both' is not a sink removal"):
        sinks.sink_removal_hooks(model, "both", torch.zeros(1, 2, 4, dtype=torch.bool))


def test_chance_levels_are_what_uniform_attention_gives(model, tokens):
    """With zero queries every score is equal, so attention is uniform over the visible keys:
    the measured first-token mass and importance are then exactly the chance levels."""
    uniform = HookedTransformer(model.cfg).eval()
    uniform.load_state_dict(model.state_dict())
    for block in uniform.blocks:
        block.attn.W_Q.data.zero_()
        block.attn.b_Q.data.zero_()
    queries = torch.rand(tokens.shape, generator=torch.Generator().manual_seed(6)) > 0.4
    mass = sinks.first_token_mass(uniform, tokens, queries)
    torch.testing.assert_close(mass, torch.full_like(mass, sinks.uniform_first_mass(queries)))
    importance = sinks.token_importance(uniform, tokens)[..., 0]
    n = tokens.shape[1]
    torch.testing.assert_close(importance, torch.full_like(importance, sinks.uniform_importance(n)))
    picked = [1 / (q + 1) for b in range(tokens.shape[0]) for q in range(n) if queries[b, q]]
    assert sinks.uniform_first_mass(queries) == pytest.approx(sum(picked) / len(picked))
