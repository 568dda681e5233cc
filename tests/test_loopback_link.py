"""The loopback link model: every impairment does what netem would, reproducibly, and counts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs.backends.loopback import (
    MAX_RETRANSMISSIONS,
    LinkModel,
    LinkModelError,
    LinkStats,
    LinkTimeError,
    LoopbackError,
    LoopbackLink,
    LoopbackNetwork,
    LoopbackTransport,
    LoopbackTransportFactory,
    ManualClock,
    TransportClosedError,
)
from theta_ecs.errors import ThetaError
from theta_ecs.interfaces import Transport


def packet(i: int, size: int = 16) -> bytes:
    return i.to_bytes(4, "big") + bytes(size - 4)


def ident(data: bytes) -> int:
    return int.from_bytes(data[:4], "big")


def drain_with_times(link: LoopbackLink) -> list[tuple[float, int]]:
    """Deliver everything in flight, noting when each packet arrived."""
    got: list[tuple[float, int]] = []
    while (t := link.next_arrival()) is not None:
        got.extend((at, ident(p)) for at, p in link.receive_timed(max(t, link.now)))
    return got


def conserved(s: LinkStats) -> bool:
    return s.sent + s.duplicated == (
        s.delivered
        + s.lost
        + s.dropped_for_bandwidth
        + s.dropped_oversize
        + s.dropped_closed
        + s.in_flight
    )


# -- the model ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency_s": -0.001},
        {"jitter_s": -1.0},
        {"latency_s": math.nan},
        {"latency_s": math.inf},
        {"loss": 1.01},
        {"loss": -0.1},
        {"duplicate": 2.0},
        {"reorder": math.nan},
        {"loss": "0.1"},
        {"loss": True},
        {"bandwidth_bps": 0.0},
        {"bandwidth_bps": -5.0},
        {"bandwidth_bps": math.inf},
        {"seed": -1},
        {"seed": 1.5},
        {"seed": True},
        {"queue_limit_bytes": 0},
        {"queue_limit_bytes": 10.5},
        {"mtu_bytes": 0},
        {"mtu_bytes": True},
    ],
)
def test_model_rejects_out_of_range(kwargs: dict[str, object]) -> None:
    with pytest.raises(LinkModelError) as info:
        LinkModel(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ThetaError) and isinstance(info.value, ValueError)
    assert next(iter(kwargs)) in str(info.value)


def test_model_accepts_edges() -> None:
    m = LinkModel(loss=1.0, duplicate=0.0, reorder=1.0, bandwidth_bps=1, queue_limit_bytes=1)
    assert m.loss == 1.0
    assert LinkModel(latency_s=0.05, jitter_s=0.01).retransmit_s == pytest.approx(0.12)
    assert LinkModel().retransmit_s > 0


# -- a perfect link ----------------------------------------------------------------------------
def test_ideal_link_delivers_everything_in_order_after_latency() -> None:
    link = LoopbackLink(LinkModel(latency_s=0.05))
    for i in range(10):
        link.send(packet(i), 0.001 * i)
    assert link.receive(0.0499) == []
    got = link.receive(0.0555)
    assert [ident(p) for p in got] == list(range(6))
    assert [ident(p) for p in link.receive(1.0)] == list(range(6, 10))
    s = link.stats
    assert (s.sent, s.delivered, s.lost, s.in_flight) == (10, 10, 0, 0)
    assert s.sent_bytes == s.delivered_bytes == 160
    assert s.out_of_order == 0 and conserved(s)


def test_payload_is_copied_at_send() -> None:
    link = LoopbackLink()
    buf = bytearray(b"abc")
    link.send(buf, 0.0)
    buf[0] = ord("x")
    assert link.receive(0.0) == [b"abc"]


# -- each impairment ---------------------------------------------------------------------------
def test_loss_rate_matches_the_model() -> None:
    n, p = 20_000, 0.1
    link = LoopbackLink(LinkModel(loss=p, seed=7))
    for i in range(n):
        link.send(packet(i), 0.0)
    delivered = link.receive(0.0)
    s = link.stats
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(s.lost - n * p) < 5 * sigma
    assert len(delivered) == s.delivered == n - s.lost
    assert [ident(d) for d in delivered] == sorted(ident(d) for d in delivered)


def test_total_loss_and_no_loss() -> None:
    dead = LoopbackLink(LinkModel(loss=1.0))
    for i in range(100):
        dead.send(packet(i), 0.0)
    assert dead.receive(10.0) == [] and dead.stats.lost == 100


def test_duplication_delivers_extra_copies_and_counts_them() -> None:
    n, p = 10_000, 0.25
    link = LoopbackLink(LinkModel(duplicate=p, latency_s=0.01, seed=3))
    for i in range(n):
        link.send(packet(i), 0.0)
    got = [ident(d) for d in link.receive(1.0)]
    s = link.stats
    assert len(got) == n + s.duplicated == s.delivered
    assert set(got) == set(range(n))
    assert abs(s.duplicated - n * p) < 5 * math.sqrt(n * p * (1 - p))
    assert conserved(s)


def test_reordering_lets_packets_overtake() -> None:
    link = LoopbackLink(LinkModel(latency_s=0.1, reorder=0.2, seed=11))
    for i in range(1000):
        link.send(packet(i), i * 0.001)
    got = [ident(d) for d in link.receive(10.0)]
    s = link.stats
    assert sorted(got) == list(range(1000))
    assert got != sorted(got)
    assert 100 < s.reordered < 300
    assert s.out_of_order > 0
    # With no reordering and no jitter, the same traffic stays in order.
    calm = LoopbackLink(LinkModel(latency_s=0.1, seed=11))
    for i in range(1000):
        calm.send(packet(i), i * 0.001)
    assert [ident(d) for d in calm.receive(10.0)] == list(range(1000))


def test_jitter_stays_within_its_bound_and_spreads() -> None:
    lat, jit = 0.05, 0.02
    link = LoopbackLink(LinkModel(latency_s=lat, jitter_s=jit, seed=5))
    sent_at = {}
    for i in range(2000):
        sent_at[i] = i * 0.01
        link.send(packet(i), sent_at[i])
    delays = [t - sent_at[i] for t, i in drain_with_times(link)]
    assert len(delays) == 2000
    assert min(delays) >= lat - jit - 1e-9 and max(delays) <= lat + jit + 1e-9
    assert min(delays) < lat - 0.8 * jit and max(delays) > lat + 0.8 * jit
    assert abs(sum(delays) / len(delays) - lat) < 0.002


def test_jitter_larger_than_latency_never_delivers_before_sending() -> None:
    link = LoopbackLink(LinkModel(latency_s=0.001, jitter_s=0.05, seed=2))
    for i in range(500):
        link.send(packet(i), 1.0)
    assert all(t >= 1.0 for t, _ in drain_with_times(link))


def test_bandwidth_serialises_packets() -> None:
    # 1000-byte packets at 80 kbit/s take 0.1 s each on the wire.
    link = LoopbackLink(LinkModel(latency_s=0.02, bandwidth_bps=80_000))
    for i in range(5):
        link.send(packet(i, 1000), 0.0)
    assert link.stats.queued_bytes == 5000
    times = drain_with_times(link)
    assert [i for _, i in times] == list(range(5))
    assert [t for t, _ in times] == pytest.approx([0.12, 0.22, 0.32, 0.42, 0.52])
    assert link.stats.queued_bytes == 0


def test_bandwidth_cap_bounds_throughput_and_an_idle_link_recovers() -> None:
    bps = 1_000_000
    link = LoopbackLink(LinkModel(bandwidth_bps=bps))
    t = 0.0
    for i in range(2000):  # offered: 1200 B every 1 ms = 9.6 Mbit/s
        link.send(packet(i, 1200), t)
        t += 0.001
    times = drain_with_times(link)
    duration = times[-1][0]
    assert 2000 * 1200 * 8 / duration == pytest.approx(bps, rel=1e-6)
    # After the queue drains, a lone packet only pays its own serialisation time.
    link.send(packet(9999, 125), duration + 10.0)
    assert link.next_arrival() == pytest.approx(duration + 10.0 + 0.001)


def test_queue_limit_tail_drops_and_counts() -> None:
    link = LoopbackLink(LinkModel(bandwidth_bps=8_000, queue_limit_bytes=3000))
    for i in range(10):
        link.send(packet(i, 1000), 0.0)
    s = link.stats
    assert s.dropped_for_bandwidth == 7 and s.dropped_for_bandwidth_bytes == 7000
    assert s.queued_bytes == 3000
    assert [i for _, i in drain_with_times(link)] == [0, 1, 2]
    # One second later the first kilobyte has left the queue: room for one more.
    link2 = LoopbackLink(LinkModel(bandwidth_bps=8_000, queue_limit_bytes=3000))
    for i in range(3):
        link2.send(packet(i, 1000), 0.0)
    link2.send(packet(3, 1000), 1.0)
    link2.send(packet(4, 1000), 1.0)
    assert link2.stats.dropped_for_bandwidth == 1
    assert conserved(link.stats) and conserved(link2.stats)
    # Reliable messages wait in the queue rather than being dropped: 1 s per kilobyte here.
    link3 = LoopbackLink(LinkModel(bandwidth_bps=8_000, queue_limit_bytes=1000))
    for i in range(4):
        link3.send(packet(i, 1000), 0.0, reliable=True)
    assert link3.stats.dropped_for_bandwidth == 0
    assert [t for t, _ in drain_with_times(link3)] == pytest.approx([1.0, 2.0, 3.0, 4.0])


def test_datagrams_over_the_mtu_are_dropped_and_counted() -> None:
    link = LoopbackLink(LinkModel(mtu_bytes=1200))
    link.send(bytes(1200), 0.0)
    link.send(bytes(1201), 0.0)
    link.send(bytes(5000), 0.0, reliable=True)  # a stream segments what it carries
    assert [len(p) for p in link.receive(0.0)] == [1200, 5000]
    s = link.stats
    assert s.dropped_oversize == 1 and conserved(s)


# -- reliable messages -------------------------------------------------------------------------
def test_reliable_survives_total_loss_in_order_without_copies() -> None:
    m = LinkModel(latency_s=0.05, loss=1.0, duplicate=1.0, reorder=1.0, seed=1)
    link = LoopbackLink(m)
    for i in range(20):
        link.send(packet(i), 0.0, reliable=True)
    times = drain_with_times(link)
    assert [i for _, i in times] == list(range(20))
    assert link.stats.retransmitted == 20 * MAX_RETRANSMISSIONS
    assert times[0][0] == pytest.approx(0.05 + MAX_RETRANSMISSIONS * m.retransmit_s)
    assert link.stats.lost == link.stats.duplicated == 0


def test_reliable_pays_retransmissions_and_head_of_line_blocking() -> None:
    m = LinkModel(latency_s=0.05, jitter_s=0.01, loss=0.3, seed=9)
    link = LoopbackLink(m)
    for i in range(500):
        link.send(packet(i), i * 0.002, reliable=True)
    times = drain_with_times(link)
    assert [i for _, i in times] == list(range(500))
    arrivals = [t for t, _ in times]
    assert arrivals == sorted(arrivals)
    s = link.stats
    assert 100 < s.retransmitted < 350  # geometric: mean 0.3/0.7 * 500 ~ 214
    assert s.lost == 0 and s.delivered == 500
    # Unreliable traffic on the same link is still lost.
    link.send(packet(1000), 2.0)
    link.send(packet(1001), 2.0)
    for i in range(100):
        link.send(packet(2000 + i), 2.0)
    assert link.stats.lost > 0


# -- reproducibility ---------------------------------------------------------------------------
def run_traffic(model: LinkModel) -> list[tuple[float, int]]:
    link = LoopbackLink(model)
    for i in range(500):
        link.send(packet(i), i * 0.004, reliable=(i % 7 == 0))
    return drain_with_times(link)


def test_same_seed_same_run_other_seed_other_run() -> None:
    m = LinkModel(latency_s=0.05, jitter_s=0.01, loss=0.1, duplicate=0.05, reorder=0.05, seed=42)
    first = run_traffic(m)
    assert run_traffic(m) == first
    other = run_traffic(LinkModel(**{**m.__dict__, "seed": 43}))
    assert other != first


def test_changing_one_probability_keeps_the_other_draws() -> None:
    """A fixed number of draws per packet: enabling duplication does not reshuffle losses."""
    base = LinkModel(loss=0.2, seed=4)
    a, b = LoopbackLink(base), LoopbackLink(LinkModel(loss=0.2, duplicate=0.5, seed=4))
    for i in range(300):
        a.send(packet(i), 0.0)
        b.send(packet(i), 0.0)
    assert {ident(p) for p in a.receive(1.0)} == {ident(p) for p in b.receive(1.0)}


@settings(max_examples=40, deadline=None)
@given(
    loss=st.floats(0, 1),
    dup=st.floats(0, 1),
    reorder=st.floats(0, 1),
    jitter=st.floats(0, 0.05),
    bw=st.one_of(st.none(), st.floats(1e4, 1e7)),
    limit=st.one_of(st.none(), st.integers(1, 20_000)),
    mtu=st.one_of(st.none(), st.integers(1, 1500)),
    seed=st.integers(0, 2**32),
    sizes=st.lists(st.integers(0, 1500), min_size=1, max_size=60),
)
def test_every_packet_is_accounted_for(
    loss: float,
    dup: float,
    reorder: float,
    jitter: float,
    bw: float | None,
    limit: int | None,
    mtu: int | None,
    seed: int,
    sizes: list[int],
) -> None:
    m = LinkModel(0.02, jitter, loss, dup, reorder, bw, seed, limit, mtu)
    link = LoopbackLink(m)
    t = 0.0
    got: list[int] = []
    for i, size in enumerate(sizes):
        link.send(packet(i, max(size, 4)), t, reliable=(i % 5 == 0))
        t += 0.001
        if i % 9 == 0:
            got.extend(ident(p) for p in link.receive(t))
        assert conserved(link.stats)
    got.extend(i for _, i in drain_with_times(link))
    s = link.stats
    assert s.in_flight == 0 and conserved(s) and len(got) == s.delivered
    assert set(got) <= set(range(len(sizes)))
    reliable = [i for i in got if i % 5 == 0]
    assert reliable == list(range(0, len(sizes), 5))  # every one, once, in order


# -- misuse ------------------------------------------------------------------------------------
def test_time_must_be_finite_and_monotonic() -> None:
    link = LoopbackLink()
    link.send(b"a", 1.0)
    with pytest.raises(LinkTimeError):
        link.send(b"b", 0.5)
    with pytest.raises(LinkTimeError):
        link.receive(0.9)
    with pytest.raises(LinkTimeError):
        link.receive(math.nan)
    with pytest.raises(LinkTimeError):
        link.send(b"c", math.inf)
    with pytest.raises(LinkTimeError):
        link.send(b"c", "2.0")  # type: ignore[arg-type]
    assert link.receive(1.0) == [b"a"]


def test_non_bytes_payload_is_refused() -> None:
    link = LoopbackLink()
    with pytest.raises(LoopbackError):
        link.send("text", 0.0)  # type: ignore[arg-type]
    with pytest.raises(LoopbackError):
        link.send(None, 0.0)  # type: ignore[arg-type]
    assert link.stats.sent == 0


def test_empty_datagram_is_a_datagram() -> None:
    link = LoopbackLink()
    link.send(b"", 0.0)
    assert link.receive(0.0) == [b""]


# -- transports --------------------------------------------------------------------------------
def test_pair_is_a_transport_and_talks_both_ways() -> None:
    clock = ManualClock()
    net = LoopbackNetwork(LinkModel(latency_s=0.05), clock=clock)
    a, b = net.pair()
    assert isinstance(a, Transport) and isinstance(b, LoopbackTransport)
    a.send(b"ping")
    assert b.receive() == []
    clock.advance(0.05)
    assert b.receive() == [b"ping"]
    b.send(b"pong", reliable=True)
    clock.advance(0.049)
    assert a.receive() == []
    clock.advance(0.002)
    assert a.receive() == [b"pong"]
    assert a.stats.outgoing.sent == 1 and a.stats.incoming.delivered == 1
    assert b.stats.outgoing == a.stats.incoming


def test_directions_and_pairs_have_their_own_random_streams() -> None:
    clock = ManualClock()
    net = LoopbackNetwork(LinkModel(loss=0.5, seed=8), clock=clock)
    (a, b), (c, d) = net.pair(), net.pair()
    for i in range(200):
        for src in (a, b, c, d):
            src.send(packet(i))
    got = [tuple(ident(p) for p in dst.receive()) for dst in (b, a, d, c)]
    assert len(set(got)) == 4
    again = LoopbackNetwork(LinkModel(loss=0.5, seed=8), clock=ManualClock())
    a2, b2 = again.pair()
    for i in range(200):
        a2.send(packet(i))
    assert tuple(ident(p) for p in b2.receive()) == got[0]


def test_asymmetric_pair() -> None:
    clock = ManualClock()
    a, b = LoopbackNetwork(clock=clock).pair(
        LinkModel(latency_s=0.01), reverse=LinkModel(latency_s=0.2)
    )
    a.send(b"up")
    b.send(b"down")
    clock.advance(0.01)
    assert b.receive() == [b"up"] and a.receive() == []
    clock.advance(0.19)
    assert a.receive() == [b"down"]


def test_close_refuses_sends_and_counts_what_the_peer_sends() -> None:
    clock = ManualClock()
    a, b = LoopbackNetwork(LinkModel(latency_s=0.1), clock=clock).pair()
    b.send(b"in flight")
    a.close()
    a.close()  # idempotent
    with pytest.raises(TransportClosedError):
        a.send(b"x")
    assert b.peer_closed
    b.send(b"after close")
    clock.advance(1.0)
    assert a.receive() == []
    assert b.stats.outgoing.dropped_closed == 2
    assert conserved(b.stats.outgoing)


def test_wall_clock_network_works() -> None:
    a, b = LoopbackNetwork().pair()
    a.send(b"now")
    assert b.receive() == [b"now"]


def test_manual_clock_refuses_to_go_back() -> None:
    clock = ManualClock(5.0)
    with pytest.raises(LinkTimeError):
        clock.advance(-1.0)
    with pytest.raises(LinkTimeError):
        clock.set(4.0)
    with pytest.raises(LinkTimeError):
        clock.advance(math.nan)
    with pytest.raises(LinkTimeError):
        clock.advance("1")  # type: ignore[arg-type]
    clock.set(6.0)
    assert clock() == 6.0


def test_factory_takes_a_model_or_its_fields() -> None:
    clock = ManualClock()
    f = LoopbackTransportFactory(latency_s=0.02, loss=0.0, clock=clock)
    assert f.model == LinkModel(latency_s=0.02)
    a, b = f.connect_pair()
    a.send(b"hello")
    clock.advance(0.02)
    assert b.receive() == [b"hello"]
    g = LoopbackTransportFactory(model=LinkModel(loss=1.0), clock=clock)
    c, d = g.connect_pair()
    c.send(b"gone")
    assert d.receive() == [] and c.stats.outgoing.lost == 1
    with pytest.raises(LinkModelError, match="unknown loopback options"):
        LoopbackTransportFactory(latencyy=1.0)
    with pytest.raises(LinkModelError, match="either"):
        LoopbackTransportFactory(model=LinkModel(), loss=0.1)
    with pytest.raises(LinkModelError):
        LoopbackTransportFactory(loss=3.0)


def test_factory_is_the_registered_loopback_transport() -> None:
    from theta_ecs import plugins

    factory = plugins.create("theta.transports", "loopback", latency_s=0.0)
    assert isinstance(factory, LoopbackTransportFactory)
    a, b = factory.connect_pair()
    a.send(b"via entry point")
    assert b.receive() == [b"via entry point"]
