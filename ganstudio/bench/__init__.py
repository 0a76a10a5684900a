"""Benchmarks run by `ganstudio bench`."""
