"""Labelled audio datasets (GTZAN, FMA, a folder per label, a CSV manifest, Hugging Face on disk)."""

from .datasets import Dataset, Example, load_dataset

__all__ = ["Dataset", "Example", "load_dataset"]
