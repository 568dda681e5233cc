"""Shared fixtures for the theta_net tests: a schema, tokens, credentials, session pairs."""

from __future__ import annotations

import os
from dataclasses import replace

from theta_ecs.scenes.cubes import CubesScene
from theta_ecs.serialization.schema import ReplicationSchema
from theta_net.session import (
    Admission,
    ClientCredentials,
    Session,
    SessionConfig,
    TokenAuthority,
)

SCHEMA = ReplicationSchema(CubesScene.components)
WALL = 1_800_000_000.0
AUTHORITY = TokenAuthority.from_seed(bytes(range(32)))


def config(**changes: object) -> SessionConfig:
    return replace(SessionConfig(SCHEMA, manifest_hash=0xABCDEF), **changes)  # type: ignore[arg-type]


def credentials(role: str = "editor", *, claim: str = "", ttl: float = 600.0,
                seed: bytes | None = None, authority: TokenAuthority = AUTHORITY,
                fingerprint: bytes = b"") -> ClientCredentials:
    token = authority.issue(role, now=WALL, ttl=ttl, fingerprint=fingerprint)
    return ClientCredentials.from_seed(seed or os.urandom(32), token, claim)


def admission(**kwargs: object) -> Admission:
    return Admission(AUTHORITY, wall_clock=lambda: WALL + 1.0, **kwargs)  # type: ignore[arg-type]


def pair(
    client_config: SessionConfig | None = None,
    server_config: SessionConfig | None = None,
    creds: ClientCredentials | None = None,
    adm: Admission | None = None,
) -> tuple[Session, Session]:
    client = Session.client(client_config or config(), creds or credentials())
    server = Session.server(server_config or config(), adm or admission())
    return client, server
