"""lib.rl.sparsity: update sparsity (float32 and bfloat16), entries no state moved, per-head
tensors as matrices, and the rank of an update, against numpy, bit arithmetic and known ranks."""

import numpy as np
import pytest
import torch

from lib.rl.sparsity import as_matrix, never_moved, unchanged_bf16, unchanged_fraction, update_rank

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES = {"blocks.0.attn.W_Q": (4, 16, 8), "blocks.0.mlp.W_in": (16, 32), "blocks.0.mlp.b_in": (32,)}


def states(seed: int, scale: float = 1e-3):
    """A state and one in which a third of the entries moved by up to ``scale`` times a random
    log-uniform factor in [1e-4, 10] (from far below to far above the tolerances tested)."""
    gen = torch.Generator().manual_seed(seed)
    before = {n: torch.randn(s, generator=gen) for n, s in SHAPES.items()}
    after = {}
    for n, s in SHAPES.items():
        moved = torch.rand(s, generator=gen) < 1 / 3
        size = scale * 10 ** (5 * torch.rand(s, generator=gen) - 4) * torch.randn(s, generator=gen).sign()
        after[n] = before[n] + torch.where(moved, size, 0.0)
    return before, after


@pytest.mark.parametrize("tol", [0.0, 1e-6, 1e-4, 1e-3, 1e-2])
def test_unchanged_fraction_against_numpy(tol):
    before, after = states(seed=0)
    diffs = {n: np.abs(after[n].numpy() - before[n].numpy()) for n in before}
    want = sum((d <= tol).sum() for d in diffs.values()) / sum(d.size for d in diffs.values())
    assert unchanged_fraction(before, after, tol) == pytest.approx(want)
    names = ["blocks.0.mlp.W_in", "blocks.0.mlp.b_in"]
    want = sum((diffs[n] <= tol).sum() for n in names) / sum(diffs[n].size for n in names)
    assert unchanged_fraction(before, after, tol, names=names) == pytest.approx(want)
    assert unchanged_fraction(before, before, tol) == 1.0


def bf16_bits(x: torch.Tensor) -> np.ndarray:
    """The top 16 bits of float32 after rounding to nearest, ties to even: bfloat16, by hand."""
    u = x.numpy().view(np.uint32).astype(np.uint64)
    return (u + 0x7FFF + ((u >> 16) & 1)) >> 16


def test_unchanged_bf16_against_bit_rounding():
    before, after = states(seed=1, scale=3e-2)
    same = sum((bf16_bits(before[n]) == bf16_bits(after[n])).sum() for n in before)
    want = same / sum(t.numel() for t in before.values())
    exact = unchanged_fraction(before, after)
    assert exact < want < 1  # rounding hides the smallest moves, not the largest
    assert unchanged_bf16(before, after) == pytest.approx(want)


def test_never_moved_against_a_loop():
    gen = torch.Generator().manual_seed(2)
    first = {n: torch.randn(s, generator=gen) for n, s in SHAPES.items()}
    runs = [first]
    for _ in range(3):
        runs.append(
            {n: torch.where(torch.rand(t.shape, generator=gen) < 0.2, t + 1, t) for n, t in first.items()}
        )
    got = never_moved(runs)
    for n, t in first.items():
        flat = [s[n].flatten().tolist() for s in runs]
        want = [all(f[i] == flat[0][i] for f in flat) for i in range(t.numel())]
        assert got[n].shape == t.shape and got[n].flatten().tolist() == want
        assert 0 < sum(want) < len(want)


def test_as_matrix_lays_heads_side_by_side():
    gen = torch.Generator().manual_seed(3)
    heads, d_model, d_head = 3, 10, 4
    for qkv in ("W_Q", "W_K", "W_V"):
        w = torch.randn(heads, d_model, d_head, generator=gen)
        m = as_matrix(f"blocks.1.attn.{qkv}", w)
        assert torch.equal(m, torch.cat([w[h] for h in range(heads)], dim=1))
        x = torch.randn(5, d_model, generator=gen)  # one product gives every head's output
        torch.testing.assert_close(x @ m, torch.cat([x @ w[h] for h in range(heads)], dim=1))
    w_o = torch.randn(heads, d_head, d_model, generator=gen)
    m = as_matrix("blocks.1.attn.W_O", w_o)
    assert torch.equal(m, torch.cat([w_o[h] for h in range(heads)], dim=0))
    z = torch.randn(5, heads, d_head, generator=gen)  # the heads' outputs summed into the residual
    torch.testing.assert_close(z.flatten(1) @ m, sum(z[:, h] @ w_o[h] for h in range(heads)))
    w_in = torch.randn(d_model, 7, generator=gen)
    assert as_matrix("blocks.1.mlp.W_in", w_in) is w_in
    assert as_matrix("blocks.1.mlp.b_in", torch.randn(7)) is None


def low_rank(rows: int, cols: int, rank: int, gen: torch.Generator) -> torch.Tensor:
    return sum(
        torch.outer(torch.randn(rows, generator=gen), torch.randn(cols, generator=gen)) for _ in range(rank)
    )


def test_update_rank_of_known_deltas():
    gen = torch.Generator().manual_seed(4)
    heads, d_model, d_head = 4, 16, 6
    before = torch.randn(d_model, 40, generator=gen)
    assert update_rank(before, before + low_rank(d_model, 40, 3, gen), "blocks.0.mlp.W_in") == (3, 16)
    assert update_rank(before, before + 0.1 * torch.randn(d_model, 40, generator=gen), "mlp.W_in") == (16, 16)
    assert update_rank(before, before, "blocks.0.mlp.W_in") == (0, 16)
    # per-head tensors: a rank-3 matrix laid out as the heads' slices
    delta = low_rank(d_model, heads * d_head, 3, gen)  # d_model x (heads d_head)
    w_q = torch.randn(heads, d_model, d_head, generator=gen)
    delta_q = torch.stack([delta[:, h * d_head : (h + 1) * d_head] for h in range(heads)])
    assert update_rank(w_q, w_q + delta_q, "blocks.0.attn.W_Q") == (3, 16)
    delta = low_rank(heads * d_head, d_model, 2, gen)  # (heads d_head) x d_model
    w_o = torch.randn(heads, d_head, d_model, generator=gen)
    delta_o = torch.stack([delta[h * d_head : (h + 1) * d_head] for h in range(heads)])
    assert update_rank(w_o, w_o + delta_o, "blocks.0.attn.W_O") == (2, 16)
    # read with W_Q's layout the same update has a higher rank: the layout is what the test checks
    assert update_rank(w_o, w_o + delta_o, "blocks.0.attn.W_K")[0] > 2
