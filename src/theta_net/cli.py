"""``theta serve``, ``theta connect``, ``theta token`` and the networked ``theta demo``.

The core CLI finds this module by name (it lists its extension modules) and calls
:func:`register`; nothing heavy is imported until a command runs, so ``theta`` stays quick and
the core imports no backend.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

DEFAULT_PORT = 4433
#: The signaling service's port beside QUIC when neither --signaling-bind nor
#: THETA_SIGNALING_BIND names one (theta signal's default too).
DEFAULT_SIGNALING_PORT = 8765


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="host a scene over the network (QUIC by default)")
    serve.add_argument("--scene", choices=["cubes", "crowd"], default="cubes")
    serve.add_argument("--entities", type=int, default=None)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--rate", type=float, default=None, help="ticks per second")
    serve.add_argument("--state-dir", type=Path, default=Path(".theta-server"),
                       help="certificate, token key, roster and command log (kept)")
    serve.add_argument("--max-clients", type=int, default=64)
    serve.add_argument("--seconds", type=float, default=None, help="stop after this long")
    serve.add_argument("--transport", default=None, help="quic (default) or THETA_TRANSPORT")
    serve.add_argument("--signaling-bind", default=None, metavar="HOST:PORT",
                       help="where the WebRTC signaling service and browser page listen beside "
                       "QUIC (default THETA_SIGNALING_BIND, else HOST:8765; HOST:0 with --port 0)")
    serve.add_argument("--no-signaling", action="store_true",
                       help="QUIC only: no signaling service, no WebRTC fallback, no page")
    serve.add_argument("--freeze-at", type=float, default=None,
                       help="stop the simulation after this many seconds (replication goes on);"
                       " the state digest printed at exit is then what clients must hold")
    serve.add_argument("--quiet", action="store_true", help="no per-second status lines")
    serve.add_argument("--timeout", type=float, default=10.0,
                       help="seconds of silence after which a session is given up")
    serve.set_defaults(func=cmd_serve)

    connect = sub.add_parser("connect", help="mirror a server's scene with a live table")
    connect.add_argument("url", help="quic://HOST:PORT (optionally ?fp=FINGERPRINT)")
    connect.add_argument("--token", required=True, help="a join token from `theta token`")
    connect.add_argument("--scene", choices=["cubes", "crowd"], default="cubes")
    connect.add_argument("--fingerprint", default="", help="pin this certificate (else the "
                         "token's)")
    connect.add_argument("--seconds", type=float, default=None)
    connect.add_argument("--transport", default=None,
                         help="quic (default), webrtc, or auto (QUIC first, then WebRTC)")
    connect.add_argument("--signaling-url", default=None, metavar="URL",
                         help="the server's signaling room URL for WebRTC (printed by theta "
                         "serve; else THETA_SIGNALING_URL, else http://HOST:PORT/rooms/default)")
    connect.add_argument("--interest", default=None, metavar="X,Y,Z,RADIUS",
                         help="only what lies within RADIUS m of (X, Y, Z) (scenes with "
                         "interest management: crowd)")
    connect.set_defaults(func=cmd_connect)

    token = sub.add_parser("token", help="issue a join token for a server's state directory")
    token.add_argument("--state-dir", type=Path, default=Path(".theta-server"))
    token.add_argument("--role", choices=["viewer", "editor", "admin"], default="editor")
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds the token is valid")
    token.set_defaults(func=cmd_token)


def _fingerprint_of(state_dir: Path) -> bytes:
    from .quic.certs import ServerIdentity

    return ServerIdentity.load_or_create(state_dir / "tls").fingerprint


def cmd_token(args: argparse.Namespace) -> int:
    from .session.tokens import TokenAuthority

    authority = TokenAuthority.load_or_create(args.state_dir / "token.key")
    print(authority.issue(args.role, now=time.time(), ttl=args.ttl,
                          fingerprint=_fingerprint_of(args.state_dir)))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from theta_ecs.errors import ThetaError

    from . import scenes
    from .server import Server
    from .session import SessionConfig

    try:
        transport = serve_transport(args)
    except ThetaError as exc:
        print(f"theta serve: {exc}", file=sys.stderr)
        return 2
    hosted = scenes.host(args.scene, args.entities)
    server = Server(hosted.world, hosted.schema, step=hosted.step, host=args.host,
                    port=args.port, rate=args.rate or hosted.rate, state_dir=args.state_dir,
                    max_clients=args.max_clients, interest=hosted.interest,
                    transport=transport,
                    session_config=SessionConfig(hosted.schema, timeout=args.timeout))

    async def main() -> None:
        listener = await server.start()
        host, port = listener.address
        print(f"theta serve: {args.scene} on quic://{host}:{port}  rate {server.rate:g} Hz")
        print(f"certificate fingerprint (SHA-256): {server.fingerprint}")
        print(f"state directory: {args.state_dir}  (restored {server.restored} command entries)")
        print(f"join token (editor, 1 h): {server.issue_token('editor')}")
        print(f"connect: theta connect quic://{host}:{port} --scene {args.scene} --token ...",
              flush=True)
        signaling = getattr(listener, "listeners", {}).get("webrtc")
        if signaling is not None:
            room = signaling.room_url
            page = room.split("/rooms/")[0] + "/"
            print(f"signaling (WebRTC fallback): {room}", flush=True)
            print(f"browser page: {page}?token={server.issue_token('viewer')}", flush=True)
            print(f"fallback: theta connect quic://{host}:{port} --transport auto "
                  f"--signaling-url {room} --scene {args.scene} --token ...", flush=True)
        elif args.no_signaling:
            print("signaling: off (--no-signaling)", flush=True)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        started = loop.time()
        last = [started, 0]

        def status(srv: Server) -> None:
            now = loop.time()
            if args.freeze_at is not None and now - started >= args.freeze_at:
                srv.paused = True
            if args.quiet or now - last[0] < 1.0:
                return
            m = srv.metrics()
            kbps = (m["state_bytes"] - last[1]) * 8 / (now - last[0]) / 1e3
            last[:] = [now, m["state_bytes"]]
            print(f"tick {m['ticks']:>6}  clients {m['clients']:>3}  state {kbps:9.1f} kbit/s  "
                  f"shared encodes {m['shared_encodes']:>6}  skipped {m['state_skipped']}  "
                  f"dropped {m['state_dropped']}  refused {sum(m['refused'].values())}  "
                  f"log {m['log_entries']}", flush=True)

        ticking = asyncio.ensure_future(server.run(args.seconds, on_tick=status))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ticking, stopped}, return_when=asyncio.FIRST_COMPLETED)
        ticking.cancel()
        stopped.cancel()
        if server.last_state is not None:
            print(f"digest {state_digest(server.last_state)} entities {len(server.last_state)} "
                  f"tick {server.tick_count} log {len(server.log)} "
                  f"rate {server.stats.ticks / max(loop.time() - started, 1e-9):.1f}", flush=True)
        server.close()
        await asyncio.sleep(0.1)
        print("theta serve: stopped cleanly", flush=True)

    try:
        asyncio.run(main())
    except (OSError, ThetaError) as exc:
        print(f"theta serve: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def serve_transport(args: argparse.Namespace) -> Any:
    """What ``theta serve`` listens with: QUIC with the signaling service beside it on its own
    port (``auto``), unless ``--no-signaling``, another transport, or no WebRTC installed."""
    import importlib.util
    import os

    name = args.transport or os.environ.get("THETA_TRANSPORT") or "quic"
    if args.no_signaling or name not in ("quic", "auto"):
        return args.transport
    missing = [m for m in ("aiortc", "aiohttp") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"theta serve: signaling off ({', '.join(missing)} not installed: "
              "pip install 'theta[net]')", file=sys.stderr)
        return args.transport
    from .signaling.config import parse_bind
    from .webrtc.auto import AutoTransport

    env = os.environ.get("THETA_SIGNALING_BIND", "")
    if args.signaling_bind:
        bind = parse_bind(args.signaling_bind, "--signaling-bind")
    elif env:
        bind = parse_bind(env)
    else:
        bind = (args.host, DEFAULT_SIGNALING_PORT if args.port else 0)
    # a default port that is taken gives way to a free one; one asked for is an error
    return AutoTransport(signaling_bind=bind,
                         signaling_any_port=not (args.signaling_bind or env))


def state_digest(state: Any) -> str:
    """SHA-256 over a snapshot's entities, presence and lanes: equal digests, equal state."""
    import hashlib

    h = hashlib.sha256()
    for array in (state.entities, state.presence, state.values):
        h.update(array.tobytes())
    return h.hexdigest()[:32]


