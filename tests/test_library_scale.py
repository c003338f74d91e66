"""A 2,000-file library scanned end to end (``python -m benchmarks.bench_scan --files 2000``): one row per file,
memory flat after warm-up, the bad files recorded as failures, and a rescan that classifies nothing."""

from __future__ import annotations

import pytest

from benchmarks import bench_scan


@pytest.mark.slow
def test_scan_of_2000_files_has_one_row_each_and_flat_memory(tmp_path):
    result = bench_scan.scale(2000, tmp_path)
    assert bench_scan.check_scale(result) == [], result
    assert result["rows"] == result["distinct_paths"] == 2000
    assert result["library"]["bad"] <= result["rows_with_error"] <= result["library"]["bad"] + 40
    assert "0 classified, 2000 skipped" in result["rescan"]["summary"]
    assert result["scan"]["peak_rss_mb"] < 300
