"""Process-wide state the routers share: settings, engines, executors, readiness."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request

from voxhost.engines.stt.registry import SttRegistry
from voxhost.engines.tts.registry import TtsRegistry
from voxhost.errors import NotReady
from voxhost.ops.auth import ApiKey, KeyStore, RateLimiter
from voxhost.ops.cost import ComputeCost
from voxhost.ops.metrics import Metrics
from voxhost.ops.settings import Settings
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.lanes import Lane
from voxhost.scheduler.sessions import SessionGate
from voxhost.scheduler.stt import SttScheduler
from voxhost.scheduler.tts import TtsScheduler
from voxhost.stt.service import SttService
from voxhost.tts.service import SpeechService


@dataclass
class AppState:
    settings: Settings
    stt: SttRegistry
    stt_scheduler: SttScheduler
    tts: TtsRegistry
    tts_scheduler: TtsScheduler
    speech: SpeechService
    metrics: Metrics = field(default_factory=Metrics)
    keys: KeyStore = field(default_factory=KeyStore)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    sessions: SessionGate | None = None  # live-session admission (realtime router)
    cost: ComputeCost = field(default_factory=ComputeCost)
    ready: threading.Event = field(default_factory=threading.Event)
    draining: threading.Event = field(default_factory=threading.Event)
    load_error: str | None = None
    http_in_flight: int = 0  # requests and WebSockets being served (drain waits for 0)
    gateway: object | None = None  # voxhost.gateway.proxy.Gateway when an upstream is configured

    @property
    def is_ready(self) -> bool:
        return self.ready.is_set() and not self.draining.is_set() and self.load_error is None

    def can_admit_session(self, key_name: str | None = None, engine=None) -> bool:
        """May a new live session start now? False: close it with 1013.
        (Slots and per-key cap free, not draining, the engine's live lane not full.)"""
        if self.draining.is_set() or self.sessions is None or not self.sessions.can_admit_session(key_name):
            return False
        return engine is None or self.stt_scheduler.can_admit(engine, Lane.LIVE)

    @property
    def transcription(self) -> SttService:
        """Speech-to-text for the routers (built on use: tests swap `stt` in)."""
        return SttService(self.stt, self.stt_scheduler, self.settings)

    def key_for(self, name: str) -> ApiKey | None:
        return next((k for k in self.keys.keys if k.name == name), None)

    def make_executor(self, name: str, *, workers: int, max_batch: int = 1, max_wait_s: float = 0.0,
                      deadline_s: float | None = None, max_queue: int | None = None) -> EngineExecutor:
        """An engine scheduler wired to this app's metrics, cost model and limits
        (TTS engines use this with workers=settings.tts_concurrency)."""
        s = self.settings
        return EngineExecutor(
            name, workers=workers,
            max_queue=s.queue_max_per_lane if max_queue is None else max_queue, max_batch=max_batch, max_wait_s=max_wait_s,
            deadline_s=deadline_s if deadline_s is not None else s.request_deadline_s,
            cost=self.cost, observer=self.metrics.observer(),
        )


def get_state(request: Request) -> AppState:
    return request.app.state.voxhost


def require_ready(request: Request) -> AppState:
    state = get_state(request)
    if not state.ready.is_set():
        raise NotReady("Models are still loading; retry shortly.")
    # Draining is not checked here: the Gatekeeper middleware refuses new
    # requests once draining starts, and a request it let in before that is
    # accepted work that must complete.
    return state
