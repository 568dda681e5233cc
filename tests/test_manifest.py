"""The component manifest: drift detection, binary round trip, schema hash."""

import json
from pathlib import Path

import numpy as np
import pytest

from theta_ecs import Component, ManifestMismatchError, QuantizedFloat, manifest

ROOT = Path(__file__).resolve().parents[1]


def test_committed_manifest_matches_registered_components() -> None:
    """Fails when a library component changes without `theta manifest write`."""
    manifest.check(
        manifest.library_registry(),
        ROOT / "schemas" / "component_manifest.json",
        ROOT / "schemas" / "component_manifest.bin",
    )


def test_binary_round_trips_to_json_form() -> None:
    comps = list(manifest.library_registry())
    data = manifest.manifest_binary(comps)
    assert data[4:8] == b"THMF"
    assert manifest.read_binary(data) == manifest.build_manifest(comps)


def test_drift_is_reported_with_the_difference(tmp_path: Path) -> None:
    a = Component("m.A", np.dtype((np.float32, 2)), fields=("u", "v"))
    b = Component("m.B", np.int16)
    manifest.write([a, b], tmp_path / "m.json", tmp_path / "m.bin")
    manifest.check([a, b], tmp_path / "m.json", tmp_path / "m.bin")
    a2 = Component("m.A", np.dtype((np.float32, 2)), fields=("u", "v"),
                   quantization={"u": QuantizedFloat(12, 0, 1)})
    with pytest.raises(ManifestMismatchError, match=r"m\.A\.quantization"):
        manifest.check([a2, b], tmp_path / "m.json", tmp_path / "m.bin")
    with pytest.raises(ManifestMismatchError, match=r"missing from manifest: m\.C"):
        manifest.check([a, b, Component("m.C", np.uint8)], tmp_path / "m.json", None)
    with pytest.raises(ManifestMismatchError, match=r"not registered any more: m\.B"):
        manifest.check([a], tmp_path / "m.json", None)


def test_schema_hash_is_order_independent_and_sensitive() -> None:
    a = Component("h.A", np.float32)
    b = Component("h.B", np.float32)
    assert manifest.schema_hash([a, b]) == manifest.schema_hash([b, a])
    assert manifest.schema_hash([a, b]) != manifest.schema_hash([a, Component("h.B", np.float64)])


def test_corrupt_inputs_raise_our_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestMismatchError):
        manifest.read_binary(b"garbage!")
    good = manifest.manifest_binary([Component("c.A", np.float32)])
    with pytest.raises(ManifestMismatchError):
        manifest.read_binary(good[:20])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ManifestMismatchError, match="not valid JSON"):
        manifest.check([], tmp_path / "bad.json", None)
    with pytest.raises(ManifestMismatchError, match="no manifest"):
        manifest.check([], tmp_path / "absent.json", None)


def test_manifest_json_lists_ids_fields_dtypes() -> None:
    data = json.loads((ROOT / "schemas" / "component_manifest.json").read_text())
    pos = next(c for c in data["components"] if c["name"] == "theta.Position")
    assert pos["fields"] == ["x", "y", "z"]
    assert pos["dtype"] == "<f4" and pos["shape"] == [3]
    assert int(pos["id"], 16) == Component("theta.Position", np.float32).id
