"""``musicgenre learn``: train a genre model from the genre tags a user's own library already holds.

``vocabulary`` turns the raw tag values into one canonical vocabulary and per-file labels (spelling
merges, splitting, ID3 codes, user aliases, thresholds; our own tags never become labels) and groups
files by artist for the validation folds.
"""
