"""What the HTTP app holds for its routers and middleware: the services (voxhost/services.py),
and what only a server has: keys and rate limits, live-session admission, readiness and
drain, the migration gateway."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import Request
from starlette.types import ASGIApp

from voxhost.api.admission import SessionGate
from voxhost.errors import NotReady
from voxhost.ops.auth import ApiKey, KeyStore, RateLimiter
from voxhost.ops.metrics import Metrics
from voxhost.ops.settings import Settings
from voxhost.services import Services


class FrontDoor(Protocol):
    """What the app asks of the migration gateway (api/gateway/proxy.py's Gateway), which
    itself reads this state: it depends on this module, not the reverse."""

    def middleware(self, app: ASGIApp) -> ASGIApp: ...

    def takes(self, path: str) -> bool: ...

    async def aclose(self) -> None: ...


@dataclass
class AppState:
    services: Services
    sessions: SessionGate  # live-session admission (api/admission.py)
    keys: KeyStore = field(default_factory=KeyStore)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    ready: threading.Event = field(default_factory=threading.Event)
    draining: threading.Event = field(default_factory=threading.Event)
    # A drain's grace (VOXHOST_DRAIN_GRACE_S): /ready 503 and the balancer's agent 0%,
    # new live sessions refused, but requests still served until the drain proper.
    leaving: threading.Event = field(default_factory=threading.Event)
    load_error: str | None = None
    http_in_flight: int = 0  # requests and WebSockets being served (drain waits for 0)
    gateway: FrontDoor | None = None  # the migration gateway, when an upstream is configured

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def metrics(self) -> Metrics:
        return self.services.metrics

    @property
    def is_ready(self) -> bool:
        return self.ready.is_set() and not self.draining.is_set() and self.load_error is None

    def key_for(self, name: str) -> ApiKey | None:
        return next((k for k in self.keys.keys if k.name == name), None)


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
