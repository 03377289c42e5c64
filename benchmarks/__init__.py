"""Benchmarks against the test bed: ``python -m benchmarks.bench_<name>`` (see each module)."""
