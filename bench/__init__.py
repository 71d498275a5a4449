"""Benchmarks, run by hand (see bench/redirect.py). Not part of the application."""
