"""Benchmarks and the development corpus (not installed with the package)."""
