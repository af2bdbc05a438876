"""Activation patching: ``lib.patching`` against TransformerLens's loop, timed in one run.

    python -m benchmarks.patching                 # full run on the CPU; writes benchmarks/RESULTS.md
    python -m benchmarks.patching --device cuda   # the same on a GPU
    python -m benchmarks.patching --smoke         # tiny models, seconds; writes nothing

For each model and sweep (residual stream ``resid_pre`` by layer x position, head outputs ``z``
by head x position) it times ``transformer_lens.patching.get_act_patch_*`` (one full forward
pass per patch) and ``lib.patching.patch_sweep`` on the same prompts and metric, checks that
they agree (max abs diff), and prints a table: both times, their ratio, the ideal ratio from
counted FLOPs (TransformerLens's full forwards against the patched forwards lib actually runs,
counted analytically from the config), and peak memory above the baseline. Models: the zoo
organism ``induction-2l`` and a GPT-2-small-sized model with random weights.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import functools
import importlib.metadata
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import patching as tl_patching
from transformer_lens.utilities import get_act_name

from lib import data, env, models, patching, zoo

RESULTS = Path(__file__).parent / "RESULTS.md"
SWEEPS = {  # name: (site, sweep, TransformerLens function, its patch setter, its index axes)
    "resid_pre layer x pos": (
        "resid_pre",
        "layer_pos",
        tl_patching.get_act_patch_resid_pre,
        tl_patching.layer_pos_patch_setter,
        ("layer", "pos"),
    ),
    "z head x pos": (
        "z",
        "head_pos",
        tl_patching.get_act_patch_attn_head_out_by_pos,
        tl_patching.layer_pos_head_vector_patch_setter,
        ("layer", "pos", "head"),
    ),
}


# --------------------------------------------------------------------------------------------
# the cases


@dataclass
class Case:
    """A model, clean and corrupted prompts, and a metric that reads the last position."""

    name: str
    model: HookedTransformer
    clean: torch.Tensor
    corrupted: torch.Tensor
    metric: Callable[[torch.Tensor], torch.Tensor]
    prompts: str  # how the prompts were made, for the table's notes
    tl_positions: list[int] | None = None  # None: TransformerLens runs every patch
    notes: list[str] = field(default_factory=list)


def induction_case(device: str, seq_len: int, batch: int) -> Case | None:
    """The induction organism on BOS + A + A[:-1]; corrupted: A's first occurrence resampled.
    Metric: log-prob of A's last token at the last position, which only induction predicts."""
    if not (zoo.ORGANISMS_DIR / "induction-2l" / "model.safetensors").exists():
        return None
    model = models.load_model("induction-2l", device=device)
    bos = model.tokenizer.bos_token_id
    clean = data.repeated_tokens(data.ordinary_tokens(model), bos, seq_len, batch, seed=0)
    fresh = data.repeated_tokens(data.ordinary_tokens(model), bos, seq_len, batch, seed=1)
    answer = clean[:, -1].to(device)
    clean, corrupted = clean[:, :-1], clean[:, :-1].clone()
    corrupted[:, 1 : seq_len + 1] = fresh[:, 1 : seq_len + 1]

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, -1].log_softmax(-1).gather(-1, answer[:, None])[:, 0].mean()

    return Case(
        "induction-2l",
        model,
        clean.to(device),
        corrupted.to(device),
        metric,
        f"{batch} prompts of {clean.shape[1]} tokens: BOS + {seq_len} random tokens + the first "
        f"{seq_len - 1} again; corrupted: the first {seq_len} resampled",
    )


