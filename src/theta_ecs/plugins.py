"""Backend discovery through entry points, in the manner of keyring and fsspec.

Selection order: an explicit name, then the ``THETA_<KIND>`` environment variable, then the
group's default. A backend that cannot load raises BackendUnavailableError naming what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from .errors import BackendUnavailableError


@dataclass(frozen=True)
class Group:
    """One entry-point group: where backends of one kind register."""

    name: str
    env_var: str
    default: str


GROUPS: dict[str, Group] = {
    g.name: g
    for g in (
        Group("theta.transports", "THETA_TRANSPORT", "loopback"),
        Group("theta.renderers", "THETA_RENDERER", "null"),
        Group("theta.input", "THETA_INPUT", "simulated"),
        Group("theta.voice_codecs", "THETA_VOICE_CODEC", "pcm"),
        Group("theta.audio_sinks", "THETA_AUDIO_SINK", "null"),
        Group("theta.audio_sources", "THETA_AUDIO_SOURCE", "null"),
        Group("theta.command_stores", "THETA_COMMAND_STORE", "sqlite"),
    )
}


@dataclass(frozen=True)
class BackendStatus:
    group: str
    name: str
    target: str
    loadable: bool
    reason: str = ""


def _group(group: str) -> Group:
    try:
        return GROUPS[group]
    except KeyError:
        known = ", ".join(sorted(GROUPS))
        raise BackendUnavailableError(f"unknown backend group {group!r} (known: {known})") from None


def entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    """Registered backends of ``group`` by name (installed distributions only)."""
    _group(group)
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"missing dependency {exc.name!r} ({exc})"
    return f"{type(exc).__name__}: {exc}"


def load_factory(group: str, name: str) -> Any:
    """Import the object registered as ``name`` in ``group``."""
    eps = entry_points(group)
    ep = eps.get(name)
    if ep is None:
        known = ", ".join(sorted(eps)) or "none"
        raise BackendUnavailableError(
            f"no backend {name!r} in {group} (registered: {known})"
        )
    try:
        return ep.load()
    except Exception as exc:
        raise BackendUnavailableError(
            f"backend {name!r} in {group} cannot load: {_describe_failure(exc)}"
        ) from exc


def select(group: str, name: str | None = None) -> str:
    """The backend name to use: argument, then environment variable, then default."""
    g = _group(group)
    return name or os.environ.get(g.env_var) or g.default


def create(group: str, name: str | None = None, **kwargs: Any) -> Any:
    """Select, load and instantiate a backend."""
    chosen = select(group, name)
    factory = load_factory(group, chosen)
    try:
        return factory(**kwargs)
    except BackendUnavailableError:
        raise
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {chosen!r} in {group} cannot start: {_describe_failure(exc)}"
        ) from exc


def status(groups: list[str] | None = None) -> list[BackendStatus]:
    """Every registered backend with whether it loads, and why not."""
    out = []
    for group in groups or sorted(GROUPS):
        for name, ep in sorted(entry_points(group).items()):
            try:
                load_factory(group, name)
            except BackendUnavailableError as exc:
                out.append(BackendStatus(group, name, ep.value, False, str(exc)))
            else:
                out.append(BackendStatus(group, name, ep.value, True))
    return out
