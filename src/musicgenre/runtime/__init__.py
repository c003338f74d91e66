"""Backends that run a model directory's network: ``onnx`` (ONNX Runtime, no torch needed)."""
