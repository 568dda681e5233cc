"""The ``theta`` command: demo, backends, manifest, dict, bench."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import manifest, plugins
from .errors import ManifestMismatchError

#: Modules that add subcommands of their own through ``register(subparsers)``.
_EXTENSION_MODULES: tuple[str, ...] = ("theta_ecs.serialization.cli", "theta_net.signaling_cli")


def _module_exists(name: str) -> bool:
    """Whether an optional part of the package is present (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            return False
        raise


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run

    run(DemoConfig(entities=args.entities, seconds=args.seconds, seed=args.seed))
    return 0


def _cmd_backends(args: argparse.Namespace) -> int:
    rows = plugins.status()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    for group in sorted(plugins.GROUPS):
        g = plugins.GROUPS[group]
        print(f"{group}  (choose with {g.env_var}; default {g.default})")
        for r in (r for r in rows if r.group == group):
            state = "ok" if r.loadable else f"unavailable: {r.reason}"
            print(f"  {r.name:<12} {r.target:<55} {state}")
    return 0


def _cmd_manifest(args: argparse.Namespace) -> int:
    registry = manifest.library_registry()
    if args.action == "write":
        manifest.write(registry, args.json_path, args.binary_path)
        print(f"wrote {args.json_path} and {args.binary_path} ({len(registry)} components, "
              f"schema hash {manifest.schema_hash(registry):016x})")
        return 0
    try:
        manifest.check(registry, args.json_path, args.binary_path)
    except ManifestMismatchError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"manifest matches ({len(registry)} components, "
          f"schema hash {manifest.schema_hash(registry):016x})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.suite == "ecs":
        from .bench.ecs import main as ecs_main

        return ecs_main(args.rest)
    ext = importlib.import_module("theta_ecs.serialization.cli")
    code: int = ext.run_bandwidth(args.rest)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="theta", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the core simulation demo with live telemetry")
    demo.add_argument("--entities", type=int, default=5_000)
    demo.add_argument("--seconds", type=float, default=4.0)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)

    backends = sub.add_parser("backends", help="list registered backends and whether they load")
    backends.add_argument("--json", action="store_true")
    backends.set_defaults(func=_cmd_backends)

    man = sub.add_parser("manifest", help="write or check the component manifest")
    man.add_argument("action", choices=["write", "check"])
    man.add_argument("--json-path", type=Path, default=manifest.DEFAULT_JSON)
    man.add_argument("--binary-path", type=Path, default=manifest.DEFAULT_BINARY)
    man.set_defaults(func=_cmd_manifest)

    bench = sub.add_parser("bench", help="run a benchmark suite (ecs, bandwidth)")
    bench.add_argument("suite", choices=["ecs", "bandwidth"])
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the suite")
    bench.set_defaults(func=_cmd_bench)

    for name in _EXTENSION_MODULES:
        if _module_exists(name):
            importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
