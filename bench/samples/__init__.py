"""Functions the benchmarks serve: the trivial hop, the bare baselines."""
