"""The WebRTC carrier between two real aiortc peers on 127.0.0.1 (ICE, DTLS, SCTP all real).

The loss test is the one that matters: WebRTC stacks have shipped "unreliable" channels that
retransmit anyway. Here the sending peer's DTLS transport loses a seeded 25% of its outgoing
packets (the path's loss, applied to encrypted SCTP packets just before they reach the UDP
socket), and we watch every DATA chunk SCTP puts on the wire: on the state channel each TSN is
sent exactly once and the lost messages never arrive; on the reliable channel the same loss is
repaired by retransmission and every message arrives, in order.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from theta_net.carrier import Carrier, Channel

pytest.importorskip("aiortc")

from aiortc import rtcsctptransport

from theta_net.webrtc import (
    SCTP_CHUNK_PAYLOAD,
    WebRtcCarrier,
    WebRtcCarrierError,
    accept_offer,
    complete_offer,
    open_offer,
)
from theta_net.webrtc.carrier import CHANNEL_IDS


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[Channel, bytes]] = []
        self.closed: list[str] = []

    def carrier_received(self, channel: Channel, payload: bytes) -> None:
        self.got.append((channel, payload))

    def carrier_closed(self, reason: str) -> None:
        self.closed.append(reason)

    def on(self, channel: Channel) -> list[bytes]:
        return [p for c, p in self.got if c is channel]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THETA_ICE_HOST_ADDRESSES", "127.0.0.1")


Pair = tuple[WebRtcCarrier, Recorder, WebRtcCarrier, Recorder]


def run_pair(body: Callable[[Pair], Awaitable[None]]) -> None:
    async def main() -> None:
        ra, rb = Recorder(), Recorder()
        a, offer = await open_offer(handler=ra)
        b, answer = await accept_offer(offer, handler=rb)
        await complete_offer(a, answer)
        try:
            await asyncio.wait_for(asyncio.gather(a.wait_open(10), b.wait_open(10)), 15)
            await body((a, ra, b, rb))
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(main())


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_channels_sizes_and_fragmented_reliable_messages() -> None:
    async def body(pair: Pair) -> None:
        a, _ra, b, rb = pair
        assert isinstance(a, Carrier)
        # the carrier's unreliable bound is exactly one SCTP DATA chunk of aiortc's
        assert SCTP_CHUNK_PAYLOAD == rtcsctptransport.USERDATA_MAX_LENGTH
        assert a.max_datagram_size == SCTP_CHUNK_PAYLOAD
        assert a.max_message_size == rtcsctptransport.LOCAL_MAX_MESSAGE_SIZE  # negotiated
        for channel, dc in a.channels.items():
            assert dc.id == CHANNEL_IDS[channel] and dc.negotiated
            unreliable = channel is not Channel.RELIABLE
            assert dc.ordered is not unreliable
            assert dc.maxRetransmits == (0 if unreliable else None)
        big = bytes(range(256)) * 1200  # 307,200 bytes: more than one max-size message
        assert a.send(Channel.RELIABLE, big)
        assert a.send(Channel.RELIABLE, b"")
        await until(lambda: len(rb.on(Channel.RELIABLE)) == 2)
        assert rb.on(Channel.RELIABLE) == [big, b""]
        assert a.send(Channel.STATE, b"s" * SCTP_CHUNK_PAYLOAD)
        assert a.send(Channel.VOICE, b"v" * 100)
        assert not a.send(Channel.STATE, b"x" * (SCTP_CHUNK_PAYLOAD + 1))
        assert a.stats.drops["state_oversized"] == 1
        await until(lambda: len(rb.got) == 4)
        assert rb.on(Channel.STATE) == [b"s" * SCTP_CHUNK_PAYLOAD]
        assert rb.on(Channel.VOICE) == [b"v" * 100]
        # a text message (a browser can send one) is dropped and counted, nothing else
        b.channels[Channel.STATE].send("hello")
        a.channels[Channel.RELIABLE].send(b"\x07junk")  # not a fragment: the peer closes
        await until(lambda: bool(rb.closed))
        assert b.stats.drops["reliable_bad_fragment"] == 1
        assert not b.send(Channel.RELIABLE, b"after close")  # quietly, as over QUIC
        assert not b.send(Channel.STATE, b"after close")
        assert b.stats.drops["reliable_not_open"] == 1
        with pytest.raises(WebRtcCarrierError):
            a.send(Channel.RELIABLE, bytes(a.max_reliable_message + 1))

    run_pair(body)


def test_a_peer_that_never_reads_its_reliable_channel_is_closed() -> None:
    async def body(pair: Pair) -> None:
        a, ra, _, _ = pair
        a.max_send_buffer = 300_000
        blob = bytes(100_000)
        sent = [a.send(Channel.RELIABLE, blob) for _ in range(5)]  # faster than SCTP drains
        assert sent[:2] == [True, True] and sent[-1] is False
        assert a.stats.drops["reliable_unread"] == 1
        assert a.closed_reason == "the peer does not read its reliable channel"
        await until(lambda: bool(ra.closed))

    run_pair(body)


def test_unreliable_budget_paces_state_behind_a_full_window() -> None:
    async def body(pair: Pair) -> None:
        a, _, _, rb = pair
        budget = a.unreliable_budget()
        assert budget >= SCTP_CHUNK_PAYLOAD
        a.send(Channel.RELIABLE, b"r" * 100_000)  # fills SCTP's window and queue
        assert a.unreliable_budget() == 0
        assert not a.send(Channel.STATE, b"state")
        assert a.stats.drops["state_paced"] == 1
        await until(lambda: len(rb.on(Channel.RELIABLE)) == 1)
        await until(lambda: a.unreliable_budget() >= 100)
        assert a.send(Channel.STATE, b"state")

    run_pair(body)


def _instrument(
    a: WebRtcCarrier, loss: float, seed: int
) -> tuple[Counter[tuple[int, int]], dict[str, int]]:
    """Lose ``loss`` of a's outgoing SCTP packets; count DATA chunks sent per (stream, TSN)."""
    sctp: Any = a.pc.sctp
    dtls: Any = sctp.transport
    rng = random.Random(seed)
    sends: Counter[tuple[int, int]] = Counter()
    path = {"sent": 0, "lost": 0, "forward_tsn": 0}
    send_data = dtls._send_data
    send_chunk = sctp._send_chunk

    async def lossy_send_data(data: bytes) -> None:
        path["sent"] += 1
        if rng.random() < loss:
            path["lost"] += 1
            return
        await send_data(data)

    async def counting_send_chunk(chunk: Any) -> None:
        if isinstance(chunk, rtcsctptransport.DataChunk):
            sends[(chunk.stream_id, chunk.tsn)] += 1
        elif isinstance(chunk, rtcsctptransport.ForwardTsnChunk):
            path["forward_tsn"] += 1
        await send_chunk(chunk)

    dtls._send_data = lossy_send_data
    sctp._send_chunk = counting_send_chunk
    return sends, path


