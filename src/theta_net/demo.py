"""The networked demo (``make demo``): ``theta serve`` hosting the cubes scene in its own
process, and two clients in this one, all on 127.0.0.1 over real QUIC. A live table per client
for about ``seconds``; then the server freezes its simulation, one client issues a command, and
the demo exits 0 only when both clients hold the server's final state bit for bit (compared by
digest, across the process boundary) and the whole command log."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import TextIO

from . import scenes
from .cli import TABLE_HEAD, state_digest, table_row
from .client import Client


@dataclass
class DemoOptions:
    seconds: float = 10.0
    clients: int = 2
    entities: int = 901
    settle: float = 4.0


def run(opts: DemoOptions, out: TextIO = sys.stdout) -> int:
    return asyncio.run(_main(opts, out))


async def _read_until(proc: asyncio.subprocess.Process, pattern: str, out: TextIO,
                      timeout: float = 60.0) -> re.Match[str]:
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), max(0.1, end - loop.time()))
        if not line:
            raise RuntimeError(f"the server exited before printing {pattern!r}")
        text = line.decode().rstrip()
        match = re.search(pattern, text)
        if match:
            return match
        if not text.startswith("tick "):
            print(f"  server| {text}", file=out)


async def _main(opts: DemoOptions, out: TextIO) -> int:
    schema = scenes.schema_for("cubes")
    with tempfile.TemporaryDirectory(prefix="theta-demo-") as state:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "theta_ecs.cli", "serve", "--scene", "cubes",
            "--entities", str(opts.entities), "--port", "0", "--state-dir", state,
            "--seconds", str(opts.seconds + opts.settle), "--freeze-at", str(opts.seconds),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            addr = await _read_until(proc, r"on quic://([\d.]+):(\d+)", out)
            token = (await _read_until(proc, r"join token \(editor, 1 h\): (\S+)", out)).group(1)
            host, port = addr.group(1), int(addr.group(2))
            print(f"server: cubes ({opts.entities}) on quic://{host}:{port} in process "
                  f"{proc.pid}; {opts.clients} clients here", file=out)
            names = [f"client{i + 1}" for i in range(opts.clients)]
            clients = [Client(schema, host, port, token, reconnect=False) for _ in names]
            tasks = [asyncio.ensure_future(c.run()) for c in clients]
            loop = asyncio.get_running_loop()
            start = loop.time()
            print(TABLE_HEAD, file=out)
            next_row = start + 1.0
            while loop.time() - start < opts.seconds - 0.5:
                await asyncio.sleep(max(0.0, next_row - loop.time()))
                next_row += 1.0
                for name, client in zip(names, clients):
                    print(table_row(loop.time() - start, name, client.metrics()), file=out)
                out.flush()
            if clients[0].editor is not None:
                clients[0].editor.create_entity({"px": 1.0, "py": 2.0})
            final = await _read_until(
                proc, r"digest (\w+) entities (\d+) tick (\d+) log (\d+) rate ([\d.]+)", out,
                timeout=opts.settle + 30)
            digest, n_log = final.group(1), int(final.group(4))
            print(f"server: final state {digest} ({final.group(2)} entities), "
                  f"{n_log} command-log entries, {final.group(5)} ticks/s achieved", file=out)
            ok = True
            for name, client in zip(names, clients):
                mine = state_digest(client.receiver.applied)
                logs = len(client.log) if client.log is not None else 0
                good = mine == digest and logs == n_log
                ok &= good
                print(f"{name}: state {mine} "
                      f"{'converged' if mine == digest else 'DIVERGED'}, command log "
                      f"{logs}/{n_log} entries", file=out)
            for c in clients:
                c.close()
            for t in tasks:
                t.cancel()
            await asyncio.wait_for(proc.wait(), 30)
            print("demo: " + ("converged, exit 0" if ok else "NOT converged, exit 1"), file=out)
            return 0 if ok and proc.returncode == 0 else 1
        finally:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
