"""Reads pytest-benchmark JSON and turns it into tables, plots, diffs and a gate verdict.

Never imports torch or jax.
"""
