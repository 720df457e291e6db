"""A circuit breaker on the upstream: the cloud API is a server that can die too.

    closed ──(`failures` upstream failures in a row)──► open
    open ──(cooldown)──► half_open: one probe, GET <upstream>/models with the gateway's key
    half_open ──(probe answers)──► closed;  ──(probe fails)──► open, cooldown doubled (up to the max)

While open, nothing a player sends goes upstream: the players the shares route
there are served here while this server has room (X-Voxhost-Route: failover),
and told to retry (503 with Retry-After, or 1013 for a live session) when it
has none. The probe carries nothing of a player's. When it answers, the same
players go back upstream: their slots are sticky, so recovery moves exactly
the players the failure moved, and a live session placed here while the
breaker was open stays here until it ends (sessions are placed once).

A failure is what a player could not use: unreachable, a timeout, a 5xx, a
stream cut mid-way, or refused credentials (the gateway's key: the upstream is
unusable to every player). A 4xx or 429 is the upstream alive and answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("voxhost.gateway")

FAILURE_KINDS = frozenset({"unreachable", "timeout", "status_5xx", "cut", "auth"})


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    def __init__(self, failures: int, cooldown_s: float, max_cooldown_s: float,
                 probe: Callable[[], Awaitable[bool]], metrics=None, clock: Callable[[], float] = time.monotonic):
        self.threshold = failures  # 0: no breaker
        self.base_cooldown_s = cooldown_s
        self.max_cooldown_s = max(max_cooldown_s, cooldown_s)
        self.cooldown_s = cooldown_s
        self._probe = probe
        self._metrics = metrics
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive = 0
        self.opened_at: float | None = None
        self._prober: asyncio.Task | None = None
        self._report()

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    @property
    def allows_upstream(self) -> bool:
        return not self.enabled or self.state is BreakerState.CLOSED

    def retry_after_s(self) -> float:
        """When a refused player may try again: the next probe, at least a second away."""
        if self.opened_at is None:
            return 1.0
        return max(1.0, self.opened_at + self.cooldown_s - self._clock())

    def record(self, kind: str | None) -> None:
        """An upstream outcome: None (or a kind that is not a failure) for an answer, else the failure kind."""
        if not self.enabled:
            return
        if kind not in FAILURE_KINDS:
            self.consecutive = 0
            return
        self.consecutive += 1
        if self.state is BreakerState.CLOSED and self.consecutive >= self.threshold:
            self._open(f"{self.consecutive} failures in a row, last: {kind}")

    def _open(self, why: str) -> None:
        self._set(BreakerState.OPEN)
        self.opened_at = self._clock()
        log.warning("upstream circuit breaker open (%s): its players are served here while there is room; "
                    "probing again in %.0fs", why, self.cooldown_s)
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(self._probe_until_answered(),
                                                                  name="upstream-breaker-probe")

    async def _probe_until_answered(self) -> None:
        while self.state is not BreakerState.CLOSED:
            await asyncio.sleep(max(0.0, (self.opened_at or 0.0) + self.cooldown_s - self._clock()))
            self._set(BreakerState.HALF_OPEN)
            try:
                healthy = await self._probe()
            except Exception:  # a probe's own bug must not leave the breaker half open
                log.exception("upstream probe failed")
                healthy = False
            self._count_probe(healthy)
            if healthy:
                self._set(BreakerState.CLOSED)
                self.consecutive = 0
                self.cooldown_s = self.base_cooldown_s
                self.opened_at = None
                log.warning("upstream circuit breaker closed: the upstream answers; its players go back to it")
                return
            self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
            self._set(BreakerState.OPEN)
            self.opened_at = self._clock()

    async def aclose(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober

    # --- metrics -------------------------------------------------------------
    def _set(self, state: BreakerState) -> None:
        if state is not self.state and self._metrics is not None:
            self._metrics.breaker_transitions.labels(state.value).inc()
        self.state = state
        self._report()

    def _report(self) -> None:
        if self._metrics is not None:
            self._metrics.breaker_state.set(STATE_VALUE[self.state])

    def _count_probe(self, healthy: bool) -> None:
        if self._metrics is not None:
            self._metrics.breaker_probes.labels("answered" if healthy else "failed").inc()
