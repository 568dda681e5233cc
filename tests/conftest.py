"""Shared fixtures: small components used across the core tests."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

from theta_ecs import Component, World

# CI runs a fixed set of examples so a red build always reproduces; locally they vary.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

Pos = Component("test.Position", np.dtype((np.float32, 3)), fields=("x", "y", "z"))
Vel = Component("test.Velocity", np.dtype((np.float32, 3)), fields=("x", "y", "z"))
Health = Component("test.Health", np.int32)
Tag = Component("test.Tag", np.uint8)
Stats = Component("test.Stats", np.dtype([("hp", "i4"), ("speed", "f4")]))


@pytest.fixture
def world() -> World:
    return World()
