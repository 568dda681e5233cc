"""The per-frame pipeline: outbox and inbox of the command log, run at the Editor stage.

Commands issued during a frame integrate locally at once (the author sees them immediately);
at the Editor stage the outbox signs the frame's entries into one batch, persists it and queues
the packet for the transport. The inbox verifies and integrates queued remote packets within a
time budget (what does not fit waits for the next frame, so a flood never stalls a frame), and
the world is updated from the log at the stage boundary.

Telemetry: ``command_append_rate`` (local entries/s), ``command_inbox_depth``,
``command_outbox_depth``, ``command_verify_us_per_entry``, ``command_frame_ms``, and the
counters of :mod:`.log` (replay, rate, payload, permission, conflicts).
"""

from __future__ import annotations

import time
from collections import deque

from ..schedule import Stage, SystemContext
from ..world import World
from .editor import Editor
from .log import CommandLog


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
        install: bool = True,
    ) -> None:
        self.world = world
        self.log = log
        self.editor = editor if editor is not None else Editor(world, log)
        self.inbox_budget_s = inbox_budget_s
        self._inbox: deque[bytes] = deque()
        self._outbox: deque[bytes] = deque()
        self._last_time: float | None = None
        self._last_appended = 0
        if install:
            world.add_system(
                self._system, stage=Stage.EDITOR, name=self.SYSTEM_NAME, exclusive=True
            )

    # -- transport side -------------------------------------------------------------------
    def deliver(self, packet: bytes) -> None:
        """A packet that arrived from the transport (integrated at the next frame)."""
        self._inbox.append(packet)

    def outgoing(self) -> list[bytes]:
        """Packets to hand to the transport (reliable, ordered delivery is not required)."""
        out = list(self._outbox)
        self._outbox.clear()
        return out

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
            for reply in self.log.receive(self._inbox.popleft()):
                self._outbox.append(reply)
            if time.perf_counter() >= deadline:
                break
        self.editor.apply_changes()
        t1 = time.perf_counter()
        appended = tel.counters.get("commands_appended", 0)
        if self._last_time is not None and t1 > self._last_time:
            rate = (appended - self._last_appended) / (t1 - self._last_time)
            tel.gauge("command_append_rate", rate)
        self._last_time, self._last_appended = t1, appended
        tel.gauge("command_inbox_depth", float(len(self._inbox)))
        tel.gauge("command_outbox_depth", float(len(self._outbox)))
        tel.gauge("command_pending", float(self.log.pending))
        tel.gauge("command_frame_ms", (t1 - t0) * 1e3)
