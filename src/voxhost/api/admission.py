"""Admission for live (WebSocket) sessions: capacity, per-key limits, drain.

`live_refusal(state, key)` is the one check of whether a new live session may start
here: the realtime router asks it before serving a session, and the migration gateway
asks it to decide whether a session falls back upstream. A session that is admitted
holds `async with gate.session(key_name):` for its life; one that loses a race for
the last slot raises SessionRejected, and the router closes with its `close_code`
(1013, Try Again Later). Drain waits for `active` to reach zero; sessions already open
see `wait_draining()` return and close themselves cleanly.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from voxhost.errors import NotReady, Overloaded, SessionRejected, VoxhostError
from voxhost.scheduler.lanes import Lane
from voxhost.services import Services

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
        self._on_count = on_change or (lambda n: None)  # the session count changed (metrics)
        self._listeners: list[Callable[[int], None]] = []  # that, or the drain started (subscribe)
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
        for listener in self._listeners:
            listener(self.active)

    def subscribe(self, listener: Callable[[int], None]) -> None:
        """Call `listener(active)` when a session opens or closes, and when the drain starts."""
        self._listeners.append(listener)

    def _on_change(self, active: int) -> None:
        self._on_count(active)
        for listener in self._listeners:
            listener(active)

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


class Server(Protocol):
    """What admission reads of the server (api/state.py's AppState, which holds the gate)."""

    draining: threading.Event
    leaving: threading.Event  # a drain's grace: the balancer is told, new sessions go elsewhere
    sessions: SessionGate
    services: Services

    @property
    def is_ready(self) -> bool: ...


@dataclass(frozen=True)
class Refusal:
    """Why a new live session is not taken here: `reason` labels metrics and the gateway's
    fallbacks; `error` is what the session is told before its 1013 close."""

    reason: Literal["draining", "not_ready", "capacity"]
    error: VoxhostError


def live_refusal(state: Server, key_name: str | None = None) -> Refusal | None:
    """None when a new live session may start now: not draining, models ready, a session
    slot free (and, for `key_name`, its per-key cap), and the default model's live lane
    neither full nor expected to keep a final waiting past its limit. The gateway passes no
    key: a per-key cap is the player's own limit, so a session refused for it is refused,
    not sent upstream."""
    if state.draining.is_set() or state.leaving.is_set():
        return Refusal("draining", NotReady(DRAINING_MESSAGE))
    if not state.is_ready:
        return Refusal("not_ready", NotReady("Models are still loading; retry shortly."))
    services = state.services
    engine = services.stt_engines.get(None)
    # The live lane's expected wait too: a session admitted behind more work than its finals
    # may wait (realtime_max_final_wait_seconds) would only see them fail.
    if (not state.sessions.can_admit_session(key_name)
            or not services.stt_scheduler.can_admit(engine, Lane.LIVE)
            or services.stt_scheduler.expected_wait(engine, Lane.LIVE)
            > services.settings.realtime_max_final_wait_seconds):
        return Refusal("capacity", Overloaded(
            f"The server is at capacity ({state.sessions.active} live sessions, limit "
            f"{state.sessions.max_sessions}); retry shortly.", retry_after=1.0))
    return None
