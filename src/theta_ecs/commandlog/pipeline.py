"""The per-frame pipeline: outbox and inbox of the command log, run at the Editor stage.

Commands issued during a frame integrate locally at once (the author sees them immediately);
at the Editor stage the outbox signs the frame's entries into one batch, persists it and queues
the packet for the transport. The inbox verifies and integrates queued remote packets within a
time budget (what does not fit waits for the next frame, so a flood never stalls a frame), and
the world is updated from the log at the stage boundary.

Anti-entropy: on its first frame, and whenever entries wait for a missing predecessor or were
dropped by the rate limit or the sequence window, the pipeline broadcasts a sync request (at most
once per ``sync_interval_s``); answers come back addressed to the asker through :meth:`replies`.

Telemetry gauges: ``command_append_rate`` (local entries/s), ``command_inbox_depth``,
``command_outbox_depth``, ``command_pending``, ``command_verify_us_per_entry``,
``command_sign_ms``, ``command_frame_ms``; counters of :mod:`.log` (``duplicates_dropped``,
``replay_rejections``, ``covered_drops``, ``checkpoints_applied``, ``rate_limit_drops``,
``payload_guard_drops``, ``permission_rejections``, ``command_conflicts``,
``command_rejections``, ...).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable

from ..schedule import Stage, SystemContext
from ..world import World
from .editor import Editor
from .log import CommandLog

#: Counters whose growth means this peer lacks entries that a sync would bring.
_GAP_COUNTERS = ("rate_limit_drops", "sequence_window_drops", "unknown_author_drops")


class CommandPipeline:
    """Wires a log and an editor into a world's schedule; the transport only sees bytes."""

    SYSTEM_NAME = "theta.commandlog"

    def __init__(
        self,
        world: World,
        log: CommandLog,
        editor: Editor | None = None,
        *,
        inbox_budget_s: float = 0.004,
        max_inbox_bytes_per_source: int = 4 << 20,
        sync_interval_s: float = 1.0,
        install: bool = True,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.world = world
        self.log = log
        self.editor = editor if editor is not None else Editor(world, log)
        self.inbox_budget_s = inbox_budget_s
        if max_inbox_bytes_per_source <= 0:
            raise ValueError("max_inbox_bytes_per_source must be positive")
        self.max_inbox_bytes_per_source = max_inbox_bytes_per_source
        self._queued_bytes: dict[Hashable, int] = {}
        self.sync_interval_s = sync_interval_s
        self._now = now
        self._inbox: deque[tuple[Hashable | None, bytes]] = deque()
        self._outbox: deque[bytes] = deque()
        self._replies: deque[tuple[Hashable | None, bytes]] = deque()
        self._last_time: float | None = None
        self._last_appended = 0
        self._last_sync = float("-inf")
        self._gaps_seen = 0
        self._synced_once = False
        if install:
            world.add_system(
                self._system, stage=Stage.EDITOR, name=self.SYSTEM_NAME, exclusive=True
            )

    # -- transport side -------------------------------------------------------------------
    def deliver(self, packet: bytes, source: Hashable | None = None) -> bool:
        """A packet that arrived from the transport (integrated at the next frame); ``source``
        names the peer it came from, so an answer can go back to it alone.

        A named source may have at most ``max_inbox_bytes_per_source`` waiting: a peer that
        sends faster than the log integrates cannot grow the inbox without bound (or delay
        everyone else's packets behind its own). Past it the packet is dropped and counted
        (``inbox_overflow_drops``); False says so. Its sender's entries come back by sync.
        """
        if source is not None:
            queued = self._queued_bytes.get(source, 0) + len(packet)
            if queued > self.max_inbox_bytes_per_source:
                self.world.telemetry.count("inbox_overflow_drops")
                return False
            self._queued_bytes[source] = queued
        self._inbox.append((source, packet))
        return True

    def outgoing(self) -> list[bytes]:
        """Packets for every peer (ordered, reliable delivery is not required)."""
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def replies(self) -> list[tuple[Hashable | None, bytes]]:
        """Packets for one peer each: (source given to :meth:`deliver`, packet)."""
        out = list(self._replies)
        self._replies.clear()
        return out

    def request_sync(self) -> None:
        """Ask every peer for the entries this log lacks (e.g. after a restart)."""
        self._outbox.append(self.log.sync_request())
        self._last_sync = self._now()
        self._synced_once = True

    def checkpoint(self) -> None:
        """Sign a checkpoint of the log (admins only), compact to it and queue it for every
        peer (see :meth:`CommandLog.checkpoint`)."""
        self._outbox.extend(self.log.checkpoint())

    @property
    def inbox_depth(self) -> int:
        return len(self._inbox)

    # -- frame side -----------------------------------------------------------------------
    def _system(self, ctx: SystemContext) -> None:
        ctx.commands.run(lambda _world: self.run_frame())

    def run_frame(self) -> None:
        """Outbox, inbox within budget, then projection into the world (the Editor stage)."""
        tel = self.world.telemetry
        t0 = time.perf_counter()
        self._outbox.extend(self.log.flush())
        deadline = t0 + self.inbox_budget_s
        while self._inbox:
            source, packet = self._inbox.popleft()
            if source is not None:
                left = self._queued_bytes.pop(source, 0) - len(packet)
                if left > 0:
                    self._queued_bytes[source] = left
            for reply in self.log.receive(packet, source):
                self._replies.append((source, reply))
            if time.perf_counter() >= deadline:
                break
        self.editor.apply_changes()
        self._maybe_sync()
        t1 = time.perf_counter()
        appended = tel.counters.get("commands_appended", 0)
        if self._last_time is not None and t1 > self._last_time:
            rate = (appended - self._last_appended) / (t1 - self._last_time)
            tel.gauge("command_append_rate", rate)
        self._last_time, self._last_appended = t1, appended
        tel.gauge("command_inbox_depth", float(len(self._inbox)))
        tel.gauge("command_outbox_depth", float(len(self._outbox) + len(self._replies)))
        tel.gauge("command_pending", float(self.log.pending))
        tel.gauge("command_frame_ms", (t1 - t0) * 1e3)

    def _maybe_sync(self) -> None:
        counters = self.world.telemetry.counters
        gaps = sum(counters.get(name, 0) for name in _GAP_COUNTERS)
        lacking = gaps > self._gaps_seen or self.log.pending > 0 or not self._synced_once
        if lacking and self._now() - self._last_sync >= self.sync_interval_s:
            self._gaps_seen = gaps
            self.request_sync()
