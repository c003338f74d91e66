"""Per-architecture cost: training step time per sample and inference time per 30-s clip.

    python -m benchmarks.bench_architectures [--device cpu|cuda]   # -> benchmarks/results/architectures-<device>.json

Full-size default configurations (VGG19_BN at 224x224, etc.), random weights, random audio.
Train step: forward + backward + AdamW step on a batch of segments of the architecture's window,
median of 5 steps after 2 warm-up steps, divided by the batch size. Inference: a 30-s clip cut into
the architecture's windows, one batched forward pass, median of 5.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch

from benchmarks._common import RESULTS, timed, write_results
from musicgenre.loader import build_pretrained
from musicgenre.models import get_architecture

ARCHS = {"vgg19_bn_cqt": 4, "crnn": 16, "parallel_cnn_rnn": 16, "musicnn_transfer": 16, "musicnn_genre": 0}


def median_s(fn: Callable[[], object], device: str, repeats: int = 5) -> float:
    """Median seconds of ``repeats`` calls after 2 warm-up calls (``timed``; waits for the GPU's queue)."""
    sync = torch.cuda.synchronize if device == "cuda" else None
    return statistics.median(timed({"fn": fn}, repeats, warmup=2, sync=sync)["fn"])


def bench(arch: str, batch: int, dev: str) -> dict[str, float]:
    row: dict[str, float]
    if arch == "musicnn_genre":
        model = build_pretrained(arch, n_labels=10).to(dev).eval()
        clip = torch.randn(10, 187, 96, device=dev)  # 30 s = 10 MusiCNN windows of log-mel
        head = model.head
        assert isinstance(head, torch.nn.Module)
        row = {"params_trainable": sum(p.numel() for p in head.parameters())}
    else:
        features = get_architecture(arch).features  # the windows it takes, declared at registration
        args = {} if arch == "musicnn_transfer" else {"sr": features.sr}
        model = build_pretrained(arch, n_labels=10, **args).to(dev)
        sr, seconds = features.sr, features.window_seconds
        window = round(sr * seconds)
        x = torch.randn(batch, window, device=dev) * 0.1
        y = torch.randint(0, 10, (batch,), device=dev)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step() -> None:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x)["logits"], y).backward()
            opt.step()

        model.train()
        row = {"params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
               "train_batch": batch, "train_seconds_per_sample": round(median_s(step, dev) / batch, 4)}
        model.eval()
        clip = torch.randn(max(1, int(30 // seconds)), window, device=dev) * 0.1
    with torch.inference_mode():
        row["inference_seconds_per_30s_clip"] = round(median_s(lambda: model(clip), dev), 4)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    dev = args.device
    results: dict = {"device": torch.cuda.get_device_name() if dev == "cuda" else
                     f"cpu, {torch.get_num_threads()} threads"}
    for arch, batch in ARCHS.items():
        results[arch] = bench(arch, batch, dev)
        print(arch, results[arch], flush=True)
    write_results(RESULTS / f"architectures-{dev}.json", results)


if __name__ == "__main__":
    main()
