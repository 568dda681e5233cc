"""A fixed-rate tick on an asyncio loop, for engines without a loop of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def fixed_rate(
    tick: Callable[[], None],
    rate: float,
    *,
    seconds: float | None = None,
    after: Callable[[], None] | None = None,
) -> int:
    """Call ``tick`` ``rate`` times a second (on schedule: a late tick shortens the next wait,
    a tick more than one period late is skipped, not bunched) until cancelled or ``seconds``
    have passed. Returns the ticks run."""
    loop = asyncio.get_running_loop()
    period = 1.0 / rate
    start = loop.time()
    deadline = None if seconds is None else start + seconds
    due = start
    ticks = 0
    while deadline is None or due < deadline:
        tick()
        ticks += 1
        if after is not None:
            after()
        due += period
        now = loop.time()
        if now - due > period:
            due = now  # fell behind: resynchronise rather than run a burst of ticks
        await asyncio.sleep(max(0.0, due - now))
    return ticks
