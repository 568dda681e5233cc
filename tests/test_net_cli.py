"""theta token / serve / connect: tokens verify against the state directory's key and pin its
certificate; URLs parse; a port in use is a clean error; the core CLI keeps `demo --local`."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from theta_ecs import cli
from theta_net.cli import parse_url
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
