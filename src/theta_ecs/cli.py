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

#: Modules that add subcommands of their own through ``register(subparsers)`` (imported only when
#: the parser is built, and only if present: the core never imports a backend at import time).
_EXTENSION_MODULES: tuple[str, ...] = (
    "theta_ecs.serialization.cli",
    "theta_net.cli",
    "theta_net.signaling_cli",
)
#: Where the networked demo lives (``theta demo`` runs it when present; ``--local`` never does).
_NET_DEMO_MODULE = "theta_net.cli"


def _module_exists(name: str) -> bool:
    """Whether an optional part of the package is present (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            return False
        raise


def _cmd_demo(args: argparse.Namespace) -> int:
    if not args.local and _module_exists(_NET_DEMO_MODULE):
        code: int = importlib.import_module(_NET_DEMO_MODULE).cmd_demo(args)
        return code
    from .demo import DemoConfig, run

    seconds = 4.0 if args.seconds is None else args.seconds
    run(DemoConfig(entities=args.entities, seconds=seconds, seed=args.seed))
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
    if args.suite == "commandlog":
        from .bench.commandlog import main as commandlog_main

        return commandlog_main(args.rest)
    ext = importlib.import_module("theta_ecs.serialization.cli")
    code: int = ext.run_bandwidth(args.rest)
    return code


def _cmd_render(args: argparse.Namespace) -> int:
    # theta_xr is an optional backend package: imported only when this command runs
    try:
        render = importlib.import_module("theta_xr.render_cli")
    except ImportError as exc:
        print(f"theta render needs the xr extra (pip install 'theta[xr]'): {exc}", file=sys.stderr)
        return 2
    code: int = render.run(args)
    return code


def _add_render_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``theta render`` (declared here so --help works without theta_xr)."""
    p.add_argument("--scene", choices=["cubes"], default="cubes")
    p.add_argument("--frames", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("frames"))
    p.add_argument("--size", default="320x360", help="one eye's image, WxH")
    p.add_argument("--entities", type=int, default=901, help="bodies in the scene")
    p.add_argument("--warmup", type=float, default=3.0,
                   help="simulated seconds before the first frame")
    p.add_argument("--samples", type=int, default=4, help="MSAA samples")
    p.add_argument("--no-overlay", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="theta", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="the networked demo (server and two clients over QUIC on 127.0.0.1); "
        "--local: the single-process core demo with live telemetry")
    demo.add_argument("--local", action="store_true", help="the single-process core demo")
    demo.add_argument("--entities", type=int, default=5_000)
    demo.add_argument("--seconds", type=float, default=None,
                      help="how long to run (default: 4 s local, 10 s networked)")
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

    bench = sub.add_parser("bench", help="run a benchmark suite (ecs, commandlog, bandwidth)")
    bench.add_argument("suite", choices=["ecs", "commandlog", "bandwidth"])
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the suite")
    bench.set_defaults(func=_cmd_bench)

    render = sub.add_parser(
        "render", help="draw a scene in stereo (headless) and write PNG frames, eyes side by side"
    )
    _add_render_arguments(render)
    render.set_defaults(func=_cmd_render)

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
