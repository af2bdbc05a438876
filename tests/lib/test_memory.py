"""lib.memory: the weights counted as TransformerLens builds them, an activation estimate that
bounds a measured peak without being absurd, and a refusal that names the sizes."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from lib import book, memory

# In a fresh process: for the first config, how far a forward pass with float32 log-softmax and
# softmax copies and a cache of every layer's residual stages and attention pattern raises the
# resident memory above what it was (Linux's peak-RSS counter, reset first, so an earlier peak from
# importing or building cannot hide it); then each config's parameter count.
MEASURE = """
import json, sys, warnings
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
warnings.simplefilter("ignore")
torch.set_grad_enabled(False)
def status(field):
    line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024
configs, (batch, seq) = json.loads(sys.argv[1]), json.loads(sys.argv[2])
build = lambda c: HookedTransformer(HookedTransformerConfig(**c))
model = build(configs[0]).eval()
tokens = torch.randint(model.cfg.d_vocab, (batch, seq))
model(tokens[:1, :4]).log_softmax(-1)
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS")
kept = ("hook_pattern", "hook_resid_pre", "hook_resid_mid", "hook_resid_post")
logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith(kept))
copies = logits.float().log_softmax(-1), logits.float().softmax(-1)
peak = status("VmHWM") - before
counts = [sum(p.numel() for p in build(c).parameters()) for c in configs]
print(json.dumps([counts, peak]))
"""
GPT2_LIKE = dict(
    n_layers=2, d_model=128, n_heads=4, d_head=32, d_mlp=512, n_ctx=256, d_vocab=3000, act_fn="gelu"
)
LLAMA_LIKE = GPT2_LIKE | dict(
    normalization_type="RMS", positional_embedding_type="rotary", gated_mlp=True, n_key_value_heads=2
)
ATTN_ONLY = GPT2_LIKE | dict(attn_only=True, d_mlp=None)


def config(**fields):
    """What lib.memory reads of a HookedTransformerConfig, without importing TransformerLens."""
    defaults = dict(
        attn_only=False, gated_mlp=False, positional_embedding_type="standard", n_key_value_heads=None
    )
    merged = defaults | fields
    return SimpleNamespace(**merged, d_vocab_out=merged["d_vocab"])


@pytest.fixture(scope="module")
def measured():
    shape = (32, 128)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps([GPT2_LIKE, LLAMA_LIKE, ATTN_ONLY]), json.dumps(shape)],
        cwd=book.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts, peak = json.loads(done.stdout.splitlines()[-1])
    return counts, peak, shape


def test_weight_bytes_count_what_transformer_lens_builds(measured):
    """Within 3% (biases and norms are left out), GQA and gated MLPs included, in each dtype."""
    counts, _, _ = measured
    for fields, count in zip([GPT2_LIKE, LLAMA_LIKE, ATTN_ONLY], counts, strict=True):
        assert memory.weight_bytes(config(**fields), "float32") == pytest.approx(4 * count, rel=0.03), fields
        assert memory.weight_bytes(config(**fields), "bfloat16") * 2 == memory.weight_bytes(
            config(**fields), "float32"
        )


def test_activation_estimate_bounds_a_measured_peak(measured):
    """Conservative (at least the measured peak) but not absurd (at most three times it)."""
    _, peak, shape = measured
    estimate = memory.activation_bytes(config(**GPT2_LIKE), "float32", *shape)
    assert peak <= estimate <= 3 * peak, (peak, estimate)


def test_free_bytes_reads_the_device():
    assert 0 < memory.free_bytes(torch.device("cpu")) <= __import__("psutil").virtual_memory().total
    if torch.cuda.is_available():
        assert 0 < memory.free_bytes(torch.device("cuda")) <= torch.cuda.get_device_properties(0).total_memory


def test_check_refuses_with_the_estimate_and_the_free_memory(monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device: 2 * memory.GIB)
    organism = config(**GPT2_LIKE)
    inputs = {"BATCH, SEQ_LEN": (100000, 101), "BATCH, PLAIN_LEN": (100000, 64)}
    with pytest.raises(ValueError) as err:
        memory.check(organism, "cpu", "float32", inputs)
    message = str(err.value)
    assert message.startswith("not enough memory: this run needs about ") and "\n" not in message
    assert "for 100000 x 101 tokens) but cpu has 2.0 GiB free; lower BATCH, SEQ_LEN," in message
    small = {"BATCH, SEQ_LEN": (16, 101)}
    assert memory.check(organism, "cpu", "float32", small) == memory.weight_bytes(
        organism, "float32"
    ) + memory.activation_bytes(organism, "float32", 16, 101)
    with pytest.raises(ValueError, match="DTYPE='float8' is not supported"):
        memory.check(organism, "cpu", "float8", small)
