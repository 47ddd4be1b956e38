"""Benchmark client for NIM (and any OpenAI-compatible endpoint): `python -m client --help`."""
