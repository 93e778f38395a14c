"""Tuan's benchmarks: each prints its figure next to a baseline measured in the same run.

``python -m benchmarks [--quick]`` (or ``make bench``) runs them all; see ``benchmarks/run.py``.
"""
