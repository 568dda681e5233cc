"""A real browser as a theta peer: headless Chromium opens the signaling service's spectator
page, which joins over WebRTC, completes the session handshake (its Hello signed with a WebCrypto
Ed25519 key), acknowledges state and answers heartbeats. Everything is asserted from the server's
side: the session admitted, a few hundred state packets sent and acknowledged, an RTT measured.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiortc")

from theta_net.webrtc.transport import WebRtcTransport

from .webrtc_support import AUTHORITY, CubesHost, issue, page_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags DESIGN.md lists as seen working on these machines.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (install the Debian package: make sysdeps)"
)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THETA_ICE_HOST_ADDRESSES", "127.0.0.1")
    monkeypatch.delenv("THETA_SIGNALING_URL", raising=False)


async def page_counters(profile: str) -> dict[str, Any]:
    """The page's live counters (``window.thetaStats``), read over the DevTools protocol."""
    import aiohttp

    port = int(Path(profile, "DevToolsActivePort").read_text().split()[0])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"]) as ws:
            await ws.send_json({"id": 1, "method": "Runtime.evaluate", "params": {
                "expression": "JSON.stringify(window.thetaStats)", "returnByValue": True}})
            reply = await ws.receive_json(timeout=10)
    value = reply["result"]["result"]["value"]
    return dict(json.loads(value))


def test_headless_chromium_joins_as_a_spectator_and_acknowledges_state() -> None:
    async def main() -> None:
        host = CubesHost(n=200)
        server = WebRtcTransport(tokens=AUTHORITY, page_config=page_config)
        listener = await server.listen("127.0.0.1", 0, host.accept)
        host.start()
        url = f"http://127.0.0.1:{listener.address[1]}/?token={issue('viewer')}"
        assert CHROMIUM is not None
        with tempfile.TemporaryDirectory() as profile:
            browser = await asyncio.create_subprocess_exec(
                CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                url,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.25)
                    peer = host.peers[0] if host.peers else None
                    rep = peer.replicator if peer is not None else None
                    if rep is not None and rep.stats.acks_received >= 300 and peer.log.rtts:
                        break
                    if browser.returncode is not None:
                        raise AssertionError(f"chromium exited with {browser.returncode}")
                shown = await page_counters(profile)
            finally:
                if browser.returncode is None:
                    browser.terminate()
                await browser.wait()
        try:
            assert host.peers, f"no session reached the server: {dict(listener.counters)}"
            peer = host.peers[0]
            connected = peer.log.connected
            assert connected is not None and connected.role == "viewer"  # admitted, as a viewer
            assert peer.log.refused is None
            rep = peer.replicator
            assert rep is not None
            # a few hundred state packets out, acknowledged by the page as it held them
            assert rep.stats.state_packets >= 300
            assert rep.stats.acks_received >= 300
            assert rep.acked_sequence is not None and rep.acked_sequence > 250
            assert rep.stats.malformed == 0
            # heartbeats answered: the server measured the browser's round trip
            assert peer.session.stats.heartbeats_received >= 10
            assert peer.log.rtts and 0 < peer.session.rtt.srtt < 0.5
            assert peer.session.stats.malformed == 0 and peer.session.stats.unexpected == 0
            assert listener.counters["answers_sent"] == 1
            # and the page shows what it counted: the whole scene, its packets, a round trip
            assert shown["state"] == "connected" and shown["role"] == "viewer"
            assert shown["entities"] == 200
            assert shown["packets"] >= 300 and shown["acks"] >= 300
            assert shown["rtt"] is not None and 0 < shown["rtt"] < 500
            assert shown["kbps"] > 0
        finally:
            await host.stop()
            await listener.aclose()

    asyncio.run(main())
