"""Benchmarks: one command each (`python -m bench.<name>`), printing a final `name=value` line."""