def gpt2_size_case(device: str, cfg: dict, n_pos: int, batch: int, tl_subset: bool) -> Case:
    """A GPT-2-architecture model with random weights on random prompts; corrupted: the token in
    the middle resampled (as when one name or subject token is swapped). Metric: logit
    difference between two fixed tokens at the last position."""
    torch.manual_seed(0)
    model = HookedTransformer(
        HookedTransformerConfig(**cfg, act_fn="gelu_new", normalization_type="LN", device=device)
    ).eval()
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(cfg["d_vocab"], (batch, n_pos), generator=g)
    corrupted = clean.clone()
    k = n_pos // 2
    corrupted[:, k] = (clean[:, k] + 1 + torch.randint(cfg["d_vocab"] - 1, (batch,), generator=g)) % cfg[
        "d_vocab"
    ]
    right, wrong = torch.randint(cfg["d_vocab"], (2, batch), generator=g).to(device)
    rows = torch.arange(batch, device=device)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return (logits[rows, -1, right] - logits[rows, -1, wrong]).mean()

    # TransformerLens's subset, if timed on one: the first position (unchanged by the corruption),
    # the corrupted one, the next, the last
    subset = sorted({0, k, k + 1, n_pos - 1}) if tl_subset else None
    name = "GPT-2-small-size" if cfg["n_layers"] == 12 else "GPT-2-arch tiny"
    return Case(
        name,
        model,
        clean.to(device),
        corrupted.to(device),
        metric,
        f"{batch} random prompts of {n_pos} tokens; corrupted: token {k} resampled",
        subset,
    )


# --------------------------------------------------------------------------------------------
# FLOPs, counted from the config (a multiply-add is 2 FLOPs; norms, softmax, GELU not counted)


def block_flops(cfg, tokens: int, keys: int) -> int:
    """One block on ``tokens`` query positions attending over ``keys`` positions, per prompt."""
    kv_heads = cfg.n_key_value_heads or cfg.n_heads
    attn = (
        2 * cfg.d_model * (cfg.n_heads + 2 * kv_heads) * cfg.d_head
        + 2 * cfg.n_heads * cfg.d_head * cfg.d_model
    )
    mix = 2 * 2 * cfg.n_heads * cfg.d_head * keys
    mlp = 0 if cfg.attn_only else (3 if cfg.gated_mlp else 2) * 2 * cfg.d_model * cfg.d_mlp
    return tokens * (attn + mix + mlp)


def unembed_flops(cfg, positions: int) -> int:
    return positions * 2 * cfg.d_model * cfg.d_vocab


def full_forward_flops(cfg, n_pos: int) -> int:
    """TransformerLens's forward: every block on every position (full n x n scores), every logit."""
    return cfg.n_layers * block_flops(cfg, n_pos, n_pos) + unembed_flops(cfg, n_pos)


def lib_flops(cfg, site: str, stats: dict, batch: int, n_pos: int, n_logits: int) -> int:
    """What ``patch_sweep`` ran, from its ``stats``: the target run, then for each group of
    patches that share a layer and start position, its rows through the blocks it recomputes."""
    total = full_forward_flops(cfg, n_pos) * batch
    for layer, start, end, n_patches in stats["groups"]:
        rows = n_patches * batch
        first = layer
        if site != "resid_pre" and end < n_pos:  # block `layer` on the patched position only
            total += rows * block_flops(cfg, end - start, end)
            first = layer + 1
        total += rows * (cfg.n_layers - first) * block_flops(cfg, n_pos - start, n_pos)
        total += rows * unembed_flops(cfg, n_logits)
    return total


# --------------------------------------------------------------------------------------------
# measuring


class Peak:
    """Peak memory above the level at entry: allocated CUDA memory on a GPU; on the CPU the
    resident set's high-water mark (VmHWM, reset through /proc/self/clear_refs) after freeing
    what the allocator caches, else ``resource``'s process-wide peak."""

    def __init__(self, device: str):
        self.device, self.mb = device, float("nan")

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    def __enter__(self) -> Peak:
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            try:
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            except OSError:
                pass
            try:
                Path("/proc/self/clear_refs").write_text("5")
                self.base = self._status("VmRSS")
            except OSError:
                import resource

                self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            try:
                peak = self._status("VmHWM")
            except (OSError, KeyError):
                import resource

                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.mb = max(0, peak - self.base) / 2**20


