"""Benchmarks of the SCV pipeline: ``python -m benchmarks.run --records 1000000``.

Benchmarks are not tests: they measure, they do not assert. CI runs a tiny smoke
version (``tests/test_benchmark_smoke.py``); the 1M and 10M runs, their machine
and their date are recorded in ``benchmarks/RESULTS.md``.
"""
