"""lib.attention against slow, obviously correct references: per-head Python loops over a full
cache, dense d_model x d_model products, dense vocab x vocab circuits."""

import copy

import pytest
import torch
from random_models import random_model
from transformer_lens import HookedTransformer

from lib import attention, data


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    return random_model(perturb=0.0, attn_only=True, n_ctx=40, d_vocab=20)


def is_target(kind: str, tokens: list[int], dest: int, src: int) -> bool:
    if kind == "previous":
        return src == dest - 1
    if kind == "first":
        return src == 0 and dest > 0
    if kind == "duplicate":
        return src < dest and tokens[src] == tokens[dest]
    if kind == "induction":
        return 1 <= src <= dest and tokens[src - 1] == tokens[dest]
    raise AssertionError(kind)


def test_head_scores_match_per_head_loop(model):
    tokens = torch.randint(0, 20, (3, 25), generator=torch.Generator().manual_seed(1))  # many repeats
    fast = attention.head_scores(model, tokens)
    _, cache = model.run_with_cache(tokens)
    for kind in attention.SCORE_KINDS:
        for layer in range(model.cfg.n_layers):
            for head in range(model.cfg.n_heads):
                pattern = cache["pattern", layer][:, head]
                masses = []
                for b in range(tokens.shape[0]):
                    toks = tokens[b].tolist()
                    for dest in range(tokens.shape[1]):
                        srcs = [s for s in range(tokens.shape[1]) if is_target(kind, toks, dest, s)]
                        if srcs:
                            masses.append(sum(pattern[b, dest, s].item() for s in srcs))
                expected = sum(masses) / len(masses)
                assert fast[kind][layer, head].item() == pytest.approx(expected, abs=1e-5), (
                    kind,
                    layer,
                    head,
                )


def test_induction_score_is_offset_diagonal_on_repeated_tokens(model):
    """On BOS + twice seq_len distinct tokens, the score is the source post's detector: the mean
    of the 1 - seq_len offset diagonal over the second half."""
    seq_len = 9
    half = torch.stack(
        [torch.randperm(18, generator=torch.Generator().manual_seed(s))[:seq_len] for s in range(4)]
    )
    tokens = torch.cat([torch.full((4, 1), 19), half, half], dim=1)
    scores = attention.head_scores(model, tokens, ("induction", "duplicate"))
    _, cache = model.run_with_cache(tokens)
    for layer in range(model.cfg.n_layers):
        pattern = cache["pattern", layer]  # [batch head dest src]
        stripe = pattern.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)[..., -seq_len:]
        torch.testing.assert_close(scores["induction"][layer], stripe.mean((0, 2)), atol=1e-5, rtol=0)
        dup = pattern.diagonal(offset=-seq_len, dim1=-2, dim2=-1)[..., -seq_len:]
        torch.testing.assert_close(scores["duplicate"][layer], dup.mean((0, 2)), atol=1e-5, rtol=0)


def test_unknown_score_kind(model):
    with pytest.raises(ValueError, match="allowed: previous"):
        attention.head_scores(model, torch.zeros(1, 4, dtype=torch.long), ("bogus",))


@pytest.mark.parametrize("kind", ["q", "k", "v"])
def test_composition_scores_match_dense_products(model, kind):
    fast = attention.composition_scores(model, kind)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    for l1 in range(L):
        for h1 in range(H):
            W_A = model.W_V[l1, h1] @ model.W_O[l1, h1]
            for l2 in range(L):
                for h2 in range(H):
                    if l2 <= l1:
                        assert torch.isnan(fast[l1, h1, l2, h2])
                        continue
                    W_B = {
                        "q": model.W_Q[l2, h2] @ model.W_K[l2, h2].T,
                        "k": (model.W_Q[l2, h2] @ model.W_K[l2, h2].T).T,
                        "v": model.W_V[l2, h2] @ model.W_O[l2, h2],
                    }[kind]
                    expected = (W_A @ W_B).norm() / (W_A.norm() * W_B.norm())
                    assert fast[l1, h1, l2, h2].item() == pytest.approx(expected.item(), rel=1e-4)


