"""The field's genre architectures, all taking a waveform (batch, samples) and returning logits.

Each builder is registered by name (``musicgenre models`` lists them) and takes keyword arguments
that are saved in the model's config.json, so a trained directory rebuilds itself exactly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError
from ..features import FeatureConfig
from ._registry import register_model
from .frontends import CQT, LogMelSpectrogram, frame_tensor

VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


class SpecAugment(nn.Module):
    """SpecAugment (Park et al. 2019): random frequency and time masks, training mode only."""

    def __init__(self, freq_mask: int = 12, time_mask: int = 24, n_masks: int = 2) -> None:
        super().__init__()
        self.freq_mask, self.time_mask, self.n_masks = freq_mask, time_mask, n_masks

    def forward(self, spec: torch.Tensor) -> torch.Tensor:  # (..., freq, time)
        if not self.training:
            return spec
        spec = spec.clone()
        fill = spec.mean()
        for _ in range(self.n_masks):
            for dim, width in ((-2, self.freq_mask), (-1, self.time_mask)):
                size = spec.shape[dim]
                w = int(torch.randint(0, min(width, size // 4) + 1, ()))
                start = int(torch.randint(0, max(1, size - w), ()))
                spec.narrow(dim, start, w).fill_(fill)
        return spec


class SpectrogramModel(nn.Module):
    """Waveform models split in two: ``spectrogram(y)`` and ``forward_spec(spec)``, so training can
    mask the spectrogram (SpecAugment) and ``explain`` can take gradients with respect to it."""

    spec_augment: nn.Module | None = None

    def spectrogram(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_spec(self, spec: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        spec = self.spectrogram(y)
        if self.training and self.spec_augment is not None:
            spec = self.spec_augment(spec)
        return self.forward_spec(spec)


class _Normalize(nn.Module):
    """Per-example standardisation of a spectrogram: level-independent input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(dim=(-2, -1), keepdim=True)) / (x.std(dim=(-2, -1), keepdim=True) + 1e-5)


