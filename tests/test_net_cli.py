"""theta token / serve / connect: tokens verify against the state directory's key and pin its
certificate; URLs parse; a port in use is a clean error; the core CLI keeps `demo --local`."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from theta_ecs import cli
from theta_net.cli import parse_interest, parse_url
from theta_net.quic import ServerIdentity
from theta_net.session import TokenAuthority
from theta_net.session.tokens import peek


def test_token_is_signed_by_the_state_directory_key_and_pins_its_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["token", "--state-dir", str(tmp_path), "--role", "viewer", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    authority = TokenAuthority.load_or_create(tmp_path / "token.key")
    claims = authority.verify(token, time.time())
    assert claims.role.name == "VIEWER" and claims.expires_at - claims.issued_at == 60
    assert claims.fingerprint == ServerIdentity.load(tmp_path / "tls").fingerprint
    assert peek(token).fingerprint_hex == claims.fingerprint.hex()
    assert (tmp_path / "token.key").stat().st_mode & 0o777 == 0o600


def test_urls() -> None:
    assert parse_url("quic://10.0.0.2:5000?fp=ab") == ("10.0.0.2", 5000, "ab")
    assert parse_url("127.0.0.1") == ("127.0.0.1", 4433, "")
    with pytest.raises(SystemExit):
        parse_url("http://x:1")


def test_interest_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_interest("1,0,-2.5,150") == (1.0, 0.0, -2.5, 150.0)
    for bad in ("1,2,3", "a,b,c,d", "0,0,0,-5", "nan,0,0,5"):
        assert cli.main(["connect", "quic://127.0.0.1:9", "--token", "t", "--scene", "crowd",
                         "--interest", bad]) == 2
        assert "--interest" in capsys.readouterr().err


def test_serve_on_a_port_in_use_fails_cleanly(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    try:
        code = cli.main(["serve", "--entities", "8", "--port", str(port), "--state-dir",
                         str(tmp_path), "--seconds", "1"])
    finally:
        busy.close()
    assert code == 1
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err


def test_demo_local_is_the_core_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--local", "--entities", "200", "--seconds", "0.2"]) == 0
    assert "theta_net" not in capsys.readouterr().out


def test_serve_and_connect_show_a_live_table(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    serve = subprocess.Popen(
        [sys.executable, "-m", "theta_ecs.cli", "serve", "--entities", "16", "--port", "0",
         "--state-dir", str(tmp_path), "--seconds", "20", "--rate", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert serve.stdout is not None
        port = token = ""
        for line in serve.stdout:
            if m := re.search(r"on quic://[\d.]+:(\d+)", line):
                port = m.group(1)
            if m := re.search(r"join token \(editor, 1 h\): (\S+)", line):
                token = m.group(1)
                break
        done = subprocess.run(
            [sys.executable, "-m", "theta_ecs.cli", "connect", f"quic://127.0.0.1:{port}",
             "--token", token, "--seconds", "2.5"],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        rows = [r.split() for r in done.stdout.splitlines() if " self " in r]
        assert rows, done.stdout
        assert rows[-1][6] == "16"  # entities mirrored
        bad = subprocess.run(
            [sys.executable, "-m", "theta_ecs.cli", "connect", f"quic://127.0.0.1:{port}",
             "--scene", "crowd", "--token", token, "--seconds", "2"],
            capture_output=True, text=True, timeout=60,
        )
        assert bad.returncode == 1 and "schema hash" in bad.stderr and "here" in bad.stderr
    finally:
        serve.terminate()
        serve.wait(20)
    assert "stopped cleanly" in (serve.stdout.read() if serve.stdout else "")


def _serve_lines(args: list[str], until: str) -> tuple[object, dict[str, str]]:
    """Start `theta serve` with ``args``; read its start-up lines up to one matching ``until``."""
    import re
    import subprocess
    import sys

    serve = subprocess.Popen(
        [sys.executable, "-m", "theta_ecs.cli", "serve", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    found: dict[str, str] = {}
    assert serve.stdout is not None
    for line in serve.stdout:
        for key, pattern in (("port", r"on quic://[\d.]+:(\d+)"),
                             ("token", r"join token \(editor, 1 h\): (\S+)"),
                             ("room", r"signaling \(WebRTC fallback\): (\S+)"),
                             ("page", r"browser page: (\S+)"),
                             ("off", r"signaling: (off)")):
            if m := re.search(pattern, line):
                found[key] = m.group(1)
        if re.search(until, line):
            break
    return serve, found


def test_serve_starts_signaling_beside_quic_on_its_own_port(tmp_path: Path) -> None:
    """By default `theta serve` runs the signaling service and page on their own TCP port next
    to QUIC and prints both URLs; `theta connect --transport webrtc --signaling-url` joins
    through it (the table says so); `--no-signaling` turns it off; a signaling port asked for
    and taken is a clean error."""
    import os
    import subprocess
    import sys
    import urllib.request

    env = {**os.environ, "THETA_ICE_HOST_ADDRESSES": "127.0.0.1"}
    env.pop("THETA_SIGNALING_URL", None)
    env.pop("THETA_SIGNALING_BIND", None)
    serve, found = _serve_lines(["--entities", "16", "--port", "0", "--state-dir",
                                 str(tmp_path), "--seconds", "25", "--rate", "30", "--quiet"],
                                r"^fallback: ")
    try:
        room, page, port = found["room"], found["page"], found["port"]
        s_port = int(room.split(":")[2].split("/")[0])
        assert s_port != int(port)  # its own port, not the QUIC port's number
        with urllib.request.urlopen(page, timeout=10) as reply:
            assert reply.status == 200 and "<script" in reply.read().decode()
        done = subprocess.run(
            [sys.executable, "-m", "theta_ecs.cli", "connect", f"quic://127.0.0.1:{port}",
             "--transport", "webrtc", "--signaling-url", room, "--token", found["token"],
             "--seconds", "4"], capture_output=True, text=True, timeout=60, env=env,
        )
        assert done.returncode == 0, done.stderr
        assert "over webrtc (configured" in done.stdout
        rows = [r.split() for r in done.stdout.splitlines() if " self " in r]
        assert rows and rows[-1][6] == "16" and rows[-1][-1] == "webrtc", done.stdout
        with urllib.request.urlopen(page.split("?")[0] + "stats", timeout=10) as reply:
            assert b"offers" in reply.read()
    finally:
        serve.terminate()  # type: ignore[attr-defined]
        serve.wait(20)  # type: ignore[attr-defined]
    serve, found = _serve_lines(["--entities", "4", "--port", "0", "--state-dir", str(tmp_path),
                                 "--seconds", "0.5", "--no-signaling"], r"stopped")
    serve.wait(20)  # type: ignore[attr-defined]
    assert found.get("off") == "off" and "room" not in found and "page" not in found
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        code = cli.main(["serve", "--entities", "4", "--port", "0", "--state-dir", str(tmp_path),
                         "--seconds", "0.5", "--signaling-bind",
                         f"127.0.0.1:{busy.getsockname()[1]}"])
    finally:
        busy.close()
    assert code == 1
    assert cli.main(["serve", "--port", "0", "--state-dir", str(tmp_path),
                     "--signaling-bind", "nowhere"]) == 2


def test_connect_auto_falls_back_and_says_why_in_its_table(tmp_path: Path) -> None:
    """A server reachable only over WebRTC (its QUIC port closed): `theta connect --transport
    auto` falls back, prints the choice and its reason, and its table's `via` column says so."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "THETA_ICE_HOST_ADDRESSES": "127.0.0.1", "THETA_FALLBACK_AFTER": "0.5"}
    env.pop("THETA_SIGNALING_URL", None)
    env.pop("THETA_SIGNALING_BIND", None)
    serve, found = _serve_lines(["--transport", "webrtc", "--entities", "16", "--port", "0",
                                 "--state-dir", str(tmp_path), "--seconds", "25", "--rate", "30",
                                 "--quiet"], r"^connect: ")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "theta_ecs.cli", "connect", f"quic://127.0.0.1:{found['port']}",
             "--transport", "auto", "--token", found["token"], "--seconds", "4"],
            capture_output=True, text=True, timeout=60, env=env,
        )
    finally:
        serve.terminate()  # type: ignore[attr-defined]
        serve.wait(20)  # type: ignore[attr-defined]
    assert done.returncode == 0, done.stderr
    assert "theta connect: over webrtc (quic did not answer within 0.5 s" in done.stdout
    rows = [r.split() for r in done.stdout.splitlines() if " self " in r]
    assert rows and rows[-1][6] == "16" and rows[-1][-1] == "webrtc:timeout", done.stdout
