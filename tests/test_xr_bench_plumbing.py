"""The XR benchmarks' plumbing (never their timings): each records its peer, measured in the
same run, as a ratio in ``extra_info``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("moderngl", reason="the xr extra is not installed")

ROOT = Path(__file__).resolve().parent.parent


def test_the_frame_benchmark_records_its_static_peer_as_a_ratio(tmp_path: Path) -> None:
    out = tmp_path / "frame.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_bench_xr_frame.py", "--bench-quick",
         "-k", "two_pass and 1000- and nocull", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         f"--benchmark-json={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    runs = {b["extra_info"]["upload"]: b["extra_info"]
            for b in json.loads(out.read_text())["benchmarks"]}
    if not runs:
        pytest.skip(f"the benchmark skipped (no EGL context): {done.stdout[-300:]}")
    upload, static = runs[True], runs[False]
    assert upload["static_frame_ms"] > 0
    assert upload["ratio_vs_static"] == pytest.approx(
        upload["median_frame_ms"] / upload["static_frame_ms"])
    assert "ratio_vs_static" not in static  # the peer itself
