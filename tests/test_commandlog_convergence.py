"""Property: peers that receive the same commands in any order, with duplicates and delays, end
with identical worlds and identical logs."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theta_ecs.commandlog import (
    CommandPayloadError,
    ConflictPolicy,
    MeshRef,
    Selection,
    SqliteCommandStore,
    Strategy,
    Transform,
)
from theta_ecs.commandlog.editor import EXISTENCE

from .test_commandlog_support import Peer, make_peer, roster

AUTHORS = 3
FIELDS = ("px", "py", "pz", "rw", "sx")

ops = st.lists(
    st.tuples(
        st.integers(0, AUTHORS - 1),  # which author acts
        st.sampled_from(
            ["create", "create_mesh", "set", "set", "set", "delete", "select", "tool",
             "vertex", "face", "undo", "redo", "hear", "flush"]
        ),
        st.integers(0, 1 << 16),  # picks a target / a value
    ),
    min_size=12,
    max_size=60,
)


def _act(p: Peer, op: str, arg: int, pool: list[bytes], rng: random.Random) -> None:
    ed = p.editor
    live = sorted(n for n in ed.index.local if n & 0xFFFFFFFF)
    target = live[arg % len(live)] if live else None
    try:
        if op == "create":
            ed.create_entity({FIELDS[arg % 5]: float(arg % 97)})
        elif op == "create_mesh":
            ed.create_entity(mesh=True)
        elif op == "set" and target is not None:
            ed.set_transform(target, **{FIELDS[arg % 5]: float(arg % 89), "py": float(arg % 7)})
        elif op == "delete" and target is not None:
            ed.delete_entity(target)
        elif op == "select" and target is not None:
            ed.select(target, selected=bool(arg & 1), highlight=arg % 4)
        elif op == "tool":
            ed.set_tool(arg % 5, float(arg % 11), (1.0, 2.0, float(arg % 3)))
        elif op in ("vertex", "face") and target is not None:
            mesh = ed.meshes.get(target)
            if mesh is None:
                return
            if op == "vertex" or len(mesh.vertex_ids) < 3:
                ed.mesh_add_vertex(target, (float(arg % 5), float(arg % 3), 0.0))
            else:
                ids = rng.sample(mesh.vertex_ids, 3)
                ed.mesh_add_face(target, *ids)
        elif op == "undo":
            ed.undo()
        elif op == "redo":
            ed.redo()
        elif op == "hear" and pool:  # hear a random part of what was sent so far
            p.receive(rng.sample(pool, k=1 + arg % len(pool)))
        elif op == "flush":
            pool.extend(p.flush())
    except CommandPayloadError:
        pass  # e.g. deleting an entity already deleted in the author's own view


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    script=ops,
    strategy=st.sampled_from(list(Strategy)),
    mesh_strategy=st.sampled_from(list(Strategy)),
    seed=st.integers(0, 1 << 30),
    receivers=st.integers(2, 4),
)
def test_any_delivery_order_converges(
    script: list[tuple[int, str, int]],
    strategy: Strategy,
    mesh_strategy: Strategy,
    seed: int,
    receivers: int,
) -> None:
    rng = random.Random(seed)
    r = roster(AUTHORS)

    def policy() -> ConflictPolicy:
        return ConflictPolicy(
            components={Transform.id: strategy, MeshRef.id: mesh_strategy,
                        Selection.id: Strategy.LWW, EXISTENCE: Strategy.LWW}
        )

    authors = [make_peer(i, r, policy=policy()) for i in range(AUTHORS)]
    pool: list[bytes] = []
    for i, a in enumerate(authors):  # a shared starting scene, then concurrent editing
        a.editor.create_entity({"px": float(i)})
        a.editor.create_entity(mesh=True)
        pool.extend(a.flush())
    for a in authors:
        a.receive(pool)
    for who, op, arg in script:
        _act(authors[who], op, arg, pool, rng)
    for a in authors:
        pool.extend(a.flush())

    # receivers: fresh observers, and the authors themselves; each gets every packet in its own
    # random order, some twice, applying changes at random frame boundaries
    peers = [make_peer(i, r, policy=policy(), with_signer=False) for i in range(receivers)]
    peers += authors
    for peer in peers:
        deliveries = pool + rng.sample(pool, k=len(pool) // 3)
        rng.shuffle(deliveries)
        for packet in deliveries:
            peer.log.receive(packet)
            if rng.random() < 0.3:
                peer.editor.apply_changes()
        peer.editor.apply_changes()

    expected = peers[0].fingerprint()
    for peer in peers[1:]:
        assert peer.log.pending == 0
        assert peer.fingerprint() == expected
    # and the world matches a peer that received everything at once, in the order it was sent
    ordered = make_peer(0, r, policy=policy(), with_signer=False)
    for packet in pool:
        ordered.log.receive(packet)
    ordered.editor.apply_changes()
    assert ordered.fingerprint() == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=ops, seed=st.integers(0, 1 << 30), cut=st.floats(0.0, 1.0))
def test_a_peer_restarted_from_sqlite_midway_converges(
    script: list[tuple[int, str, int]], seed: int, cut: float
) -> None:
    rng = random.Random(seed)
    r = roster(AUTHORS)
    authors = [make_peer(i, r) for i in range(AUTHORS)]
    pool: list[bytes] = []
    for who, op, arg in script:
        _act(authors[who], op, arg, pool, rng)
    for a in authors:
        pool.extend(a.flush())
    deliveries = pool + rng.sample(pool, k=len(pool) // 3)
    rng.shuffle(deliveries)
    split = int(len(deliveries) * cut)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "peer.db"
        peer = make_peer(1, r, store=SqliteCommandStore(path))
        peer.receive(deliveries[:split])
        assert peer.log.store is not None
        peer.log.store.close()  # the process ends; a new one starts from the file
        store = SqliteCommandStore(path)
        peer = make_peer(1, r, store=store)
        peer.log.restore()
        peer.receive(deliveries[split:])
        reference = make_peer(0, r, with_signer=False)
        reference.receive(pool)
        assert peer.fingerprint() == reference.fingerprint()
        store.close()