def parse_interest(text: str) -> tuple[float, float, float, float]:
    """``X,Y,Z,RADIUS`` as four floats (ValueError otherwise)."""
    parts = [float(p) for p in text.split(",")]
    if len(parts) != 4:
        raise ValueError(f"expected X,Y,Z,RADIUS, got {len(parts)} numbers")
    x, y, z, r = parts
    return x, y, z, r


def parse_url(url: str) -> tuple[str, int, str]:
    parsed = urlparse(url if "://" in url else f"quic://{url}")
    if parsed.scheme not in ("quic", "theta"):
        raise SystemExit(f"theta connect: unsupported scheme {parsed.scheme!r} (use quic://)")
    fp = parse_qs(parsed.query).get("fp", [""])[0]
    return parsed.hostname or "127.0.0.1", parsed.port or DEFAULT_PORT, fp


TABLE_HEAD = (f"{'t s':>5} {'client':<8} {'rtt ms':>8} {'loss %':>7} {'down kbit/s':>12} "
              f"{'up kbit/s':>10} {'entities':>9} {'tick':>7} {'log':>5} {'via':<14}")


def table_row(t: float, name: str, m: dict[str, Any]) -> str:
    return (f"{t:5.1f} {name:<8} {m['rtt_ms']:8.2f} {m['loss'] * 100:7.1f} "
            f"{m['kbps_down']:12.1f} {m['kbps_up']:10.1f} {m['entities']:9d} "
            f"{m['applied_tick']:7d} {m['log_entries']:5d} {m.get('via', ''):<14}")


