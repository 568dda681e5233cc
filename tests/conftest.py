"""Shared fixtures: small components used across the core tests."""

from __future__ import annotations

import numpy as np
import pytest

from theta_ecs import Component, World

Pos = Component("test.Position", np.dtype((np.float32, 3)), fields=("x", "y", "z"))
Vel = Component("test.Velocity", np.dtype((np.float32, 3)), fields=("x", "y", "z"))
Health = Component("test.Health", np.int32)
Tag = Component("test.Tag", np.uint8)
Stats = Component("test.Stats", np.dtype([("hp", "i4"), ("speed", "f4")]))


@pytest.fixture
def world() -> World:
    return World()
