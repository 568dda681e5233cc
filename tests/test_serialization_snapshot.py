"""Snapshot capture and the full/delta codec: exact round trips, error bounds, hostile input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theta_ecs import Component, QuantizedFloat, SmallestThree, World
from theta_ecs.errors import ThetaError
from theta_ecs.serialization import (
    DecodeError,
    ReplicationSchema,
    SchemaMismatchError,
    Snapshot,
    StateCodec,
    capture,
    decode_body,
    diff,
    encode_body,
)
from theta_ecs.serialization.quantize import (
    dequantize_float,
    quantize_float,
    smallest_three_decode,
    smallest_three_encode,
    smallest_three_error_bound,
)

Pos = Component(
    "test.ser.Position",
    np.dtype((np.float32, 3)),
    fields=("x", "y", "z"),
    quantization={f: QuantizedFloat(18, -500.0, 500.0) for f in "xyz"},
)
Rot = Component(
    "test.ser.Rotation",
    np.dtype((np.float32, 4)),
    fields=("x", "y", "z", "w"),
    quantization={"*": SmallestThree(10)},
)
Flag = Component("test.ser.Flag", np.bool_)
Mass = Component("test.ser.Mass", np.float64)  # unquantized: two raw 32-bit lanes
Cell = Component("test.ser.Cell", np.dtype((np.int16, 2)), fields=("i", "j"))
Stats = Component(
    "test.ser.Stats",
    np.dtype([("hp", np.uint16), ("speed", np.float32), ("tint", np.uint8, (3,))]),
    quantization={"speed": QuantizedFloat(12, 0.0, 40.0)},
)
Local = Component("test.ser.LocalOnly", np.float32, replicated=False)
ALL = (Pos, Rot, Flag, Mass, Cell, Stats, Local)


def _values(comp: Component, n: int, rng: np.random.Generator) -> np.ndarray:
    if comp is Rot:
        q = rng.normal(size=(n, 4))
        return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    if comp is Pos:
        return rng.uniform(-400, 400, (n, 3)).astype(np.float32)
    if comp is Flag:
        return rng.random(n) < 0.5
    if comp is Mass:
        return rng.normal(size=n) * 1e6
    if comp is Cell:
        return rng.integers(-(2**15), 2**15, (n, 2)).astype(np.int16)
    if comp is Stats:
        s = np.zeros(n, Stats.dtype)
        s["hp"] = rng.integers(0, 2**16, n)
        s["speed"] = rng.uniform(0, 40, n)
        s["tint"] = rng.integers(0, 256, (n, 3))
        return s
    return rng.normal(size=n).astype(np.float32)


def make_world(seed: int, n: int = 300) -> tuple[World, np.ndarray]:
    rng = np.random.default_rng(seed)
    world = World()
    ents = []
    for _ in range(4):  # several archetypes
        comps = [c for c in ALL if rng.random() < 0.6] or [Pos]
        ents.append(world.spawn_batch({c: _values(c, n // 4, rng) for c in comps}))
    return world, np.concatenate(ents)


def mutate(world: World, ents: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move some, despawn some, spawn some, add and remove components."""
    alive = ents[[world.is_alive(int(e)) for e in ents]]
    moving = rng.choice(alive, size=len(alive) // 3, replace=False)
    for comp in (Pos, Rot, Stats):
        have = np.array([e for e in moving if world.has(int(e), comp)], np.uint64)
        if len(have):
            world.insert_batch(have, comp, _values(comp, len(have), rng))
    doomed = rng.choice(alive, size=len(alive) // 10, replace=False)
    world.despawn_batch(doomed)
    alive = np.setdiff1d(alive, doomed)
    born = world.spawn_batch({Pos: _values(Pos, 20, rng), Flag: _values(Flag, 20, rng)})
    gain = [int(e) for e in alive[:15] if not world.has(int(e), Mass)]
    if gain:
        world.insert_batch(np.array(gain, np.uint64), Mass, _values(Mass, len(gain), rng))
    lose = [
        int(e)
        for e in alive[15:40]
        if world.has(int(e), Flag) and len(world.components_of(int(e))) > 1
    ]
    if lose:
        world.remove_batch(np.array(lose, np.uint64), Flag)
    world.tick += 1
    return np.concatenate([alive, born])


@pytest.fixture(scope="module")
def schema() -> ReplicationSchema:
    return ReplicationSchema(ALL)


def test_schema_skips_unreplicated_and_lays_out_lanes(schema: ReplicationSchema) -> None:
    assert Local not in schema.components
    by = {c.name: schema.codecs[i].lane_bits for i, c in enumerate(schema.components)}
    assert by[Pos.name] == (18, 18, 18)
    assert by[Rot.name] == (2, 10, 10, 10)
    assert by[Flag.name] == (1,)
    assert by[Mass.name] == (32, 32)
    assert by[Cell.name] == (16, 16)
    assert by[Stats.name] == (16, 12, 8, 8, 8)
    assert ReplicationSchema(ALL).hash == schema.hash
    assert ReplicationSchema(ALL, quantize=False).hash != schema.hash


def test_full_snapshot_round_trip_is_exact(schema: ReplicationSchema) -> None:
    world, _ = make_world(1)
    snap = capture(world, schema)
    assert len(snap) == world.entity_count
    back = decode_body(schema, encode_body(schema, snap))
    assert back.same_state(snap)


def test_delta_round_trips_over_many_ticks(schema: ReplicationSchema) -> None:
    rng = np.random.default_rng(7)
    world, ents = make_world(2)
    history = [capture(world, schema)]
    for _ in range(12):
        ents = mutate(world, ents, rng)
        cur = capture(world, schema)
        for base in history[-4:]:  # any older baseline works, not only the previous one
            body = encode_body(schema, cur, base)
            assert decode_body(schema, body, base).same_state(cur)
        history.append(cur)


def test_unchanged_state_costs_almost_nothing(schema: ReplicationSchema) -> None:
    world, _ = make_world(3)
    snap = capture(world, schema)
    assert len(encode_body(schema, snap, snap)) <= 1
    assert len(encode_body(schema, snap, snap)) < len(encode_body(schema, snap)) / 1000 + 1


def test_diff_matches_a_naive_comparison(schema: ReplicationSchema) -> None:
    rng = np.random.default_rng(11)
    world, ents = make_world(4)
    base = capture(world, schema)
    mutate(world, ents, rng)
    cur = capture(world, schema)
    d = diff(schema, cur, base)
    base_rows = {int(e): i for i, e in enumerate(base.entities)}
    for i, e in enumerate(cur.entities):
        b = base_rows.get(int(e))
        if b is None:
            assert i in d.added
            continue
        differs = not (
            np.array_equal(cur.values[i], base.values[b])
            and np.array_equal(cur.presence[i], base.presence[b])
        )
        assert (i in d.changed) == differs
    assert set(base.entities[d.removed].tolist()) == set(base_rows) - set(cur.entities.tolist())


def test_unquantized_schema_is_lossless() -> None:
    schema = ReplicationSchema(ALL, quantize=False)
    world, _ = make_world(5)
    snap = capture(world, schema)
    back = decode_body(schema, encode_body(schema, snap))
    for ci, comp in enumerate(schema.components):
        rows = np.flatnonzero(back.presence[:, ci])
        col = schema.codecs[ci].from_lanes(back.values[rows][:, schema.lane_slices[ci]])
        expect = [world.get(int(e), comp) for e in back.entities[rows]]
        assert np.array_equal(col, np.array(expect, dtype=col.dtype).reshape(col.shape))


@given(st.lists(st.floats(-600, 600, allow_nan=False), min_size=1, max_size=50))
def test_quantized_float_error_is_within_half_a_step(xs: list[float]) -> None:
    q = QuantizedFloat(18, -500.0, 500.0)
    x = np.array(xs, np.float32)
    back = dequantize_float(quantize_float(x, q), q)
    clipped = np.clip(x.astype(np.float64), -500.0, 500.0)
    assert np.all(np.abs(back - clipped) <= q.step / 2 + 1e-9)


@given(
    st.lists(st.tuples(*[st.floats(-1, 1, allow_nan=False)] * 4), min_size=1, max_size=40),
    st.integers(4, 16),
)
def test_smallest_three_error_bound(quats: list[tuple[float, ...]], bits: int) -> None:
    q = np.array(quats, np.float64)
    norm = np.linalg.norm(q, axis=1)
    q = q[norm > 1e-3] / norm[norm > 1e-3, None]
    s3 = SmallestThree(bits)
    back = smallest_three_decode(smallest_three_encode(q, s3), s3)
    sign = np.where(np.einsum("ij,ij->i", back, q) < 0, -1.0, 1.0)
    err = np.abs(back * sign[:, None] - q)
    assert np.all(err <= smallest_three_error_bound(s3))
    assert np.allclose(np.linalg.norm(back, axis=1), 1.0, atol=1e-6)


def test_codec_refuses_another_schema(schema: ReplicationSchema) -> None:
    world, _ = make_world(6)
    snap = capture(world, schema)
    packet = StateCodec(schema).encode(snap, 5)
    other = ReplicationSchema([Pos, Rot])
    with pytest.raises(SchemaMismatchError):
        StateCodec(other).decode_bytes(packet)
    assert StateCodec(schema).decode_bytes(packet).same_state(snap)


def test_decoder_rejects_every_truncation(schema: ReplicationSchema) -> None:
    rng = np.random.default_rng(9)
    world, ents = make_world(8, n=80)
    base = capture(world, schema)
    mutate(world, ents, rng)
    body = encode_body(schema, capture(world, schema), base)
    for cut in range(len(body)):
        with pytest.raises(DecodeError):
            decode_body(schema, body[:cut], base)


_FUZZ_SCHEMA = ReplicationSchema(ALL)
_FUZZ_WORLD, _ = make_world(10, n=40)
_FUZZ_BASE = capture(_FUZZ_WORLD, _FUZZ_SCHEMA)
_FUZZ_BODY = encode_body(_FUZZ_SCHEMA, _FUZZ_BASE)


def _check_decoded(snap: Snapshot) -> None:
    assert snap.values.shape == (len(snap), _FUZZ_SCHEMA.n_lanes)
    idx = snap.entities & np.uint64(0xFFFFFFFF)
    assert np.all(np.diff(idx.astype(np.int64)) > 0)
    assert snap.presence.any(axis=1).all()
    assert np.all(snap.values < (np.uint64(1) << _FUZZ_SCHEMA.lane_bits.astype(np.uint64)))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.booleans())
def test_hostile_bodies_raise_decode_error(data: bytes, with_base: bool) -> None:
    try:
        snap = decode_body(_FUZZ_SCHEMA, data, _FUZZ_BASE if with_base else None)
    except ThetaError as exc:
        assert isinstance(exc, DecodeError)
    else:
        _check_decoded(snap)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_FUZZ_BODY) - 1), st.integers(0, 7), st.integers(1, 255))
