"""``python -m theta_xr.run_openxr``: the cubes scene in a headset, or in Monado's simulated one,
through :class:`~theta_xr.openxr.OpenXRRenderLoop`; prints what each frame submitted.

Without a runtime it says why and exits with status 2 (no traceback), as ``theta render`` does
without OpenGL. ``--restart`` stops the session half way (xrRequestExitSession) and runs the
rest in a new session of the same process.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from theta_ecs.errors import BackendUnavailableError

from .binding import STANDARD, scene_binding
from .render_cli import cubes_world


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m theta_xr.run_openxr", description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0, help="how long to run")
    p.add_argument("--entities", type=int, default=2000, help="cubes in the scene")
    p.add_argument("--eye-scale", type=float, default=1.0,
                   help="times the runtime's recommended eye size")
    p.add_argument("--samples", type=int, default=None, help="MSAA (default: by eye size)")
    p.add_argument("--overlay", action="store_true", help="the world's telemetry in view")
    p.add_argument("--restart", action="store_true",
                   help="stop the session half way and continue in a new one")
    return p


def _run_for(loop: Any, scene: Any, seconds: float, until_exited: bool = False) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until_exited and loop.session is None):
        scene.step()
        if loop.frame(time.monotonic()) is None:
            time.sleep(0.01)  # not running yet (or any more): xrWaitFrame is not ours to call


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from .openxr import RUNTIME_NAME, OpenXRRenderLoop
    except BackendUnavailableError as exc:  # no runtime: the reason, not a traceback
        print(f"theta_xr.run_openxr: {exc}", file=sys.stderr)
        return 2
    scene, world = cubes_world(args.entities)
    try:
        loop = OpenXRRenderLoop(world, (scene_binding("cubes"), STANDARD),
                                eye_scale=args.eye_scale, samples=args.samples,
                                overlay=args.overlay)
    except BackendUnavailableError as exc:
        print(f"theta_xr.run_openxr: {exc}", file=sys.stderr)
        return 2
    totals = [0, 0]
    try:
        print(f"runtime {RUNTIME_NAME}: eyes {loop.eye_size[0]}x{loop.eye_size[1]}, "
              f"{loop.renderer.samples}x MSAA")
        halves = (args.seconds / 2, args.seconds / 2) if args.restart else (args.seconds,)
        for i, seconds in enumerate(halves):
            if i:
                loop.request_exit()
                _run_for(loop, scene, 5.0, until_exited=True)  # STOPPING, IDLE, EXITING
                totals[0] += loop.loop.frames_rendered
                totals[1] += loop.loop.frames_without_layers
                if loop.session is not None:
                    print("the runtime did not end the session within 5 s", file=sys.stderr)
                    return 1
                loop.restart()
            _run_for(loop, scene, seconds)
        totals[0] += loop.loop.frames_rendered
        totals[1] += loop.loop.frames_without_layers
    finally:
        loop.close()
    states = " ".join(s.name for s in loop.lifecycle.history)
    print(f"{totals[0]} frames with a projection layer, {totals[1]} without layers, "
          f"{loop.lifecycle.sessions_created} session(s); states: {states}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
