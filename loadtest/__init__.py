"""Locust users, the corpus and the benchmark that proves the batching."""
