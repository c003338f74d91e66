"""`hf`: a transformers AutoModelForAudioClassification (AST, wav2vec2, HuBERT, ...), optional.

Loaded from a local checkpoint directory (``checkpoint``) or built with random weights from a
config (``config``: a dict, or a model type such as "wav2vec2"). Nothing is ever downloaded.
Waveform-input models (wav2vec2, HuBERT) take the 16-kHz waveform, normalised per example; models
with a spectrogram front-end use the checkpoint's feature extractor.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ParameterError
from ..features import FeatureConfig
from ._registry import register_model

# model types whose input is the raw waveform (normalised per example, as their extractors do)
WAVEFORM_MODELS = {"wav2vec2", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat", "sew", "sew-d"}


class HFAudioClassifier(nn.Module):
    def __init__(self, n_labels: int, checkpoint: str | None = None, config: dict | str | None = None,
                 sr: int = 16000, checkpoint_extractor: str | None = None) -> None:
        super().__init__()
        try:
            import transformers
        except ImportError:
            raise ParameterError("architecture 'hf' needs transformers: pip install 'musicgenre[hf]'") from None
        self.sr = sr
        self.extractor = None
        if checkpoint:
            self.net = transformers.AutoModelForAudioClassification.from_pretrained(
                checkpoint, num_labels=n_labels, ignore_mismatched_sizes=True, local_files_only=True)
            try:
                self.extractor = transformers.AutoFeatureExtractor.from_pretrained(checkpoint, local_files_only=True)
            except OSError:
                self.extractor = None
        else:
            if isinstance(config, dict):
                cfg = transformers.AutoConfig.for_model(**config)
            else:
                cfg = transformers.AutoConfig.for_model(config or "wav2vec2")
            cfg.num_labels = n_labels
            self.net = transformers.AutoModelForAudioClassification.from_config(cfg)
            if checkpoint_extractor:
                self.extractor = transformers.AutoFeatureExtractor.from_pretrained(
                    checkpoint_extractor, local_files_only=True)
        self.waveform_input = self.net.config.model_type in WAVEFORM_MODELS
        if not self.waveform_input and self.extractor is None:
            raise ParameterError(f"hf model type {self.net.config.model_type!r} takes spectrogram features: give a "
                                 "checkpoint directory with its preprocessor_config.json")

    def self_contained_args(self, args: dict[str, Any], out: Any) -> dict[str, Any]:
        """Constructor arguments that rebuild this model from its own directory on any machine: the
        network's config instead of the checkpoint path (the weights are in model.safetensors), and the
        feature extractor saved next to them (``./`` paths are relative to the model directory)."""
        args = {k: v for k, v in args.items() if k != "checkpoint"}
        args["config"] = self.net.config.to_dict()
        if self.extractor is not None:
            self.extractor.save_pretrained(str(out / "extractor"))
            args["checkpoint_extractor"] = "./extractor"
        return args

    def forward(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.waveform_input:
            x = (y - y.mean(dim=1, keepdim=True)) / (y.std(dim=1, keepdim=True) + 1e-7)
            return {"logits": self.net(input_values=x).logits}
        assert self.extractor is not None
        feats = self.extractor(list(y.detach().cpu().numpy()), sampling_rate=self.sr, return_tensors="pt")
        return {"logits": self.net(**{k: v.to(y.device) for k, v in feats.items()}).logits}


@register_model(features=FeatureConfig(sr=16000, input="waveform", window_seconds=10.0),
                head_names=("projector", "classifier"), requires=("torch", "transformers"),
                extra="hf")
def hf(**kw: Any) -> HFAudioClassifier:
    """A transformers audio classifier (AST, wav2vec2, HuBERT) from a local checkpoint or a config."""
    return HFAudioClassifier(**kw)
