"""`hf`: a transformers AutoModelForAudioClassification (AST, wav2vec2, HuBERT, ...), optional.

Loaded from a local checkpoint directory (``checkpoint``) or built with random weights from a
config (``config``: a dict, or a model type such as "wav2vec2"). Nothing is ever downloaded.
Waveform-input models (wav2vec2, HuBERT) take the 16-kHz waveform, normalised per example as their
feature extractor does (unless its ``do_normalize`` is false). AST's log-mel filterbank is computed here
in torch (`KaldiFbank`), batched on the model's device, from the extractor's settings: transformers'
ASTFeatureExtractor uses torchaudio when it is installed and numpy otherwise (one frame at a time), so
its class is never imported: training and prediction compute the same features on every machine, with
or without torchaudio. Other spectrogram front-ends (Whisper, ...) use the checkpoint's own feature
extractor. A trained directory is self-contained (`self_contained_args`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import write_json
from ..errors import ParameterError
from ..features import FeatureConfig
from ._registry import register_model

# model types whose input is the raw waveform (normalised per example, as their extractors do)
WAVEFORM_MODELS = {"wav2vec2", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat", "sew", "sew-d"}
EXTRACTOR_FILE = "preprocessor_config.json"


class KaldiFbank(nn.Module):
    """transformers' ASTFeatureExtractor in torch: Kaldi-compatible log-mel filterbanks (25-ms frames every
    10 ms, DC offset removed, pre-emphasis 0.97, symmetric Hann window, 512-point power spectrum, Kaldi mel
    triangles from 20 Hz), zero-padded or cut to ``max_length`` frames, then ``(x - mean) / (2 * std)``.
    The same numbers as the extractor's numpy path (which matches torchaudio's ``kaldi.fbank``), for a batch
    at once. (B, samples) -> (B, max_length, num_mel_bins)."""

    FRAME, HOP, N_FFT, PREEMPHASIS, FLOOR = 400, 160, 512, 0.97, 1.192092955078125e-07
    mel: torch.Tensor
    window: torch.Tensor

    def __init__(self, sampling_rate: int = 16000, num_mel_bins: int = 128, max_length: int = 1024,
                 do_normalize: bool = True, mean: float = -4.2677393, std: float = 4.5689974) -> None:
        super().__init__()
        self.max_length, self.do_normalize, self.mean, self.std = int(max_length), bool(do_normalize), mean, std
        # Kaldi's mel triangles, drawn in mel space (1127 ln(1 + f/700)) over 20 Hz..Nyquist, as transformers'
        # mel_filter_bank(mel_scale="kaldi", triangularize_in_mel_space=True): built here because importing
        # transformers.audio_utils imports torchaudio wherever it is installed
        def mel(f: torch.Tensor) -> torch.Tensor:
            return 1127.0 * torch.log1p(f / 700.0)

        n_bins = self.N_FFT // 2 + 1
        edges = torch.linspace(float(mel(torch.tensor(20.0, dtype=torch.float64))),
                               float(mel(torch.tensor(sampling_rate // 2, dtype=torch.float64))), num_mel_bins + 2,
                               dtype=torch.float64)
        bins = mel(torch.arange(n_bins, dtype=torch.float64) * sampling_rate / self.N_FFT)[:, None]
        down = (bins - edges[:-2]) / (edges[1:-1] - edges[:-2])
        up = (edges[2:] - bins) / (edges[2:] - edges[1:-1])
        filters = torch.minimum(down, up).clamp_min(0.0)  # (257, num_mel_bins)
        # derived from the settings, so not part of the weights (persistent=False)
        self.register_buffer("mel", filters.float(), persistent=False)
        self.register_buffer("window", torch.hann_window(self.FRAME, periodic=False, dtype=torch.float64).float(),
                             persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(y.device.type, enabled=False):  # log of power spectra: float32 even under AMP
            y = y.float()
            if y.shape[1] >= self.FRAME:
                frames = y.unfold(1, self.FRAME, self.HOP)  # (B, frames, 400), no centring (snip_edges)
                frames = frames - frames.mean(dim=-1, keepdim=True)
                frames = torch.cat([frames[..., :1] * (1 - self.PREEMPHASIS),
                                    frames[..., 1:] - self.PREEMPHASIS * frames[..., :-1]], dim=-1)
                power = torch.fft.rfft(frames * self.window, n=self.N_FFT).abs().pow(2)
                fbank = (power @ self.mel).clamp_min(self.FLOOR).log()
            else:
                fbank = y.new_zeros(y.shape[0], 0, self.mel.shape[1])
            fbank = fbank[:, : self.max_length]
            fbank = nn.functional.pad(fbank, (0, 0, 0, self.max_length - fbank.shape[1]))
            return (fbank - self.mean) / (self.std * 2) if self.do_normalize else fbank


def check_torchaudio() -> None:
    """musicgenre never uses torchaudio, but transformers imports it wherever it is installed (its audio
    utilities, which its models import): one that is installed but does not import (a build for another
    torch) would fail there, deep inside transformers. Say so plainly instead."""
    if importlib.util.find_spec("torchaudio") is None:
        return
    try:
        import torchaudio  # noqa: F401
    except Exception as e:  # ImportError, OSError (undefined symbol), RuntimeError ...
        raise ParameterError(f"torchaudio is installed but does not import ({type(e).__name__}: {e}); transformers "
                             "imports it whenever it is installed and musicgenre does not need it: uninstall it, "
                             f"or install the build that matches torch {torch.__version__}") from None


def extractor_config(path: str) -> dict[str, Any] | None:
    """A checkpoint directory's feature-extractor settings (``preprocessor_config.json``, or nested in
    ``processor_config.json``) as saved, without importing the extractor's class; None if it has none."""
    from transformers import FeatureExtractionMixin

    try:
        config, _ = FeatureExtractionMixin.get_feature_extractor_dict(path, local_files_only=True)
    except OSError:
        return None
    return dict(config)