def cmd_connect(args: argparse.Namespace) -> int:
    from . import scenes
    from .client import Client
    from .errors import ConnectError

    host, port, fp = parse_url(args.url)
    interest = None
    if args.interest:
        from .interest import InterestRefusedError, check_sphere

        try:
            x, y, z, radius = parse_interest(args.interest)
            interest = check_sphere((x, y, z), radius)
        except (ValueError, InterestRefusedError) as exc:
            print(f"theta connect: --interest {args.interest!r}: {exc}", file=sys.stderr)
            return 2
    if args.signaling_url:
        import os

        from theta_ecs.errors import ThetaError

        from .signaling.config import room_url

        try:
            room_url(args.signaling_url, "--signaling-url")
        except ThetaError as exc:
            print(f"theta connect: {exc}", file=sys.stderr)
            return 2
        os.environ["THETA_SIGNALING_URL"] = args.signaling_url  # read by the webrtc transport
    client = Client(scenes.schema_for(args.scene), host, port, args.token,
                    fingerprint=args.fingerprint or fp, transport=args.transport)
    if interest is not None:
        client.set_interest(interest[0], interest[1])

    async def main() -> int:
        loop = asyncio.get_running_loop()
        start = loop.time()
        last = [start]
        reported: list[Any] = [None]
        print(TABLE_HEAD)

        def row(c: Client) -> None:
            choice = c.transport_choice
            if choice is not None and choice is not reported[0]:
                reported[0] = choice
                print(f"theta connect: over {choice.transport} ({choice.reason}, "
                      f"{choice.elapsed_s * 1e3:.0f} ms to choose)", flush=True)
            now = loop.time()
            if now - last[0] >= 1.0:
                last[0] = now
                print(table_row(now - start, "self", c.metrics()), flush=True)

        try:
            await client.run(args.seconds, on_tick=row)
        except ConnectError as exc:
            print(f"theta connect: {exc}", file=sys.stderr)
            return 1
        finally:
            client.close()
        return 0

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions, run

    return run(DemoOptions(seconds=args.seconds if args.seconds else 10.0))
