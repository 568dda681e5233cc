"""Shared helpers of the command-log tests (peers with fixed keys, packet delivery)."""

from __future__ import annotations

from dataclasses import dataclass, field

from theta_ecs import World
from theta_ecs.commandlog import (
    CommandLog,
    ConflictPolicy,
    Editor,
    GuardConfig,
    Role,
    Roster,
    Signer,
)
from theta_ecs.interfaces import CommandStore

GENEROUS = GuardConfig(rate=1e9, burst=1e9, local_rate=1e9, local_burst=1e9)


def signer(i: int) -> Signer:
    """A deterministic key per index (keeps runs reproducible)."""
    return Signer.from_seed(bytes([i + 1]) * 32)


def roster(n: int, roles: dict[int, Role] | None = None) -> Roster:
    r = Roster()
    for i in range(n):
        r.add(signer(i).public_key, (roles or {}).get(i, Role.EDITOR))
    return r


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Peer:
    world: World
    log: CommandLog
    editor: Editor
    sent: list[bytes] = field(default_factory=list)

    def flush(self) -> list[bytes]:
        packets = self.log.flush()
        self.sent.extend(packets)
        self.editor.apply_changes()
        return packets

    def receive(self, packets: list[bytes]) -> None:
        for p in packets:
            self.log.receive(p)
        self.editor.apply_changes()

    def fingerprint(self) -> tuple[str, list[bytes]]:
        return self.editor.digest(), [e.encode() for e in self.log.ordered()]


def make_peer(
    i: int,
    roster_: Roster,
    *,
    policy: ConflictPolicy | None = None,
    guards: GuardConfig = GENEROUS,
    store: CommandStore | None = None,
    now: FakeClock | None = None,
    with_signer: bool = True,
    joining: bool = False,
) -> Peer:
    world = World()
    log = CommandLog(
        roster_,
        signer(i) if with_signer else None,
        policy=policy,
        guards=guards,
        store=store,
        telemetry=world.telemetry,
        now=now or FakeClock(),
        joining=joining,
    )
    return Peer(world, log, Editor(world, log))


def exchange(*peers: Peer) -> None:
    """Everyone flushes, everyone receives everyone else's packets."""
    out = [(p, p.flush()) for p in peers]
    for p in peers:
        for q, packets in out:
            if q is not p:
                p.receive(packets)


def counters(peer: Peer) -> dict[str, int]:
    return peer.world.telemetry.counters
