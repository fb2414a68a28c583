"""Encoder -> ONNX model bundle (graphs + config.json + tokenizer.json), parity-checked against PyTorch."""