class OtherJobs:
    """The share of the machine's CPU time that other processes used since construction, from
    /proc/stat's busy time minus this process's own; NaN where /proc/stat is unreadable."""

    def __init__(self):
        self.start = self._busy(), self._own(), time.monotonic()

    @staticmethod
    def _busy() -> float:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except OSError:
            return math.nan
        idle = fields[3] + fields[4]  # idle, iowait
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    def share(self) -> float:
        busy, own, start = self.start
        wall = (time.monotonic() - start) * (os.cpu_count() or 1)
        return max(0.0, (self._busy() - busy) - (self._own() - own)) / wall


def timed(device: str, fn: Callable[[], torch.Tensor], repeats: int = 1) -> tuple[torch.Tensor, float, float]:
    """(result, best wall-clock seconds of ``repeats``, peak MB of the first run)."""
    best, result, mb = math.inf, None, float("nan")
    for i in range(repeats):
        with Peak(device) as peak:
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            result = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        if i == 0:
            mb = peak.mb
    return result, best, mb


@dataclass
class Row:
    model: str
    sweep: str
    patches: int
    tl_patches: int  # patches TransformerLens actually ran (the rest extrapolated)
    tl_s: float
    lib_s: float
    ideal: float
    noskip_s: float
    ideal_noskip: float
    max_diff: float
    tl_mb: float
    lib_mb: float
    skipped: int

    @property
    def ratio(self) -> float:
        return self.tl_s / self.lib_s

    @property
    def ratio_noskip(self) -> float:
        return self.tl_s / self.noskip_s


def bench(case: Case, sweep: str, device: str, repeats: int) -> Row:
    site, by, tl_fn, setter, axes = SWEEPS[sweep]
    model, cfg = case.model, case.model.cfg
    batch, n_pos = case.corrupted.shape
    names = [get_act_name(site, layer) for layer in range(cfg.n_layers)]
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(case.clean, names_filter=lambda name: name in names)

    # TransformerLens: every patch, or (head x position on the large model) the documented subset
    # of positions (its cost per patch is one full forward pass whatever the patch, so the full
    # sweep's time scales exactly)
    tl_positions = case.tl_positions if by == "head_pos" else None
    if tl_positions is None:

        def run_tl() -> torch.Tensor:
            return tl_fn(model, case.corrupted, clean_cache, case.metric)
    else:
        index = tl_patching.make_df_from_ranges([cfg.n_layers, n_pos, cfg.n_heads][: len(axes)], list(axes))
        index = index[index["pos"].isin(tl_positions)].reset_index(drop=True)

        def run_tl() -> torch.Tensor:
            return tl_patching.generic_activation_patch(
                model, case.corrupted, clean_cache, case.metric, setter, site, index_df=index
            )

    n_patches = cfg.n_layers * n_pos * (cfg.n_heads if by == "head_pos" else 1)
    with torch.no_grad():
        tl, tl_s, tl_mb = timed(device, run_tl, repeats)
        stats: dict = {}
        ours, lib_s, lib_mb = timed(
            device,
            lambda: patching.patch_sweep(
                model, case.corrupted, clean_cache, site, by, case.metric, logit_positions=[-1], stats=stats
            ),
            repeats,
        )
        noskip_stats: dict = {}
        noskip, noskip_s, _ = timed(
            device,
            lambda: patching.patch_sweep(
                model,
                case.corrupted,
                clean_cache,
                site,
                by,
                case.metric,
                logit_positions=[-1],
                skip_identical=False,
                stats=noskip_stats,
            ),
            repeats,
        )
    if tl_positions is None:
        tl_patches = n_patches
        diff = max((ours - tl).abs().max().item(), (noskip - tl).abs().max().item())
    else:
        tl_patches = len(tl)
        pos = torch.tensor(tl_positions)
        diff = max(
            (ours[:, pos].flatten() - tl).abs().max().item(),
            (noskip[:, pos].flatten() - tl).abs().max().item(),
        )
        tl_s *= n_patches / tl_patches
    tl_flops = n_patches * full_forward_flops(cfg, n_pos) * batch
    return Row(
        case.name,
        sweep,
        n_patches,
        tl_patches,
        tl_s,
        lib_s,
        tl_flops / lib_flops(cfg, site, stats, batch, n_pos, 1),
        noskip_s,
        tl_flops / lib_flops(cfg, site, noskip_stats, batch, n_pos, 1),
        diff,
        tl_mb,
        lib_mb,
        stats["skipped"],
    )


