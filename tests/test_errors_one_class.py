"""One class per failure across the packages (issue 7, structure): a decode failure is one
DecodeError and a schema mismatch one SchemaMismatchError, whichever decoder raised it and
whichever module path the catching code imported it from."""

from __future__ import annotations

import pickle

import pytest

from theta_ecs import commandlog, errors, serialization, wire
from theta_ecs.commandlog import errors as commandlog_errors
from theta_ecs.commandlog.entry import decode_entry
from theta_ecs.replication.envelope import unwrap, wrap
from theta_ecs.serialization import ReplicationSchema
from theta_ecs.serialization import errors as serialization_errors
from theta_ecs.serialization.packet import AckPacket, decode_packet, encode_packet
from theta_ecs.stdcomponents import Position, Velocity
from theta_ecs.wire import envelope as wire_envelope


def test_every_old_path_names_the_same_class() -> None:
    for mod in (serialization, serialization_errors, commandlog, commandlog_errors):
        assert mod.DecodeError is errors.DecodeError
    for mod in (serialization, serialization_errors, wire, wire_envelope):
        assert mod.SchemaMismatchError is errors.SchemaMismatchError
    assert issubclass(errors.DecodeError, errors.ThetaError)
    assert issubclass(errors.SchemaMismatchError, errors.ThetaError)
    # The narrower failures are kinds of DecodeError, so one except clause covers them.
    for narrower in (
        serialization.ChunkError,
        serialization.UnknownDictionaryError,
        wire.MalformedEnvelopeError,
    ):
        assert issubclass(narrower, errors.DecodeError)
    assert issubclass(wire.MalformedEnvelopeError, wire.EnvelopeError)


def test_the_commandlog_and_serialization_decoders_raise_the_same_class() -> None:
    with pytest.raises(serialization.DecodeError):  # the serialization path's name ...
        decode_entry(b"\x00" * 7)  # ... catches the command log's failure
    with pytest.raises(commandlog.DecodeError):  # and the other way round
        decode_packet(b"\xb7")
    with pytest.raises(errors.DecodeError):
        wire.decode_envelope(b"not an envelope at all")


def test_a_schema_mismatch_has_one_class_with_expected_and_actual() -> None:
    ours = ReplicationSchema([Position, Velocity])
    theirs = ReplicationSchema([Position])
    env = wrap(encode_packet(AckPacket(5, 0)), theirs)
    assert env is not None
    with pytest.raises(serialization.SchemaMismatchError) as info:  # the envelope's mismatch
        unwrap(env, ours)
    assert (info.value.expected, info.value.actual) == (ours.hash, theirs.hash)
    err = errors.SchemaMismatchError(0xAB, 0xCD, what="packet", bits=32)
    assert "000000ab" in str(err) and "000000cd" in str(err)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.expected, copy.actual, str(copy)) == (
        errors.SchemaMismatchError, 0xAB, 0xCD, str(err)
    )
