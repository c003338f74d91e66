"""The evaluation layer, torch-free, below both trainers (``train``: the torch trainer; ``learn``: the library
trainer), as timm's ``utils/metrics`` serves its train and validate scripts and scikit-learn's ``calibration`` and
``model_selection`` serve every estimator:

- ``calibration``: the one temperature fit (window and per-length temperatures, vectorised), out-of-fold
  calibration, ECE, the per-length table and the reliability diagram;
- ``folds``: the one folds-by-artist rule;
- ``metrics``: accuracy, macro-F1, per-class figures, bootstrap and Wilson intervals, the confident row;
- ``confusion``: the confusion-matrix picture;
- ``openset``: fitting and reporting the "unknown" detector (``musicgenre.openset`` applies it at inference).

It imports the core (``scores``, ``genres``, ``openset``, ``_io``) and nothing above it.
"""