# --------------------------------------------------------------------------------------------
# reporting


def table(rows: list[Row]) -> str:
    frame = pd.DataFrame(
        [
            {
                "model": r.model,
                "sweep": r.sweep,
                "patches": r.patches,
                "TL s": f"{r.tl_s:.3g}"
                + ("" if r.tl_patches == r.patches else f" (ext. from {r.tl_patches})"),
                "lib s": f"{r.lib_s:.3g}",
                "speed-up": f"{r.ratio:.3g}x",
                "ideal (FLOPs)": f"{r.ideal:.3g}x",
                "lib no-skip s": f"{r.noskip_s:.3g}",
                "speed-up no-skip": f"{r.ratio_noskip:.3g}x",
                "ideal no-skip": f"{r.ideal_noskip:.3g}x",
                "skipped": r.skipped,
                "max abs diff": f"{r.max_diff:.1e}",
                "peak MB TL": f"{r.tl_mb:.0f}",
                "peak MB lib": f"{r.lib_mb:.0f}",
            }
            for r in rows
        ]
    )
    return frame.to_markdown(index=False)


def write_results(path: str | Path, title: str, module: str, device: str, text: str, notes: str) -> None:
    """A benchmark's results page: its title, the command that wrote it, the machine, the
    results ``text`` and the column ``notes``."""
    flag = "" if device == "cpu" else f" --device {device}"
    Path(path).write_text(
        f"# {title}\n\nWritten by `python -m {module}{flag}`; do not edit by hand.\n\n"
        + "\n".join(machine(device))
        + f"\n\n{text}\n{notes}\n"
    )
    print(f"wrote {path}")


def machine(device: str) -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    lines = [f"- CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"]
    if device == "cuda":
        lines.append(f"- GPU: {torch.cuda.get_device_name()}")
    lines += [
        f"- torch {torch.__version__}, transformer-lens {importlib.metadata.version('transformer-lens')}, "
        f"Python {platform.python_version()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
    ]
    return lines


