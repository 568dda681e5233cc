"""`theta dict` and the bandwidth benchmark's plumbing (tiny runs; no timing assertions)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from theta_ecs.bench import bandwidth
from theta_ecs.cli import main
from theta_ecs.serialization import DictionaryRegistry
from theta_ecs.serialization.compression import write_recording


def test_dict_train_from_a_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(1)
    bodies = [bytes([7, 7, 7, rng.randrange(3)] * 10 + [rng.randrange(256)] * 4)
              for _ in range(300)]
    rec = tmp_path / "rec.bin"
    write_recording(rec, bodies)
    out = tmp_path / "d.zdict"
    assert main(["dict", "train", "--input", str(rec), "--size", "1024", "--out", str(out)]) == 0
    did = DictionaryRegistry().load(out)
    assert f"{did:#010x}" in capsys.readouterr().out


def test_dict_train_refuses_a_bad_recording(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a recording")
    assert main(["dict", "train", "--input", str(bad), "--out", str(tmp_path / "x")]) == 2


def test_regressions_over_five_percent_are_reported() -> None:
    prev = {"cubes": {"n": 901, "seconds": 10, "rate_hz": 60,
                      "modes": {"full": {"kbps": 100.0}, "delta": {"kbps": 200.0}}}}
    cur = json.loads(json.dumps(prev))
    cur["cubes"]["modes"]["full"]["kbps"] = 104.9
    cur["cubes"]["modes"]["delta"]["kbps"] = 211.0
    assert bandwidth.compare(prev, cur) == ["cubes.delta.kbps: 200.0 -> 211.0 (+5.5%)"]
    cur["cubes"]["seconds"] = 5  # a different run length is not comparable
    assert bandwidth.compare(prev, cur) == []


def test_tiny_cubes_run_keeps_the_client_within_the_error_bound() -> None:
    result = bandwidth.run_cubes(seconds=0.5, n=50, warmup=0.2, log=lambda _s: None)
    modes = result["modes"]
    assert list(modes) == list(bandwidth.CUBE_MODES)
    for r in modes.values():
        assert r["ticks_checked"] > 15
        assert r["error_violations"] == 0
    assert modes["uncompressed"]["kbps"] > modes["quantized"]["kbps"] > modes["delta"]["kbps"]
    assert "cubes:" in bandwidth.table({"cubes": result})
