"""Process-wide state the routers share: settings, engines, executors, readiness."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request

from voxhost.engines.stt.registry import SttRegistry
from voxhost.errors import NotReady
from voxhost.ops.settings import Settings
from voxhost.realtime.capacity import SessionSlots
from voxhost.scheduler.stt import SttScheduler


@dataclass
class AppState:
    settings: Settings
    stt: SttRegistry
    stt_scheduler: SttScheduler
    ready: threading.Event = field(default_factory=threading.Event)
    draining: threading.Event = field(default_factory=threading.Event)
    load_error: str | None = None
    realtime: SessionSlots = field(default_factory=lambda: SessionSlots(8))  # live sessions admitted

    @property
    def is_ready(self) -> bool:
        return self.ready.is_set() and not self.draining.is_set() and self.load_error is None


def get_state(request: Request) -> AppState:
    return request.app.state.voxhost


def require_ready(request: Request) -> AppState:
    state = get_state(request)
    if not state.ready.is_set():
        raise NotReady("Models are still loading; retry shortly.")
    if state.draining.is_set():
        raise NotReady("The server is draining for shutdown.")
    return state
