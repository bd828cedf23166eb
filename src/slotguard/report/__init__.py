"""Diagnostics and how they are shown: formats, summaries, noqa, baselines."""
