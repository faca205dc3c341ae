"""Benchmarks of the plugin catalog: what this shape costs, as ratios.

``python -m bench`` (``make bench``) measures, in one run on this machine,
the JetStream source hop against the bare limit of the same I/O, the whole
flow from mutation to callback at rising load, each function's cold start and
memory against a bare function, and a FastStream re-implementation of the
chain. Absolute times drift on a shared machine, so every figure that matters
is a ratio taken in the same run. Results go to ``bench/results.json``,
``bench/results.md`` and ``bench/results.png``.
"""
