"""``musicgenre learn``: train a genre model from the genre tags a user's own library already holds.

``vocabulary`` turns the raw tag values into one canonical vocabulary and per-file labels (spelling
merges, splitting, ID3 codes, user aliases, thresholds; our own tags never become labels) and groups
files by artist for the validation folds.

``fit`` trains the head without torch (scikit-learn's multinomial logistic regression on each stored window's
embedding ++ tag logits, class-balanced), scores every labelled file out of fold (folds grouped by artist) and
calibrates (the window temperature and per-length temperatures of ``evaluation.calibration``, fitted on the out-of-fold
window logits). ``report`` turns that into the ``--report`` JSON (genres, merged, dropped, validation, suspects,
to_tag), the card's metrics and the confusion-matrix picture. ``writer`` writes the model directory in the
shipped format (config.json through ``ModelCard.save``, the head's tensors with ``safetensors.numpy``, and an
ONNX graph made by graph surgery on the shipped one: one backbone pass gives logits, tags and embedding).
``options`` holds ``LearnOptions`` (the defaults, both command lines). ``run`` gets a reader of the library from
its adapter (``library.learning.read_stored``), checks it (clear errors before anything is written),
puts the pieces together and publishes the directory atomically. docs/learn.md is the user's page.
"""
