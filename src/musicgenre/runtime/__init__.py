"""Runtime backends that run a loaded model on batches of windows.

Each backend has ``backend`` and ``device`` names and ``run(x: np.ndarray) -> {"logits": ..., "tags": ...}``
returning numpy arrays. ``onnx`` (ONNX Runtime, the default on CPU for shipped models) needs no torch;
``torch`` runs any architecture, on CPU or CUDA.
"""
