"""A whole music library: ``db`` (SQLite rows: tracks, their backbone features and the files' own tags),
``scan`` (incremental, resumable classification), ``tags`` (safe genre tag writing), ``filetags`` (reading the
files' genre, artist, album and MusicBrainz tags), ``export`` (csv/json/parquet, stats, chart), ``ray_engine``
(the same scan as a Ray Data job)."""
