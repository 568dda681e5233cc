"""Waiting in asyncio tests over real sockets: poll a condition with a deadline, and run a
test's coroutine under an overall limit so a hang fails the test instead of the suite."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(cond: Callable[[], bool], timeout: float = 8.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.02)


def run(coro: Callable[[], Awaitable[None]], timeout: float = 60.0) -> None:
    asyncio.run(asyncio.wait_for(coro(), timeout))
