"""What the benchmarks' smoke tests share: run one in smoke mode on one thread and check that it
left its results file as it was."""

from pathlib import Path

import torch


def run_smoke(bench, *args: str):
    """``bench.main(["--smoke", *args])`` on one thread; asserts the results file is unchanged."""
    results = Path(bench.RESULTS)
    before = results.read_text() if results.exists() else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = bench.main(["--smoke", *args])
    finally:
        torch.set_num_threads(threads)
    assert (results.read_text() if results.exists() else None) == before
    return out
