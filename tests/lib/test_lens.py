"""lib.lens against slow, obviously correct references: per-layer, per-position Python loops over a
full TransformerLens cache decoded by hand or by the model's own final norm and unembedding, and
one translator fitted at a time."""

import pytest
import torch
from random_models import random_model
from residual_cases import NORMS, random_tokens

from lib import lens

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return random_tokens()


@pytest.mark.parametrize("norm", NORMS)
def test_logit_lens_matches_per_layer_loop(tokens, norm):
    model = random_model(norm)
    out = lens.logit_lens(model, tokens)
    _, cache = model.run_with_cache(tokens)
    stream = [cache["resid_pre", layer] for layer in range(3)] + [cache["resid_post", 2]]
    final = model(tokens).log_softmax(-1)
    for i, resid in enumerate(stream):
        for b in range(tokens.shape[0]):
            for p in range(tokens.shape[1]):
                x = resid[b, p]
                if norm in ("LN", "LNPre"):
                    x = x - x.mean()
                if norm is not None:
                    x = x / (x.pow(2).mean() + model.cfg.eps).sqrt()
                if norm in ("LN", "RMS"):
                    x = x * model.ln_final.w + (model.ln_final.b if norm == "LN" else 0)
                logprobs = (x @ model.W_U + model.b_U).log_softmax(-1)
                assert out.top1[i, b, p].item() == logprobs.argmax().item()
                kl = (final[b, p].exp() * (final[b, p] - logprobs)).sum()
                assert out.kl_to_final[i, b, p].item() == pytest.approx(kl.item(), abs=1e-5)
                if p + 1 < tokens.shape[1]:
                    assert out.logprob_next[i, b, p].item() == pytest.approx(
                        logprobs[tokens[b, p + 1]].item(), abs=1e-5
                    )
    assert (out.top1[-1] == final.argmax(-1)).all() and out.kl_to_final[-1].abs().max() < 1e-5


def decode_by_hand(model, resid: torch.Tensor) -> torch.Tensor:
    """The model's own final norm and unembedding, as log-probs."""
    return model.unembed(model.ln_final(resid) if hasattr(model, "ln_final") else resid).log_softmax(-1)


def translators(n: int, d: int) -> lens.TunedLens:
    g = torch.Generator().manual_seed(2)
    return lens.TunedLens(
        torch.eye(d) + 0.2 * torch.randn(n, d, d, generator=g), torch.randn(n, d, generator=g)
    )


@pytest.mark.parametrize("norm", NORMS)
def test_tuned_lens_matches_per_layer_loop(tokens, norm):
    model = random_model(norm)
    tuned = translators(3, 32)
    out = lens.tuned_lens(model, tuned, tokens)
    _, cache = model.run_with_cache(tokens)
    stream = [cache["resid_pre", layer] @ tuned.A[layer] + tuned.b[layer] for layer in range(3)]
    final = model(tokens).log_softmax(-1)
    for i, resid in enumerate(stream + [cache["resid_post", 2]]):
        logprobs = decode_by_hand(model, resid)
        assert (out.top1[i] == logprobs.argmax(-1)).all()
        kl = (final.exp() * (final - logprobs)).sum(-1)
        torch.testing.assert_close(out.kl_to_final[i], kl, atol=1e-5, rtol=1e-5)
        next_logprobs = logprobs[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
        torch.testing.assert_close(out.logprob_next[i], next_logprobs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.mean_kl(), out.kl_to_final.mean((1, 2)))
    assert out.kl_to_final[-1].abs().max() < 1e-5


@pytest.mark.parametrize("norm", NORMS)
def test_tuned_lens_at_step_0_is_the_logit_lens(tokens, norm):
    model = random_model(norm)
    tuned = lens.fit_tuned_lens(model, tokens, steps=0)
    assert torch.equal(tuned.A, torch.eye(32).repeat(3, 1, 1)) and torch.equal(tuned.b, torch.zeros(3, 32))
    logit, at_start = lens.logit_lens(model, tokens), lens.tuned_lens(model, tuned, tokens)
    for field in ("top1", "logprob_next", "kl_to_final"):
        assert torch.equal(getattr(at_start, field), getattr(logit, field)), field


@pytest.mark.parametrize("norm", NORMS)
def test_fitting_lowers_the_kl_at_every_layer_but_the_last(tokens, norm):
    model = random_model(norm)
    logit = lens.logit_lens(model, tokens).mean_kl()
    tuned = lens.tuned_lens(model, lens.fit_tuned_lens(model, tokens), tokens).mean_kl()
    assert (tuned[:-1] < logit[:-1]).all(), (tuned, logit)
    assert torch.equal(tuned[-1], logit[-1])


def test_batched_fit_matches_one_translator_fitted_at_a_time(tokens):
    """Adam is elementwise and layer l's loss depends on its translator only, so fitting all at once
    is fitting each alone."""
    model = random_model().requires_grad_(False)
    steps, lr = 20, 1e-2
    with torch.no_grad():  # as the book runs: fitting turns autograd on for itself
        fitted = lens.fit_tuned_lens(model, tokens, steps=steps, lr=lr)
    _, cache = model.run_with_cache(tokens)
    final = model(tokens).log_softmax(-1)
    for layer in range(3):
        A, b = torch.eye(32).requires_grad_(), torch.zeros(32).requires_grad_()
        optimizer = torch.optim.Adam([A, b], lr=lr)
        for _ in range(steps):
            optimizer.zero_grad()
            logprobs = decode_by_hand(model, cache["resid_pre", layer] @ A + b)
            (final.exp() * (final - logprobs)).sum(-1).mean().backward()
            optimizer.step()
        torch.testing.assert_close(fitted.A[layer], A.detach(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(fitted.b[layer], b.detach(), atol=1e-5, rtol=1e-4)
    assert fitted.A.grad is None and all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_decode_in_float32(tokens, dtype):
    model = random_model("LN", dtype=dtype)
    tuned = lens.fit_tuned_lens(model, tokens, steps=5)
    assert tuned.A.dtype == torch.float32
    for out in (lens.logit_lens(model, tokens), lens.tuned_lens(model, tuned, tokens)):
        assert out.kl_to_final.dtype == out.logprob_next.dtype == torch.float32
        assert out.kl_to_final.isfinite().all() and out.logprob_next.isfinite().all()
        assert out.kl_to_final[-1].abs().max() < 1e-5
    reference = lens.logit_lens(random_model("LN"), tokens).mean_kl()
    torch.testing.assert_close(lens.logit_lens(model, tokens).mean_kl(), reference, atol=0.05, rtol=0.05)
