"""``theta signal``: the signaling service alone, for hosts that poll their rooms from elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "signal",
        help="run the WebRTC signaling service alone (hosts poll their rooms with "
        "THETA_SIGNALING_TOKEN)",
    )
    cmd.add_argument("--bind", default=None,
                     help="host:port to listen on (default THETA_SIGNALING_BIND or "
                     "127.0.0.1:8765)")
    cmd.add_argument("--token-key", default="",
                     help="the servers' token public key (hex) to verify join tokens here; "
                     "without it tokens are checked for form and expiry, and each host's "
                     "session verifies the signature")
    cmd.add_argument("--duration", type=float, default=0.0,
                     help="stop after this many seconds (0: run until interrupted)")
    cmd.set_defaults(func=_cmd_signal)


def _cmd_signal(args: argparse.Namespace) -> int:
    from theta_ecs.errors import ThetaError

    try:
        return asyncio.run(_serve(args))
    except ThetaError as exc:
        print(f"theta signal: {exc}", file=sys.stderr)
        return 2


async def _serve(args: argparse.Namespace) -> int:
    from .session.tokens import TokenVerifier
    from .signaling.config import SignalingConfig, SignalingConfigError, parse_bind
    from .signaling.service import SignalingService
    from .webrtc.transport import token_checker

    config = SignalingConfig.from_env()
    host, port = parse_bind(args.bind, "--bind") if args.bind else (config.host, config.port)
    verifier = None
    if args.token_key:
        try:
            verifier = TokenVerifier(bytes.fromhex(args.token_key))
        except ValueError as exc:
            raise SignalingConfigError("--token-key", args.token_key, str(exc)) from None
    if config.host_token is None:
        print("theta signal: THETA_SIGNALING_TOKEN is not set: no host can serve a room",
              file=sys.stderr)
    service = SignalingService(token_checker(verifier), host_token=config.host_token)
    bound = await service.start(host, port)
    print(f"theta signal: listening on http://{host}:{bound}/rooms/<room>", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    try:
        while not stop.is_set():
            if args.duration and time.monotonic() - started >= args.duration:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        await service.stop()
        counts = ", ".join(f"{k} {v}" for k, v in sorted(service.counters.items())) or "none"
        print(f"theta signal: stopped; counters: {counts}", flush=True)
    return 0
