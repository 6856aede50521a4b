"""Measures: FID from per-shard Inception statistics (frechet) and linear evaluation of a frozen
encoder (offline probe, feature probe, k-NN)."""