class VGG19BNCQT(SpectrogramModel):
    """CQT -> 224x224 3-channel image -> VGG19 with BatchNorm after every conv -> classifier."""

    def __init__(self, n_labels: int, sr: int = 22050, width: int = 64, image_size: int = 224,
                 hidden: int = 4096, dropout: float = 0.5) -> None:
        super().__init__()
        self.frontend = CQT(sr=sr)
        self.norm = _Normalize()
        self.image_size = image_size
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                c_out = int(v) * width // 64
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 49, hidden), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(dropout), nn.Linear(hidden, n_labels),
        )

    def spectrogram(self, y: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, n_bins, frames) normalised CQT, low frequencies at the bottom."""
        return self.norm(self.frontend(y)).flip(1)

    def forward_spec(self, spec: torch.Tensor) -> dict[str, torch.Tensor]:
        img = F.interpolate(spec[:, None], size=(self.image_size, self.image_size), mode="bilinear",
                            align_corners=False).expand(-1, 3, -1, -1)  # (batch, 3, 224, 224) image
        x = self.pool(self.features(img))
        return {"logits": self.classifier(x.flatten(1))}


class CRNN(SpectrogramModel):
    """Log-mel (128 bands, n_fft 2048, hop 512) -> 3 x [Conv1D, ReLU, BN, MaxPool1D] over time
    -> LSTM(96) -> Dense(64) -> logits."""

    def __init__(self, n_labels: int, sr: int = 22050, n_mels: int = 128, filters: int = 64, lstm: int = 96,
                 dense: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        self.frontend = LogMelSpectrogram(sr=sr, n_fft=2048, hop_length=512, n_mels=n_mels)
        self.norm = _Normalize()
        blocks: list[nn.Module] = []
        c_in = n_mels  # mel bands are the channels: convolution runs along time
        for _ in range(3):
            blocks += [nn.Conv1d(c_in, filters, 5, padding=2), nn.ReLU(), nn.BatchNorm1d(filters), nn.MaxPool1d(2)]
            c_in = filters
        self.conv = nn.Sequential(*blocks)
        self.lstm = nn.LSTM(filters, lstm, batch_first=True)
        self.dense = nn.Sequential(nn.Dropout(dropout), nn.Linear(lstm, dense), nn.ReLU(), nn.Dropout(dropout))
        self.out = nn.Linear(dense, n_labels)

    def spectrogram(self, y: torch.Tensor) -> torch.Tensor:
        return self.norm(self.frontend(y))  # (batch, n_mels, frames)

    def forward_spec(self, spec: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.conv(spec)  # (batch, filters, frames / 8)
        _, (last, _) = self.lstm(h.transpose(1, 2))  # last hidden state: (1, batch, lstm)
        return {"logits": self.out(self.dense(last[0]))}


class ParallelCNNRNN(SpectrogramModel):
    """Five Conv2D+MaxPool blocks in parallel with a MaxPool(4,2) + bidirectional GRU(64) branch;
    the 256-d CNN and 128-d RNN summaries are concatenated into the output layer."""

    def __init__(self, n_labels: int, sr: int = 22050, n_mels: int = 128, gru: int = 64,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.frontend = LogMelSpectrogram(sr=sr, n_fft=2048, hop_length=512, n_mels=n_mels)
        self.norm = _Normalize()
        chans, pools = (16, 32, 64, 64, 64), ((2, 2), (2, 2), (2, 2), (4, 4), (4, 4))
        blocks: list[nn.Module] = []
        c_in = 1
        for c, p in zip(chans, pools):
            blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(p, ceil_mode=True)]
            c_in = c
        self.cnn = nn.Sequential(*blocks)
        self.cnn_pool = nn.AdaptiveAvgPool2d((4, 1))  # 64 channels x 4 frequency bands = 256
        self.rnn_pool = nn.MaxPool2d((4, 2))
        self.gru = nn.GRU(n_mels // 4, gru, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(256 + 2 * gru, n_labels)

    def spectrogram(self, y: torch.Tensor) -> torch.Tensor:
        return self.norm(self.frontend(y))

    def forward_spec(self, spec: torch.Tensor) -> dict[str, torch.Tensor]:
        spec = spec[:, None]  # (batch, 1, n_mels, frames)
        cnn = self.cnn_pool(self.cnn(spec)).flatten(1)  # (batch, 256)
        r = self.rnn_pool(spec)[:, 0].transpose(1, 2)  # (batch, frames / 2, n_mels / 4)
        _, h = self.gru(r)  # (2, batch, gru)
        rnn = torch.cat([h[0], h[1]], dim=1)
        return {"logits": self.out(self.dropout(torch.cat([cnn, rnn], dim=1)))}


class MusicnnTransfer(SpectrogramModel):
    """The pretrained MSD MusiCNN as a feature extractor (frozen unless ``fine_tune``) + a trainable head."""

    external_prefixes: tuple[str, ...] = ("backbone.",)  # frozen backbone weights come from the package

    def __init__(self, n_labels: int, hidden: int = 128, dropout: float = 0.3, fine_tune: bool = False,
                 sr: int = 16000) -> None:
        super().__init__()
        if sr != 16000:
            raise ParameterError("musicnn_transfer takes 16-kHz audio (the pretrained MusiCNN's rate)")
        from .frontends import TorchLogMel
        from .musicnn import Musicnn

        self.backbone = Musicnn(n_tags=50)  # the loader fills it from weights/backbones/MSD_musicnn
        self.pretrained_parts = {"backbone": "MSD_musicnn"}
        self.cfg = FeatureConfig()
        self.logmel = TorchLogMel(self.cfg)
        self.fine_tune = fine_tune
        if fine_tune:  # fine-tuned backbone weights differ from the package's: save them
            self.external_prefixes = ()
        else:
            self.backbone.requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(200, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_labels))

    def spectrogram(self, y: torch.Tensor) -> torch.Tensor:
        """(batch, samples at 16 kHz) -> (batch, 96, frames) MusiCNN log-mel."""
        pad = self.cfg.n_fft // 2  # centred frames, as features.log_mel cuts them
        frames = frame_tensor(F.pad(y.float(), (pad, pad)), n_fft=self.cfg.n_fft, hop_length=self.cfg.hop_length)
        return self.logmel.from_frames(frames)[:, : self.cfg.window_frames].transpose(1, 2)

    def forward_spec(self, spec: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.fine_tune:
            self.backbone.eval()  # frozen BN statistics even while the head trains
        return {"logits": self.head(self.backbone.embed(spec.transpose(1, 2)))}


# Trainable architectures take raw waveform windows and compute their own spectrogram.
WAVE_22K = FeatureConfig(sr=22050, input="waveform", window_seconds=10.0)
MUSICNN_WAVE = FeatureConfig(sr=16000, input="waveform", window_seconds=187 * 256 / 16000)  # MusiCNN's 3-s input


@register_model(features=WAVE_22K, head_names=("classifier",))
def vgg19_bn_cqt(**kw: Any) -> VGG19BNCQT:
    """VGG19 with batch norm on 224x224 constant-Q images (as the ccmusic-database genre system)."""
    return VGG19BNCQT(**kw)


@register_model(features=WAVE_22K, head_names=("out",))
def crnn(**kw: Any) -> CRNN:
    """Conv1D x3 over a 128-band log-mel, LSTM(96), Dense(64): the convolutional-recurrent model."""
    return CRNN(**kw)


@register_model(features=WAVE_22K, head_names=("out",))
def parallel_cnn_rnn(**kw: Any) -> ParallelCNNRNN:
    """Five Conv2D+MaxPool blocks in parallel with a bidirectional GRU(64) branch (256 + 128)."""
    return ParallelCNNRNN(**kw)


@register_model(features=MUSICNN_WAVE, head_names=("head",))
def musicnn_transfer(**kw: Any) -> MusicnnTransfer:
    """Pretrained MusiCNN (MSD) features, frozen or fine-tuned, with a trainable head."""
    return MusicnnTransfer(**kw)
