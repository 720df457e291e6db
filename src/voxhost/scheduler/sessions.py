"""Admission for live (WebSocket) sessions: capacity, per-key limits, drain.

The realtime router asks `can_admit_session()` before accepting, then holds
`async with gate.session(key_name):` for the session's life. A refused
session raises SessionRejected; the router closes with its `close_code`
(1013, Try Again Later). Drain waits for `active` to reach zero; sessions
already open see `wait_draining()` return and close themselves cleanly.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from voxhost.errors import SessionRejected


# What a live session hears when the server drains: refused at the door, or closed after its last turn.
DRAINING_MESSAGE = "The server is draining for shutdown; reconnect to another instance."


class SessionGate:
    def __init__(self, *, max_sessions: int, max_per_key: int = 0,
                 on_change: Callable[[int], None] | None = None):
        self.max_sessions = max_sessions
        self.max_per_key = max_per_key  # 0: no per-key cap
        self._drain = asyncio.Event()  # live sessions wait on it to close cleanly
        self._per_key: Counter[str] = Counter()
        self.active = 0
        self._on_change = on_change or (lambda n: None)
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def draining(self) -> bool:
        return self._drain.is_set()

    @draining.setter
    def draining(self, value: bool) -> None:
        if value:
            self._drain.set()
        else:
            self._drain.clear()

    async def wait_draining(self) -> None:
        """Returns once the server starts draining (SIGTERM or target deregistration)."""
        await self._drain.wait()

    def can_admit_session(self, key_name: str | None = None) -> bool:
        return self._refusal(key_name) is None

    def _refusal(self, key_name: str | None) -> str | None:
        if self.draining:
            return DRAINING_MESSAGE
        if self.active >= self.max_sessions:
            return f"All {self.max_sessions} live session slots are busy; retry shortly."
        if key_name and self.max_per_key and self._per_key[key_name] >= self.max_per_key:
            return f"API key '{key_name}' already has {self.max_per_key} live sessions open."
        return None

    @asynccontextmanager
    async def session(self, key_name: str | None = None) -> AsyncIterator[None]:
        reason = self._refusal(key_name)
        if reason:
            raise SessionRejected(reason)
        self.active += 1
        self._per_key[key_name or ""] += 1
        self._idle.clear()
        self._on_change(self.active)
        try:
            yield
        finally:
            self.active -= 1
            self._per_key[key_name or ""] -= 1
            self._on_change(self.active)
            if self.active == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()
