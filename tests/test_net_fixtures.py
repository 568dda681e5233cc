"""Committed handshake fixtures: a protocol change shows up as a diff of these bytes
(regenerate with ``THETA_WRITE_FIXTURES=1``), and today's decoder still reads them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from theta_ecs.wire import envelope as wire
from theta_net.session.session import HELLO_DOMAIN

FIXTURES = Path(__file__).parent / "fixtures" / "net"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key().public_bytes_raw()
SCHEMA_HASH = 0x1122334455667788
TOKEN = b"theta1.fixture-token"


def hello() -> bytes:
    body = wire.Hello(0xABCDEF, PUBLIC, "editor", TOKEN, ("delta", "zstd", "compact-state"),
                      (7,), ("opus",), (0, 1, 2), 1151, bytes(16))
    signature = KEY.sign(HELLO_DOMAIN + body.signed_bytes(SCHEMA_HASH, wire.PROTOCOL_VERSION))
    body = wire.Hello(**{**body.__dict__, "signature": signature})
    return wire.encode_envelope(wire.Envelope(wire.Header(0, 1000, schema_hash=SCHEMA_HASH), body))


def welcome() -> bytes:
    body = wire.Welcome(1, 0x0102030405060708, "editor", ("delta", "compact-state"), (7,),
                        ("opus",), (0, 1, 2), 1151, 250, 10_000, 0xABCDEF)
    return wire.encode_envelope(wire.Envelope(wire.Header(0, 2000, schema_hash=SCHEMA_HASH), body))


def refusal() -> bytes:
    body = wire.Refusal(2, "schema hash 0x1 here, 0x2 there", "schema hash", "0x1", "0x2")
    return wire.encode_envelope(wire.Envelope(wire.Header(0, 3000, schema_hash=SCHEMA_HASH), body))


MESSAGES = {"hello.bin": hello, "welcome.bin": welcome, "refusal.bin": refusal}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_fixture_bytes_are_stable(name: str) -> None:
    data = MESSAGES[name]()
    path = FIXTURES / name
    if os.environ.get("THETA_WRITE_FIXTURES"):
        path.write_bytes(data)
    assert path.read_bytes() == data, f"{name} changed: a protocol change? (see docs/protocol.md)"
    decoded = wire.decode_envelope(path.read_bytes())
    assert decoded.header.protocol_version == wire.PROTOCOL_VERSION


def test_fixture_hello_signature_verifies() -> None:
    env = wire.decode_envelope((FIXTURES / "hello.bin").read_bytes())
    body = env.body
    assert isinstance(body, wire.Hello)
    KEY.public_key().verify(body.signature, HELLO_DOMAIN + body.signed_bytes(
        env.header.schema_hash, env.header.protocol_version))