def test_bit_flipped_bodies_raise_or_stay_valid(pos: int, bit: int, xor: int) -> None:
    data = bytearray(_FUZZ_BODY)
    data[pos] ^= (1 << bit) | (xor if pos % 2 else 0)
    try:
        snap = decode_body(_FUZZ_SCHEMA, bytes(data))
    except ThetaError as exc:
        assert isinstance(exc, DecodeError)
    else:
        _check_decoded(snap)


def test_prediction_round_trips_and_shrinks_moving_bodies() -> None:
    from theta_ecs.scenes.components import CubeLinearVelocity, CubePosition
    from theta_ecs.scenes.cubes import CubesScene
    from theta_ecs.serialization import Prediction

    scene = CubesScene(201, seed=5)
    plain = ReplicationSchema(scene.components)
    pred = ReplicationSchema(
        scene.components, prediction=Prediction(CubePosition, CubeLinearVelocity, 1 / 60)
    )
    assert pred.hash != plain.hash  # a peer without the predictor cannot decode these bodies
    assert pred.lane_order[:3] == tuple(range(pred.n_lanes))[pred.lane_slices[pred.index_of[
        CubeLinearVelocity.id]]]
    history = []
    sizes = {"plain": 0, "pred": 0}
    for _ in range(40):  # the cubes fall: position follows velocity closely
        scene.step(1 / 60)
        history.append(capture(scene.world, pred))
    for age in (1, 3, 7, 15):
        cur, base = history[-1], history[-1 - age]
        body = encode_body(pred, cur, base)
        assert decode_body(pred, body, base, tick=cur.tick).same_state(cur)
        assert not decode_body(pred, body, base, age=age + 1).same_state(cur)
        sizes["pred"] += len(body)
        sizes["plain"] += len(encode_body(plain, cur, base))
    assert sizes["pred"] < 0.9 * sizes["plain"]
