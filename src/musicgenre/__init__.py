"""musicgenre: recognise the genre of music recordings.

    from musicgenre import Classifier
    clf = Classifier.from_pretrained()
    print(clf.predict("song.mp3").top(3))

Importing the package is cheap: torch and the audio stack load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = [
    "AudioDecodeError", "Classifier", "MusicGenreError", "ParameterError", "Prediction", "Segment",
    "WeightsError", "list_models", "load_audio",
]

_LAZY = {
    "Classifier": "pipeline", "Prediction": "pipeline", "Segment": "pipeline", "load_audio": "audio",
    "list_models": "models.registry", "AudioDecodeError": "errors", "MusicGenreError": "errors",
    "ParameterError": "errors", "WeightsError": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, "list_pretrained" if name == "list_models" else name)
    raise AttributeError(f"module 'musicgenre' has no attribute {name!r}")
