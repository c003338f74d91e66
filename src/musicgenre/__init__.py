"""musicgenre: recognise the genre of music recordings.

    import musicgenre
    clf = musicgenre.load()                       # the shipped default model (a Predictor)
    print(clf.predict("song.mp3").top(3))

Importing the package is cheap: the model runtime and the audio stack load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = [
    "AudioDecodeError", "Classifier", "Ensemble", "ModelCard", "MusicGenreError", "ParameterError", "Prediction",
    "Predictor",
    "Segment", "WeightsError", "list_models", "load", "load_audio", "predict_many",
]

_LAZY = {
    "Classifier": "pipeline", "Prediction": "prediction", "Predictor": "prediction", "Segment": "prediction",
    "load": "pipeline", "predict_many": "pipeline", "Ensemble": "ensemble", "load_audio": "audio",
    "list_models": "modeldir", "ModelCard": "modeldir", "AudioDecodeError": "errors", "MusicGenreError": "errors",
    "ParameterError": "errors", "WeightsError": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, "list_shipped" if name == "list_models" else name)
    raise AttributeError(f"module 'musicgenre' has no attribute {name!r}")