def test_k_composition_circuit_and_top1(model):
    prev, ind = (0, 1), (2, 3)
    circuit = attention.k_composition_circuit(model, prev, ind)
    W_E = model.W_E
    dense = (W_E @ model.W_Q[2, 3]) @ (W_E @ model.W_V[0, 1] @ model.W_O[0, 1] @ model.W_K[2, 3]).T
    torch.testing.assert_close(circuit.AB, dense, atol=1e-4, rtol=1e-4)
    ids = torch.arange(3, 17)
    sub = dense[ids][:, ids]
    expected = (sub.argmax(-1) == torch.arange(len(ids))).float().mean().item()
    for chunk in (1, 5, 4096):
        assert attention.diagonal_top1_accuracy(circuit, ids, chunk=chunk) == pytest.approx(expected)


def test_attention_patterns_select_heads(model):
    tokens = data.repeated_tokens(torch.arange(19), 19, 6, 2, seed=0)
    pats = attention.attention_patterns(model, tokens, [(1, 2), (0, 3)])
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(pats[0], cache["pattern", 1][:, 2])
    torch.testing.assert_close(pats[1], cache["pattern", 0][:, 3])


def test_ov_copying_scores_match_dense_eigenvalues(model):
    ids = torch.arange(2, 20)
    scores = attention.copying_scores(model, ids)
    d_head = model.cfg.d_head
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            dense = model.W_E[ids] @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U[:, ids]
            eig = torch.linalg.eigvals(dense.double())
            eig = eig[eig.abs().argsort(descending=True)[:d_head]]  # the rank-d_head non-zero ones
            positive = (eig.real > 0).double().mean().item()
            summary = (eig.real.sum() / eig.abs().sum()).item()
            top1 = (dense.argmax(-1) == torch.arange(len(ids))).float().mean().item()
            assert scores["positive"][layer, head].item() == pytest.approx(positive)
            assert scores["eigenvalue"][layer, head].item() == pytest.approx(summary, abs=1e-4)
            assert attention.ov_top1(model, (layer, head), ids, chunk=5) == pytest.approx(top1)


def test_positional_qk_and_previous_position_top1(model):
    qk = attention.positional_qk(model, 1, 2)
    n = model.cfg.n_ctx
    for q in range(0, n, 7):
        for k in range(0, n, 5):
            expected = (model.W_pos[q] @ model.W_Q[1, 2]) @ (model.W_pos[k] @ model.W_K[1, 2]) / 8**0.5
            assert qk[q, k].item() == pytest.approx(expected.item(), abs=1e-5)
    shifted = torch.randn(n, n, generator=torch.Generator().manual_seed(0))
    hits = sum(int(max(range(q + 1), key=lambda k: shifted[q, k].item()) == q - 1) for q in range(1, n))
    assert attention.previous_position_top1(shifted) == pytest.approx(hits / (n - 1))
    planted = shifted.clone()
    planted[torch.arange(1, n), torch.arange(n - 1)] = 100.0
    assert attention.previous_position_top1(planted) == 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_circuits_of_a_half_precision_model(model, dtype):
    """The circuits read off half-precision weights (no half-precision eigensolver exists; an
    identity in float32 would mix dtypes) agree with the float32 model's, and the path expansion
    is computed in float32."""
    half = copy.deepcopy(model).to(dtype, print_details=False)
    ids = torch.arange(2, 20)
    torch.testing.assert_close(
        attention.composition_scores(half, "k").float(),
        attention.composition_scores(model, "k"),
        atol=0.02,
        rtol=0.05,
        equal_nan=True,
    )
    copying = attention.copying_scores(half, ids)
    torch.testing.assert_close(
        copying["eigenvalue"], attention.copying_scores(model, ids)["eigenvalue"], atol=0.1, rtol=0
    )
    assert ((copying["positive"] >= 0) & (copying["positive"] <= 1)).all()
    m = randomised(2, "LN")
    tokens = torch.randint(0, 11, (3, 12), generator=torch.Generator().manual_seed(2))
    paths, _ = attention.path_logits(copy.deepcopy(m).to(dtype, print_details=False), tokens)
    assert paths.dtype == torch.float32
    torch.testing.assert_close(paths, attention.path_logits(m, tokens)[0], atol=0.05, rtol=0.05)


