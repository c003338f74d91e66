"""`musicgenre explain`: which time-frequency regions drove the decision (gradient saliency), and
the first and last convolution layers' activations (``--filters``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import save_figure
from ..windows import Windows


def _spec_and_head(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """Split any model into (spectrogram, function from spectrogram to logits)."""
    from ..models.architectures import SpectrogramModel

    if isinstance(module, SpectrogramModel):
        return module.spectrogram(x), lambda s: module.forward_spec(s)["logits"]
    # MusiCNN models take (batch, frames, mels) log-mel windows: the input is the spectrogram
    return x.transpose(1, 2), lambda s: module(s.transpose(1, 2))["logits"]


def explain(model: str | Path | None, src: Any, out: Path, *, filters: bool = False, max_seconds: float = 30.0,
            device: str = "cpu") -> dict[str, Any]:
    """Save a saliency PNG at ``out`` (and ``<stem>_filters_first/last.png`` with ``filters``).

    The label and score are the pipeline's own (same windows, temperature and clip aggregation as
    ``predict`` with the same ``max_seconds``); the saliency is the gradient of that label's logit."""
    from matplotlib.figure import Figure

    from ..errors import ParameterError
    from ..pipeline import Classifier, load
    from ..runtime.torch import TorchRunner
    from ..scores import calibrated_clip_scores, loud_windows

    clf = load(model, device=device, backend="torch")
    if not isinstance(clf, Classifier):
        raise ParameterError("explain needs a single model, not an ensemble")
    windows = Windows(src, clf.model.features, max_seconds=max_seconds)
    inputs, peaks = windows.all()
    scores = calibrated_clip_scores(clf.run(inputs)[0], loud_windows(peaks), clf.model.temperature,
                                    clf.model.temperatures)
    target = int(scores.argmax())
    runner = clf.model.runner
    assert isinstance(runner, TorchRunner)  # loaded with backend="torch"
    module = runner.module
    x = torch.from_numpy(inputs).to(clf.device)
    spec, head = _spec_and_head(module, x)
    spec = spec.detach().requires_grad_(True)
    logits = head(spec)
    logits[torch.from_numpy(loud_windows(peaks)).to(logits.device), target].sum().backward()
    assert spec.grad is not None
    image = torch.cat(list(spec.detach()), dim=1).cpu().numpy()  # windows side by side: (freq, time)
    saliency = torch.cat(list(spec.grad.abs()), dim=1).cpu().numpy()
    saliency = np.clip(saliency / (np.percentile(saliency, 99) + 1e-12), 0, 1)  # a few hot pixels would hide the rest
    label = clf.labels[target]
    seconds = windows.seconds
    fig = Figure(figsize=(10, 6), dpi=100)
    a, b = fig.subplots(2, 1, sharex=True)
    extent = (0, seconds, 0, image.shape[0])
    a.imshow(image, origin="lower", aspect="auto", cmap="magma", extent=extent)
    a.set_title(f"{windows.name}: spectrogram (model input)")
    b.imshow(image, origin="lower", aspect="auto", cmap="gray", extent=extent)
    b.imshow(saliency, origin="lower", aspect="auto", cmap="jet", alpha=0.55, extent=extent)
    b.set_title(f"saliency for '{label}' ({float(scores[target]):.0%}): |d logit / d input|")
    b.set_xlabel("time (s)")
    for ax in (a, b):
        ax.set_ylabel("frequency bin")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
    result: dict[str, Any] = {"label": label, "score": float(scores[target]), "scores": scores.tolist(),
                              "saliency": str(out)}
    if filters:
        result["filters"] = save_filter_activations(module, x[:1], out)
    return result


def save_filter_activations(module: nn.Module, x: torch.Tensor, out: Path) -> list[str]:
    """Activations of the first and last convolution layers for one window, one panel per filter."""
    from matplotlib.figure import Figure

    convs = [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    if not convs:
        return []
    acts: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, key=key: acts.__setitem__(key, o.detach()))
             for key, m in (("first", convs[0]), ("last", convs[-1]))]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in hooks:
            h.remove()
    paths = []
    for key, act in acts.items():
        a = act[0].cpu().numpy()  # (channels, ...) for the first window
        n = min(16, a.shape[0])
        fig = Figure(figsize=(10, 7), dpi=90)
        axes = fig.subplots(4, 4)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n:
                img = a[i] if a[i].ndim == 2 else np.atleast_2d(a[i])
                ax.imshow(img, origin="lower", aspect="auto", cmap="viridis")
                ax.set_title(f"filter {i}", fontsize=8)
        fig.suptitle(f"{key} convolution layer: {n} of {a.shape[0]} filters")
        fig.tight_layout()
        path = out.with_name(f"{out.stem}_filters_{key}.png")
        save_figure(fig, path)
        paths.append(str(path))
    return paths
