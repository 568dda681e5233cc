"""The theta command and the fused kernels."""

import io
import json

import numpy as np
import pytest

from theta_ecs import cli
from theta_ecs.demo import DemoConfig, run
from theta_ecs.kernels import integrate, integrate_scaled


def test_integrate_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    p = rng.standard_normal((1000, 3)).astype(np.float32)
    v = rng.standard_normal((1000, 3)).astype(np.float32)
    w = rng.random(1000).astype(np.float32)
    expected = p + v * np.float32(0.25)
    integrate(p, v, 0.25)
    np.testing.assert_allclose(p, expected, rtol=1e-6)
    expected = p + v * (w[:, None] * np.float32(0.5))
    integrate_scaled(p, v, w, 0.5)
    np.testing.assert_allclose(p, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        integrate(p, v[:10], 1.0)
    with pytest.raises(ValueError):
        integrate(p, v.astype(np.float64), 1.0)  # type: ignore[arg-type]
    ro = v.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        integrate(ro, v, 1.0)


def test_demo_prints_telemetry_table() -> None:
    out = io.StringIO()
    world = run(DemoConfig(entities=500, seconds=0.6), out)
    text = out.getvalue()
    assert "frame ms" in text and "sim ms" in text
    rows = [line for line in text.splitlines() if line.strip() and line.split()[0][0].isdigit()]
    assert len(rows) >= 2
    assert world.entity_count >= 500
    assert world.telemetry.frames > 10


def test_cli_backends_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["backends", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"group", "name", "loadable", "reason"} <= set(rows[0])


def test_cli_manifest_check_detects_drift(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    j, b = tmp_path / "m.json", tmp_path / "m.bin"
    assert cli.main(["manifest", "write", "--json-path", str(j), "--binary-path", str(b)]) == 0
    assert cli.main(["manifest", "check", "--json-path", str(j), "--binary-path", str(b)]) == 0
    data = json.loads(j.read_text())
    data["components"][0]["fields"] = ["tampered"]
    j.write_text(json.dumps(data))
    assert cli.main(["manifest", "check", "--json-path", str(j), "--binary-path", str(b)]) == 1
    assert "drifted" in capsys.readouterr().err


def test_cli_bench_ecs_small(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["bench", "ecs", "-n", "2000", "--per-entity", "200", "--repeats", "1", "--json"])
    data = json.loads(capsys.readouterr().out)
    for group in ("spawn", "tick", "query3", "churn"):
        assert set(data[group]["ns_per_item"]) >= {"theta", "numpy", "esper"}
        assert all(v > 0 for v in data[group]["ns_per_item"].values())
    for group in ("get", "set", "insert_remove", "spawn_one", "scheduler"):
        assert set(data[group]["ratios"]) == {"theta_over_esper"}
    assert set(data["targets_met"]) >= {"get_vs_esper", "scheduler_max_3000ns"}