def randomised(n_layers: int, normalization: str) -> HookedTransformer:
    """A random attention-only model whose biases and LayerNorm weights are random too."""
    return random_model(
        normalization,
        perturb=0.3,
        seed=n_layers,
        attn_only=True,
        n_layers=n_layers,
        d_model=16,
        n_heads=3,
        d_head=4,
        n_ctx=12,
        d_vocab=11,
    )


@pytest.mark.parametrize(("n_layers", "normalization"), [(2, "LN"), (3, "LN"), (2, "LNPre"), (2, None)])
def test_path_logits_sum_to_the_model_logits(n_layers, normalization):
    m = randomised(n_layers, normalization)
    tokens = torch.randint(0, 11, (3, 12), generator=torch.Generator().manual_seed(2))
    paths, labels = attention.path_logits(m, tokens)
    H = m.cfg.n_heads
    assert (
        len(labels)
        == len(paths)
        == 1 + n_layers * H + H * H * n_layers * (n_layers - 1) // 2 + (n_layers > 2) + 1
    )
    logits = m(tokens)[:, :-1]
    expected = logits.gather(-1, tokens[:, 1:, None])[..., 0] - logits.mean(-1)
    torch.testing.assert_close(paths.sum(0), expected, atol=1e-4, rtol=1e-4)


def test_path_logits_match_a_per_position_loop():
    """Each path of a 2-layer model, recomputed position by position from the cache."""
    m = randomised(2, "LN")
    tokens = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(3))
    paths, labels = attention.path_logits(m, tokens)
    _, cache = m.run_with_cache(tokens)

    def ln(x, layer_name, b, p):  # the linear part of a LayerNorm at (b, p), scale frozen
        module = m.get_submodule(layer_name)
        scale = cache[f"{layer_name}.hook_scale"][b, p]
        return (x - x.mean()) / scale * module.w

    def head(layer, h, source, b, q):  # the output at (b, q) of head h reading ``source(b, k)``
        out = torch.zeros(m.cfg.d_model)
        for k in range(q + 1):
            v = ln(source(b, k), f"blocks.{layer}.ln1", b, k) @ m.W_V[layer, h]
            out += cache["pattern", layer][b, h, q, k] * (v @ m.W_O[layer, h])
        return out

    def embed(b, p):
        return cache["hook_embed"][b, p] + cache["hook_pos_embed"][b, p]

    for b in range(tokens.shape[0]):
        for p in range(0, 11, 3):
            target = m.W_U[:, tokens[b, p + 1]] - m.W_U.mean(-1)

            def final(x, b=b, p=p, target=target):
                return ln(x, "ln_final", b, p) @ target

            want = {"direct": final(embed(b, p))}
            for h in range(m.cfg.n_heads):
                want[f"L0H{h}"] = final(head(0, h, embed, b, p))
                want[f"L1H{h}"] = final(head(1, h, embed, b, p))
                for h2 in range(m.cfg.n_heads):
                    want[f"L0H{h}>L1H{h2}"] = final(
                        head(1, h2, lambda bb, k, h=h: head(0, h, embed, bb, k), b, p)
                    )
            for label, value in want.items():
                got = paths[labels.index(label), b, p].item()
                assert got == pytest.approx(value.item(), abs=1e-4), (label, b, p)
