"""The scenes ``theta serve`` hosts and ``theta connect`` expects: each gives a world with its
simulation, and the replication schema both sides must share (its hash is checked at handshake)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from theta_ecs.replication import InterestManager
from theta_ecs.serialization.schema import Prediction, ReplicationSchema
from theta_ecs.world import World

SCENES = ("cubes", "crowd")


@dataclass
class HostedScene:
    name: str
    world: World
    step: Callable[[float], None]
    schema: ReplicationSchema
    rate: float
    interest: InterestManager | None = None


def schema_for(name: str) -> ReplicationSchema:
    """The replication schema of scene ``name`` (what a client needs to connect)."""
    if name == "cubes":
        from theta_ecs.scenes.components import CubeLinearVelocity, CubePosition
        from theta_ecs.scenes.cubes import CubesScene

        return ReplicationSchema(
            CubesScene.components,
            prediction=Prediction(CubePosition, CubeLinearVelocity, 1.0 / CubesScene.rate_hz),
        )
    if name == "crowd":
        from theta_ecs.scenes.components import CrowdPosition, CrowdVelocity
        from theta_ecs.scenes.crowd import CrowdScene

        return ReplicationSchema(
            CrowdScene.components,
            prediction=Prediction(CrowdPosition, CrowdVelocity, 1.0 / CrowdScene.rate_hz),
        )
    raise ValueError(f"unknown scene {name!r} (known: {', '.join(SCENES)})")


def host(name: str, n: int | None = None, seed: int = 0) -> HostedScene:
    """A fresh scene ``name`` with ``n`` entities (the scene's default when None)."""
    schema = schema_for(name)
    if name == "cubes":
        from theta_ecs.scenes.cubes import CubesScene

        cubes = CubesScene(901 if n is None else n, seed=seed)
        return HostedScene(name, cubes.world, cubes.step, schema, CubesScene.rate_hz)
    from theta_ecs.scenes.components import CrowdPosition
    from theta_ecs.scenes.crowd import CrowdScene

    crowd = CrowdScene(10_000 if n is None else n, seed=seed)
    interest = InterestManager(schema, CrowdPosition, cell_size=50.0)
    return HostedScene(name, crowd.world, crowd.step, schema, CrowdScene.rate_hz, interest)
