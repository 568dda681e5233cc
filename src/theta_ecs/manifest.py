"""The component manifest: every library component with id, fields, dtypes and quantization.

Committed as ``schemas/component_manifest.json`` (for people and diffs) and as a FlatBuffers
binary (for peers). Its hash is the schema hash that peers compare at handshake; a test fails
when the committed manifest drifts from the registered components.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import flatbuffers

from ._generated.manifest import ComponentEntry as fb_entry
from ._generated.manifest import Manifest as fb_manifest
from ._generated.manifest import Quantization as fb_quant
from ._siphash import siphash24
from .component import Component, ComponentRegistry
from .errors import ManifestMismatchError

FORMAT_VERSION = 1
SCHEMA_HASH_KEY = b"theta.schema\x00\x00\x00\x00"

#: Modules whose ``COMPONENTS`` tuple makes up the library's registered components.
LIBRARY_COMPONENT_MODULES: tuple[str, ...] = (
    "theta_ecs.stdcomponents",
    "theta_ecs.scenes.components",
    "theta_ecs.commandlog.components",
)

DEFAULT_JSON = Path("schemas/component_manifest.json")
DEFAULT_BINARY = Path("schemas/component_manifest.bin")


def library_registry() -> ComponentRegistry:
    """A registry of every component the library itself declares."""
    registry = ComponentRegistry()
    for name in LIBRARY_COMPONENT_MODULES:
        for comp in importlib.import_module(name).COMPONENTS:
            registry.register(comp)
    return registry


def _canonical(components: Iterable[Component]) -> list[dict[str, Any]]:
    return [c.describe() for c in sorted(components, key=lambda c: c.name)]


def canonical_hash(document: object) -> int:
    """SipHash-2-4 of a document's canonical JSON: how every schema hash in theta is taken."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return siphash24(SCHEMA_HASH_KEY, text.encode("utf-8"))


def schema_hash(components: Iterable[Component]) -> int:
    """64-bit hash of the canonical manifest entries: equal iff peers decode alike."""
    return canonical_hash(_canonical(components))


def build_manifest(components: Iterable[Component]) -> dict[str, Any]:
    comps = list(components)
    return {
        "format_version": FORMAT_VERSION,
        "schema_hash": f"{schema_hash(comps):016x}",
        "components": _canonical(comps),
    }


def manifest_json(components: Iterable[Component]) -> str:
    return json.dumps(build_manifest(components), indent=2, sort_keys=True) + "\n"


def manifest_binary(components: Iterable[Component]) -> bytes:
    """The manifest as a FlatBuffers buffer (file identifier ``THMF``)."""
    manifest = build_manifest(components)
    b = flatbuffers.Builder(1024)
    entries = []
    for c in manifest["components"]:
        quants = []
        for field_name, q in c["quantization"].items():
            f_off = b.CreateString(field_name)
            k_off = b.CreateString(q["kind"])
            fb_quant.Start(b)
            fb_quant.AddField(b, f_off)
            fb_quant.AddKind(b, k_off)
            fb_quant.AddBits(b, int(q["bits"]))
            fb_quant.AddMin(b, float(q.get("min", 0.0)))
            fb_quant.AddMax(b, float(q.get("max", 0.0)))
            quants.append(fb_quant.End(b))
        fb_entry.StartQuantizationVector(b, len(quants))
        for off in reversed(quants):
            b.PrependUOffsetTRelative(off)
        q_vec = b.EndVector()
        field_offs = [b.CreateString(f) for f in c["fields"]]
        fb_entry.StartFieldsVector(b, len(field_offs))
        for off in reversed(field_offs):
            b.PrependUOffsetTRelative(off)
        f_vec = b.EndVector()
        fb_entry.StartShapeVector(b, len(c["shape"]))
        for dim in reversed(c["shape"]):
            b.PrependUint32(dim)
        s_vec = b.EndVector()
        name_off = b.CreateString(c["name"])
        dtype_off = b.CreateString(json.dumps(c["dtype"]))
        fb_entry.Start(b)
        fb_entry.AddId(b, int(c["id"], 16))
        fb_entry.AddName(b, name_off)
        fb_entry.AddDtype(b, dtype_off)
        fb_entry.AddShape(b, s_vec)
        fb_entry.AddFields(b, f_vec)
        fb_entry.AddQuantization(b, q_vec)
        fb_entry.AddReplicated(b, bool(c["replicated"]))
        entries.append(fb_entry.End(b))
    fb_manifest.StartComponentsVector(b, len(entries))
    for off in reversed(entries):
        b.PrependUOffsetTRelative(off)
    comps_vec = b.EndVector()
    fb_manifest.Start(b)
    fb_manifest.AddFormatVersion(b, FORMAT_VERSION)
    fb_manifest.AddSchemaHash(b, int(manifest["schema_hash"], 16))
    fb_manifest.AddComponents(b, comps_vec)
    b.Finish(fb_manifest.End(b), file_identifier=b"THMF")
    return bytes(b.Output())


