"""Speed and memory benchmarks of the book's library (not timed tests): ``python -m benchmarks.patching``."""
