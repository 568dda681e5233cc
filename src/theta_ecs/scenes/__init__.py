"""Benchmark scenes: worlds that move like real ones, for replication tests and bandwidth runs.

``CubesScene`` is Glenn Fiedler's 901-cube "Snapshot Compression" scene (60 Hz); ``CrowdScene`` is
10,000 wandering agents (20 Hz) for interest management.
"""

from .components import COMPONENTS
from .crowd import CrowdScene
from .cubes import CubesScene

__all__ = ["COMPONENTS", "CrowdScene", "CubesScene"]