def read_binary(data: bytes) -> dict[str, Any]:
    """Decode a manifest binary back to the JSON form (ids as hex), checking its identifier."""
    if len(data) < 8 or not fb_manifest.Manifest.ManifestBufferHasIdentifier(data, 0):
        raise ManifestMismatchError("not a theta component manifest (file identifier THMF)")
    try:
        root = fb_manifest.Manifest.GetRootAs(data, 0)
        comps = []
        for i in range(root.ComponentsLength()):
            e = root.Components(i)
            quant: dict[str, dict[str, object]] = {}
            for j in range(e.QuantizationLength()):
                q = e.Quantization(j)
                entry: dict[str, object] = {"kind": q.Kind().decode(), "bits": q.Bits()}
                if entry["kind"] == "float":
                    entry["min"], entry["max"] = q.Min(), q.Max()
                quant[q.Field().decode()] = entry
            comps.append(
                {
                    "id": f"{e.Id():016x}",
                    "name": e.Name().decode(),
                    "dtype": json.loads(e.Dtype().decode()),
                    "shape": [e.Shape(j) for j in range(e.ShapeLength())],
                    "fields": [e.Fields(j).decode() for j in range(e.FieldsLength())],
                    "quantization": quant,
                    "replicated": e.Replicated(),
                }
            )
    except Exception as exc:  # the flatbuffers runtime raises assorted errors on bad buffers
        raise ManifestMismatchError(f"corrupt manifest binary: {exc}") from exc
    return {
        "format_version": root.FormatVersion(),
        "schema_hash": f"{root.SchemaHash():016x}",
        "components": comps,
    }


def write(components: Iterable[Component], json_path: Path = DEFAULT_JSON,
          binary_path: Path = DEFAULT_BINARY) -> None:
    comps = list(components)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(manifest_json(comps))
    binary_path.write_bytes(manifest_binary(comps))


def diff(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Human-readable differences between two manifests (empty when they agree)."""
    want = {c["name"]: c for c in expected.get("components", [])}
    have = {c["name"]: c for c in actual.get("components", [])}
    out = [f"missing from manifest: {n}" for n in sorted(set(want) - set(have))]
    out += [f"not registered any more: {n}" for n in sorted(set(have) - set(want))]
    for name in sorted(set(want) & set(have)):
        for key in sorted(set(want[name]) | set(have[name])):
            if want[name].get(key) != have[name].get(key):
                out.append(
                    f"{name}.{key}: code says {want[name].get(key)!r}, "
                    f"manifest says {have[name].get(key)!r}"
                )
    if not out and expected.get("schema_hash") != actual.get("schema_hash"):
        out.append("schema hash differs")
    return out


def _check_shape(data: object, path: Path) -> None:
    """A manifest is an object whose components are objects with a name."""
    comps = data.get("components") if isinstance(data, dict) else None
    if not isinstance(comps, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in comps
    ):
        raise ManifestMismatchError(f"{path} is not a component manifest")


def check(components: Iterable[Component], json_path: Path = DEFAULT_JSON,
          binary_path: Path | None = DEFAULT_BINARY) -> None:
    """Raise ManifestMismatchError unless the committed files match ``components``."""
    expected = build_manifest(components)
    try:
        actual = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise ManifestMismatchError(f"no manifest at {json_path}") from None
    except json.JSONDecodeError as exc:
        raise ManifestMismatchError(f"{json_path} is not valid JSON: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestMismatchError(f"cannot read {json_path}: {exc}") from None
    _check_shape(actual, json_path)
    problems = diff(expected, actual)
    if binary_path is not None:
        try:
            binary = read_binary(binary_path.read_bytes())
        except FileNotFoundError:
            raise ManifestMismatchError(f"no manifest binary at {binary_path}") from None
        except OSError as exc:
            raise ManifestMismatchError(f"cannot read {binary_path}: {exc}") from None
        if binary != expected:
            problems.append(f"{binary_path} differs from the registered components")
    if problems:
        raise ManifestMismatchError(
            "component manifest drifted (run `theta manifest write`):\n  " + "\n  ".join(problems)
        )
