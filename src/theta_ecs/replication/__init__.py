"""Replication: per-peer replicators with acked baselines and budgets, interest management,
and the receiving side that applies state to a local World."""

from .interest import AreaOfInterest, InterestManager, SpatialGrid
from .receiver import Receiver, ReceiverStats
from .replicator import Replicator, ReplicatorConfig, ReplicatorStats

__all__ = [
    "AreaOfInterest",
    "InterestManager",
    "Receiver",
    "ReceiverStats",
    "Replicator",
    "ReplicatorConfig",
    "ReplicatorStats",
    "SpatialGrid",
]