class HFAudioClassifier(nn.Module):
    def __init__(self, n_labels: int, checkpoint: str | None = None, config: dict | str | None = None,
                 sr: int = 16000, checkpoint_extractor: str | None = None, normalize: bool | None = None) -> None:
        super().__init__()
        try:
            import transformers
        except ImportError:
            raise ParameterError("architecture 'hf' needs transformers: pip install 'musicgenre[hf]'") from None
        check_torchaudio()
        self.sr = sr
        if checkpoint:
            labels = {i: f"LABEL_{i}" for i in range(n_labels)}
            self.net = transformers.AutoModelForAudioClassification.from_pretrained(
                checkpoint, id2label=labels, label2id={v: k for k, v in labels.items()},
                ignore_mismatched_sizes=True, local_files_only=True)
            extractor_path: str | None = checkpoint
        else:
            if isinstance(config, dict):
                cfg = transformers.AutoConfig.for_model(**config)
            else:
                cfg = transformers.AutoConfig.for_model(config or "wav2vec2")
            cfg.num_labels = n_labels
            self.net = transformers.AutoModelForAudioClassification.from_config(cfg)
            extractor_path = checkpoint_extractor
        # the extractor's settings, saved with the trained model (self_contained_args)
        self.extractor_config = extractor_config(extractor_path) if extractor_path else None
        ex = self.extractor_config or {}
        if ex.get("sampling_rate", sr) != sr:
            raise ParameterError(f"the checkpoint's feature extractor expects {ex['sampling_rate']} Hz audio, "
                                 f"not {sr} Hz")
        self.waveform_input = self.net.config.model_type in WAVEFORM_MODELS
        # waveform models: normalise per example unless the extractor says not to (HuBERT base)
        self.normalize_waveform = bool(ex.get("do_normalize", True)) if normalize is None else normalize
        self.fbank: KaldiFbank | None = None
        self.extractor: Any = None
        if self.waveform_input:
            return
        if ex.get("feature_extractor_type") == "ASTFeatureExtractor":
            self.fbank = KaldiFbank(sampling_rate=sr, **{k: ex[k] for k in ("num_mel_bins", "max_length",
                                                                            "do_normalize", "mean", "std") if k in ex})
        elif extractor_path and self.extractor_config is not None:
            self.extractor = transformers.AutoFeatureExtractor.from_pretrained(extractor_path, local_files_only=True)
        else:
            raise ParameterError(f"hf model type {self.net.config.model_type!r} takes spectrogram features: give a "
                                 f"checkpoint directory with its {EXTRACTOR_FILE}")

    def self_contained_args(self, args: dict[str, Any], out: Path) -> dict[str, Any]:
        """Constructor arguments that rebuild this model from its own directory on any machine: the
        network's config instead of the checkpoint path (the weights are in model.safetensors), and the
        feature extractor's settings saved next to them (``./`` paths are relative to the model directory)."""
        args = {k: v for k, v in args.items() if k not in ("checkpoint", "checkpoint_extractor")}
        config = self.net.config.to_dict()
        config.pop("_name_or_path", None)  # where the checkpoint was: not needed, and private
        args["config"] = config
        if self.waveform_input:
            args["normalize"] = self.normalize_waveform
        if self.extractor_config is not None:
            (Path(out) / "extractor").mkdir(parents=True, exist_ok=True)
            write_json(Path(out) / "extractor" / EXTRACTOR_FILE, self.extractor_config)
            args["checkpoint_extractor"] = "./extractor"
        return args

    def forward(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.waveform_input:
            if self.normalize_waveform:  # as Wav2Vec2FeatureExtractor: zero mean, unit (population) variance
                y = (y - y.mean(dim=1, keepdim=True)) / torch.sqrt(y.var(dim=1, keepdim=True, correction=0) + 1e-7)
            return {"logits": self.net(input_values=y).logits}
        if self.fbank is not None:
            return {"logits": self.net(input_values=self.fbank(y)).logits}
        feats = self.extractor(list(y.detach().float().cpu().numpy()), sampling_rate=self.sr, return_tensors="pt")
        return {"logits": self.net(**{k: v.to(y.device) for k, v in feats.items()}).logits}


@register_model(features=FeatureConfig(sr=16000, input="waveform", window_seconds=10.0),
                head_names=("projector", "classifier"), requires=("torch", "transformers"),
                extra="hf")
def hf(**kw: Any) -> HFAudioClassifier:
    """A transformers audio classifier (AST, wav2vec2, HuBERT) from a local checkpoint or a config."""
    return HFAudioClassifier(**kw)