NOTES = """\
Columns: *TL s* is `transformer_lens.patching.get_act_patch_*` (one full forward pass per patch);
where marked *ext. from N*, TransformerLens ran N of the patches (the listed positions for every
layer and head) and its time is scaled to the full sweep: each of its patches costs one full
forward pass, whatever the patch, so the scaling is exact up to timing noise. *lib s* is
`lib.patching.patch_sweep(..., logit_positions=[-1])`; *speed-up* is TL s / lib s; *ideal (FLOPs)*
is the ratio of FLOPs counted from the config (TransformerLens's full forwards against the patched
forwards lib runs, which start at the patched layer and position, plus lib's one target run).
*skipped* patches change nothing (the clean and corrupted activations are equal there: positions
before the corrupted token), so lib returns the unpatched metric for them without a forward
pass; the *no-skip* columns turn that off (`skip_identical=False`), the speed-up any prompts get.
*max abs diff* compares lib (both modes) with TransformerLens on every patch TransformerLens ran.
*peak MB*: memory above the level before each call (CPU: resident-set high-water mark; GPU:
allocated memory)."""


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.patching", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=env.DEVICES, help="cpu (default), cuda or auto")
    parser.add_argument("--smoke", action="store_true", help="tiny models, runs in seconds, writes nothing")
    parser.add_argument(
        "--tl-all",
        action="store_true",
        help="on the GPT-2-small-size model, time TransformerLens on every patch (default: on 4 "
        "positions for every layer and head, scaled to the full sweep; the full loop takes "
        "about half an hour on 2 CPU cores)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    device = str(env.pick_device(args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    grad, tl_tqdm = torch.is_grad_enabled(), tl_patching.tqdm
    torch.set_grad_enabled(False)
    if env.progress_disabled():  # TransformerLens's loop has its own progress bar
        tl_patching.tqdm = functools.partial(tl_tqdm, disable=True)
    try:
        return _run(args, device)
    finally:
        torch.set_grad_enabled(grad)
        tl_patching.tqdm = tl_tqdm


def _run(args: argparse.Namespace, device: str) -> list[Row]:
    others = OtherJobs()

    if args.smoke:
        cases = [
            induction_case(device, seq_len=3, batch=2),
            gpt2_size_case(
                device,
                dict(n_layers=2, d_model=32, n_heads=2, d_head=16, d_mlp=64, d_vocab=50, n_ctx=16),
                n_pos=6,
                batch=2,
                tl_subset=False,
            ),
        ]
        repeats = 1
    else:
        cases = [
            induction_case(device, seq_len=25, batch=8),
            gpt2_size_case(
                device,
                dict(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257, n_ctx=1024),
                n_pos=20,
                batch=8,
                tl_subset=not args.tl_all,
            ),
        ]
        repeats = 3
    missing = [c for c in cases if c is None]
    cases = [c for c in cases if c is not None]
    rows = []
    for case in cases:
        for sweep in SWEEPS:
            big = case.model.cfg.n_layers >= 12
            row = bench(case, sweep, device, 1 if big else repeats)
            rows.append(row)
            print(
                f"{case.name:>18} | {sweep:<21} | TL {row.tl_s:8.3g} s | lib {row.lib_s:8.3g} s | "
                f"{row.ratio:6.3g}x (ideal {row.ideal:.3g}x) | no-skip {row.ratio_noskip:.3g}x | "
                f"max diff {row.max_diff:.1e}",
                flush=True,
            )
    share = others.share()
    contended = share > 0.1
    lines = [
        f"Device: {device}. While it ran, other processes used {share:.0%} of the machine's {os.cpu_count()} "
        f"CPU cores"
        + (
            ": timings are contended (both sides alike, since each sweep is timed "
            "right after the other, but with more noise)."
            if contended
            else "."
        )
    ]
    for case in cases:
        lines.append(
            f"- {case.name} ({case.model.cfg.n_layers} layers, d_model {case.model.cfg.d_model}, "
            f"{case.model.cfg.n_heads} heads, d_vocab {case.model.cfg.d_vocab}): {case.prompts}; metric at "
            f"the last position"
            + (
                ""
                if case.tl_positions is None
                else f"; TransformerLens's head x position loop timed on positions "
                f"{case.tl_positions} (all layers and heads) and scaled"
            )
        )
    if missing:
        lines.append(
            "- induction-2l: skipped, lib/organisms/induction-2l/ is missing "
            "(python -m lib.zoo train induction-2l)"
        )
    text = "\n".join(lines) + "\n\n" + table(rows) + "\n"
    print()
    print(text)
    head = [r for r in rows if r.sweep == "z head x pos"][-1]
    print(
        f"head x position on {head.model} ({device}): lib {head.lib_s:.3g} s vs TransformerLens "
        f"{head.tl_s:.3g} s: {head.ratio:.3g}x faster (ideal from FLOPs {head.ideal:.3g}x; "
        f"{head.ratio_noskip:.3g}x without skipping), max abs diff {head.max_diff:.1e}"
    )

    if not args.smoke:
        write_results(RESULTS, "Patching benchmark results", "benchmarks.patching", device, text, NOTES)
    return rows


if __name__ == "__main__":
    main()
