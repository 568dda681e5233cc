"""The command log: collaborative editing by ordered, signed, guarded, persistent commands.

Peers exchange intentions (commands), not state. Every entry carries a Lamport clock, its author,
a scope and a payload, signed with Ed25519; every peer orders entries by (clock, author, seq) and
folds each scope's entries under its conflict strategy, so all peers holding the same entries hold
the same world. Admins change roles and compact history (checkpoints) through the log itself.
Sans-I/O: the log yields and accepts packets (bytes).
"""

from .checkpoint import Checkpoint
from .clock import LamportClock
from .components import COMPONENTS, MeshRef, NetId, Selection, ToolState, Transform
from .conflicts import ConflictPolicy, Resolution, Strategy
from .editor import Editor, Mesh, MeshStore, NetIndex, make_net_id, presence_id
from .entry import NO_BASE, Entry, EntryId, Scope, SignedBatch
from .errors import (
    CheckpointError,
    CommandLogError,
    CommandPayloadError,
    DecodeError,
    DurabilityError,
    ForeignStoreError,
    PermissionDeniedError,
    RateLimitedError,
    SignatureError,
    StoreCorruptError,
    StoreError,
    UnknownAuthorError,
)
from .guards import GuardConfig
from .log import Changes, CommandLog, CommandType, Rejection
from .pipeline import CommandPipeline
from .roles import Permissions, Role, Roster
from .signing import Signer, author_id
from .stores import MemoryCommandStore, SqliteCommandStore

__all__ = [
    "COMPONENTS",
    "NO_BASE",
    "Changes",
    "Checkpoint",
    "CheckpointError",
    "CommandLog",
    "CommandLogError",
    "CommandPayloadError",
    "CommandPipeline",
    "CommandType",
    "ConflictPolicy",
    "DecodeError",
    "DurabilityError",
    "Editor",
    "Entry",
    "EntryId",
    "ForeignStoreError",
    "GuardConfig",
    "LamportClock",
    "MemoryCommandStore",
    "Mesh",
    "MeshRef",
    "MeshStore",
    "NetId",
    "NetIndex",
    "PermissionDeniedError",
    "Permissions",
    "RateLimitedError",
    "Rejection",
    "Resolution",
    "Role",
    "Roster",
    "Scope",
    "Selection",
    "SignatureError",
    "SignedBatch",
    "Signer",
    "SqliteCommandStore",
    "StoreCorruptError",
    "StoreError",
    "Strategy",
    "ToolState",
    "Transform",
    "UnknownAuthorError",
    "author_id",
    "make_net_id",
    "presence_id",
]