def test_unreliable_channels_drop_rather_than_retransmit_under_loss() -> None:
    messages = 400

    async def body(pair: Pair) -> None:
        a, _, _, rb = pair
        sends, path = _instrument(a, loss=0.25, seed=7)
        sent_state = 0
        for i in range(messages):
            if a.send(Channel.STATE, i.to_bytes(4, "big") + b"s" * 60):
                sent_state += 1
            a.send(Channel.RELIABLE, i.to_bytes(4, "big"))
            await asyncio.sleep(0.004)
        await until(lambda: len(rb.on(Channel.RELIABLE)) == messages, timeout=30)
        await asyncio.sleep(0.3)  # late state, if any retransmission were coming

        # the path really lost packets, and the reliable channel repaired every loss
        assert path["lost"] > 0.15 * path["sent"]
        assert rb.on(Channel.RELIABLE) == [i.to_bytes(4, "big") for i in range(messages)]
        state_stream = CHANNEL_IDS[Channel.STATE]
        reliable_tsns = [n for (s, _), n in sends.items() if s == CHANNEL_IDS[Channel.RELIABLE]]
        assert max(reliable_tsns) > 1  # retransmitted there

        # the state channel: every TSN left exactly once, never again
        state_tsns = {tsn: n for (s, tsn), n in sends.items() if s == state_stream}
        assert len(state_tsns) == sent_state > 0.9 * messages
        assert set(state_tsns.values()) == {1}
        received = [int.from_bytes(p[:4], "big") for p in rb.on(Channel.STATE)]
        assert len(received) == len(set(received))  # no duplicates
        delivered = len(received) / sent_state
        assert 0.55 < delivered < 0.92  # ~75% expected: the losses stayed lost
        # abandoned chunks were skipped with FORWARD-TSN, so nothing stays queued at the sender
        assert path["forward_tsn"] > 0
        await until(lambda: not a.pc.sctp._sent_queue, timeout=10)

    run_pair(body)
