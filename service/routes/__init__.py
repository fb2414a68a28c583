"""HTTP routes: encode, OpenAI-compatible embeddings, health and metrics."""
