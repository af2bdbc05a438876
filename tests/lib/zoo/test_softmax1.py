"""induction-2l-softmax1: softmax with an extra zero logit, as TransformerLens computes it with
``use_attention_sinks`` and zero sink logits, against softmax over ``[scores, 0]`` written out by
hand; the organism's frozen zero logits; gradients through the extra logit; loading that keeps the
function (value biases are not folded where rows sum to less than 1)."""

import math

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from lib import sinks, zoo

NAME = "induction-2l-softmax1"


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    """A random softmax1 model whose scores spread widely (queries scaled up), so that the zero
    logit competes with large and small scores alike."""
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(**{**zoo.recipe(NAME).config, "n_ctx": 24, "d_vocab": 30})
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_Q.mul_(8.0)
            block.attn.b_V.normal_()
    return model


def reference_pattern(q: torch.Tensor, k: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Softmax over the visible keys' scores and one more logit, 0, computed entry by entry;
    the zero logit's own weight dropped. ``q``, ``k``: [pos, d_head]; ``visible``: [dest, src]."""
    n, d_head = q.shape
    pattern = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        scores = {j: (q[i] @ k[j]).item() / math.sqrt(d_head) for j in range(n) if visible[i, j]}
        denominator = math.exp(0.0) + sum(math.exp(s) for s in scores.values())
        for j, s in scores.items():
            pattern[i, j] = math.exp(s) / denominator
    return pattern


@pytest.mark.parametrize("window", [None, 3])
def test_attention_is_softmax_over_the_scores_and_a_zero_logit(model, window):
    """Every head's pattern, and its output ``z``, are those of softmax over [scores, 0], also
    when a hook at ``hook_attn_scores`` hides keys (window attention): the zero logit joins after
    the hooks."""
    tokens = torch.randint(0, 30, (2, 12), generator=torch.Generator().manual_seed(1))
    hooks = sinks.window_hooks(window, 1) if window else []
    with model.hooks(fwd_hooks=hooks):
        _, cache = model.run_with_cache(tokens)
    visible = sinks.window_mask(12, window or 12, 1 if window else 0)
    for layer in range(model.cfg.n_layers):
        for b in range(tokens.shape[0]):
            for head in range(model.cfg.n_heads):
                q, k = cache["q", layer][b, :, head].double(), cache["k", layer][b, :, head].double()
                want = reference_pattern(q, k, visible)
                got = cache["pattern", layer][b, head].double()
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
                z = want @ cache["v", layer][b, :, head].double()
                torch.testing.assert_close(cache["z", layer][b, :, head].double(), z, atol=1e-4, rtol=1e-4)
            assert (cache["pattern", layer][b].sum(-1) < 1).all()


def test_null_mass_is_the_zero_logits_share(model):
    """lib.sinks.null_mass: one minus each selected query's row, averaged per head (a loop over a
    cache); 0 for the same weights under softmax."""
    tokens = torch.randint(0, 30, (2, 12), generator=torch.Generator().manual_seed(2))
    queries = torch.rand(tokens.shape, generator=torch.Generator().manual_seed(3)) > 0.4
    _, cache = model.run_with_cache(tokens)
    null = sinks.null_mass(model, tokens, queries)
    picked = [(b, q) for b in range(tokens.shape[0]) for q in range(tokens.shape[1]) if queries[b, q]]
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            rows = [1 - cache["pattern", layer][b, head, q].sum().item() for b, q in picked]
            assert null[layer, head].item() == pytest.approx(sum(rows) / len(rows), abs=1e-5)
    assert null.min() > 0.005  # every head leaves some attention to the zero logit
    softmax = HookedTransformer(model.cfg.to_dict() | {"use_attention_sinks": False})
    softmax.load_state_dict({k: v for k, v in model.state_dict().items() if not k.endswith("sinks")})
    assert sinks.null_mass(softmax, tokens, queries).abs().max() < 1e-6


def test_training_keeps_the_logit_at_zero_and_gradients_reach_every_other_parameter():
    """After a training step the sink logits are still exactly 0 and not trained; the loss has a
    non-zero gradient for every trained parameter, the queries and keys included (they act only
    through the pattern, here through the zero logit's share too)."""
    trained, log = zoo.train(NAME, steps=1, progress=False)
    assert [e["step"] for e in log] == [0, 1]
    batch = next(zoo.recipe(NAME).batches(zoo.recipe(NAME), trained.tokenizer))
    trained(batch, return_type="loss").backward()
    for name, param in trained.named_parameters():
        if name.endswith("attn.sinks"):
            assert not param.requires_grad and param.grad is None and (param == 0).all(), name
        else:
            assert param.requires_grad and param.grad.abs().sum() > 0, name


def test_the_organism_loads_with_zero_logits_and_its_trained_function():
    """The committed organism computes softmax1 (zero sink logits, rows under 1), and loading it
    (LayerNorm folded, writing weights centred, value biases kept) gives the logits of the raw
    trained weights."""
    meta = zoo.verify(NAME)
    assert meta["config"]["use_attention_sinks"] and meta["optimizer"]["frozen"] == ["attn.sinks"]
    loaded = zoo.load(NAME)
    assert all((block.attn.sinks == 0).all() for block in loaded.blocks)
    raw = HookedTransformer(HookedTransformerConfig(**meta["config"]))
    raw.load_state_dict(zoo.state_dict(NAME))
    tokens = torch.randint(0, 512, (4, 64), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(tokens).log_softmax(-1), raw.eval()(tokens).log_softmax(-1), atol=1e-4, rtol=1e-4
        )
