"""Property test: random sequences of world operations agree with a plain-dict model."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs import World

from .conftest import Health, Pos, Tag

COMPS = (Pos, Health, Tag)


def _value(comp: object, seed: int) -> object:
    if comp is Pos:
        return (float(seed), float(seed + 1), float(seed + 2))
    if comp is Health:
        return seed
    return seed % 256


def _as_key(comp: object, value: object) -> object:
    arr = np.asarray(value)
    return tuple(arr.tolist()) if arr.ndim else arr.item()


ops = st.lists(
    st.tuples(
        st.sampled_from(["spawn", "spawn_batch", "despawn", "insert", "remove", "insert_batch",
                         "remove_batch", "despawn_batch", "set"]),
        st.integers(0, 10_000),
        st.lists(st.sampled_from(COMPS), unique=True, max_size=3),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_world_matches_model(sequence: list[tuple[str, int, list[object]]]) -> None:
    world = World(capacity=4)
    model: dict[int, dict[object, object]] = {}
    dead: list[int] = []
    for op, seed, comps in sequence:
        alive = sorted(model)
        pick = alive[seed % len(alive)] if alive else None
        subset = alive[seed % 3 :: 3] if alive else []
        comp = comps[0] if comps else Health
        if op == "spawn":
            values = {c: _value(c, seed) for c in comps}
            e = world.spawn(values)
            model[e] = {c: _as_key(c, v) for c, v in values.items()}
        elif op == "spawn_batch" and comps:
            n = seed % 7
            cols = {c: np.array([_value(c, seed + i) for i in range(n)]) for c in comps}
            for c in (Pos,):
                if c in cols:
                    cols[c] = cols[c].astype(np.float32).reshape(n, 3)
            if Tag in cols:
                cols[Tag] = cols[Tag].astype(np.uint8)
            ents = world.spawn_batch(cols, count=n)
            for i, e in enumerate(ents.tolist()):
                model[e] = {c: _as_key(c, cols[c][i]) for c in comps}
        elif op == "despawn" and pick is not None:
            world.despawn(pick)
            del model[pick]
            dead.append(pick)
        elif op == "despawn_batch" and subset:
            world.despawn_batch(np.array(subset, np.uint64))
            for e in subset:
                del model[e]
                dead.append(e)
        elif op == "insert" and pick is not None:
            world.insert(pick, comp, _value(comp, seed))
            model[pick][comp] = _as_key(comp, _value(comp, seed))
        elif op == "set" and pick is not None and model[pick]:
            c = next(iter(model[pick]))
            world.set(pick, c, _value(c, seed))
            model[pick][c] = _as_key(c, _value(c, seed))
        elif op == "remove" and pick is not None and comp in model[pick]:
            world.remove(pick, comp)
            del model[pick][comp]
        elif op == "insert_batch" and subset:
            vals = [_value(comp, seed + i) for i in range(len(subset))]
            arr = np.array(vals)
            if comp is Pos:
                arr = arr.astype(np.float32)
            elif comp is Tag:
                arr = arr.astype(np.uint8)
            world.insert_batch(np.array(subset, np.uint64), comp, arr)
            for e, v in zip(subset, arr):
                model[e][comp] = _as_key(comp, v)
        elif op == "remove_batch":
            having = [e for e in subset if comp in model[e]]
            if having:
                world.remove_batch(np.array(having, np.uint64), comp)
                for e in having:
                    del model[e][comp]

    assert world.entity_count == len(model)
    for e, comps_of in model.items():
        assert world.is_alive(e)
        assert set(world.components_of(e)) == set(comps_of)
        for c, v in comps_of.items():
            assert _as_key(c, world.get(e, c)) == v
    for e in dead:
        assert not world.is_alive(e)
    for c in COMPS:
        expected = {e for e, cs in model.items() if c in cs}
        assert set(world.query(c).entities().tolist()) == expected
