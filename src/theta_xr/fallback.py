"""Choosing an input provider the way StereoKit does: OpenXR when a runtime answers, else the
desktop window when a display exists, else the simulated HMD, with the reasons kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from theta_ecs import plugins
from theta_ecs.errors import BackendUnavailableError


@dataclass
class InputChoice:
    name: str
    provider: Any
    skipped: dict[str, str] = field(default_factory=dict)  # backend name → why not


def open_input(order: tuple[str, ...] = ("openxr", "desktop", "simulated"),
               **kwargs: Any) -> InputChoice:
    """The first provider of ``order`` that loads and starts; never a traceback for a missing
    runtime or display, only the reasons in ``skipped``."""
    skipped: dict[str, str] = {}
    for name in order:
        try:
            return InputChoice(name, plugins.create("theta.input", name, **kwargs), skipped)
        except BackendUnavailableError as exc:
            skipped[name] = str(exc)
    raise BackendUnavailableError(
        "no input provider could start: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
