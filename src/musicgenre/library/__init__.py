"""A whole music library: ``db`` (SQLite rows), ``scan`` (incremental, resumable classification),
``tags`` (safe genre tag writing), ``export`` (csv/json/parquet, stats, chart), ``ray_engine`` (the same scan
as a Ray Data job)."""
