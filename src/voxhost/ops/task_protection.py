"""ECS task scale-in protection while this task holds live sessions.

A live session holds its task for minutes; a scale-in (or a deployment) that
stops the task cuts the player off mid-sentence. ECS lets a task protect itself
through its container agent: PUT $ECS_AGENT_URI/task-protection/v1/state with
{"ProtectionEnabled": true, "ExpiresInMinutes": N}. This keeper protects the task
while any live session is open, refreshes the expiry while they last (so a wedged
process loses its protection within N minutes instead of holding the task for
ever), and releases it when the last session ends or the server starts draining
(a drain must never wait on its own protection).

The agent endpoint needs no credentials beyond the task role's
ecs:UpdateTaskProtection, which the stack grants. Errors are logged once per
outage and retried; protection is best effort and never takes the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable

import httpx

log = logging.getLogger("voxhost.task_protection")

AGENT_ENV = "ECS_AGENT_URI"
PATH = "/task-protection/v1/state"
RETRY_S = 5.0  # after a failed call, try again this soon


class TaskProtection:
    def __init__(self, agent_uri: str, *, expires_minutes: int, sessions: Callable[[], int],
                 draining: Callable[[], bool], clock=time.monotonic, timeout_s: float = 2.0):
        if not 1 <= expires_minutes <= 2880:
            raise ValueError("ECS protects a task for 1 to 2,880 minutes")
        self.url = agent_uri.rstrip("/") + PATH
        self.expires_minutes = expires_minutes
        # Refresh at a third of the expiry: two refreshes may fail before protection lapses.
        self.refresh_s = expires_minutes * 60.0 / 3.0
        self.sessions = sessions
        self.draining = draining
        self.clock = clock
        self.timeout_s = timeout_s
        self.protected = False
        self.renewed_at = -float("inf")
        self.calls = 0  # successful PUTs (tests, logs)
        self.failures = 0  # consecutive failed PUTs
        self._changed = asyncio.Event()

    def changed(self, *_: object) -> None:
        """Sessions opened or closed, or the drain started: reconsider now."""
        self._changed.set()

    @property
    def wanted(self) -> bool:
        return self.sessions() > 0 and not self.draining()

    async def _put(self, client: httpx.AsyncClient, enabled: bool) -> bool:
        body: dict = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = self.expires_minutes
        try:
            response = await client.put(self.url, json=body, timeout=self.timeout_s)
            answer = response.json() if response.content else {}
            if response.status_code != 200 or answer.get("failure") or answer.get("error"):
                raise RuntimeError(f"HTTP {response.status_code}: {answer.get('failure') or answer.get('error')}")
        except Exception as exc:  # agent restarting, throttled, permission missing
            level = logging.DEBUG if self.failures else logging.WARNING
            self.failures += 1
            log.log(level, "task protection %s failed (%s); retrying in %.0fs",
                    "on" if enabled else "off", exc, RETRY_S)
            return False
        if self.failures:
            log.info("task protection call succeeded after %d failures", self.failures)
        self.failures = 0
        self.calls += 1
        if enabled != self.protected:
            log.info("task scale-in protection %s", f"on ({self.expires_minutes} min, refreshed)" if enabled
                     else "off")
        self.protected = enabled
        if enabled:
            self.renewed_at = self.clock()
        return True

    async def step(self, client: httpx.AsyncClient) -> float:
        """Bring the agent's state in line with the sessions; seconds until the next look."""
        if self.wanted:
            due = self.renewed_at + self.refresh_s - self.clock()
            if not self.protected or due <= 0:
                if not await self._put(client, True):
                    return RETRY_S
                due = self.refresh_s
            return due
        if self.protected and not await self._put(client, False):
            return RETRY_S
        return self.refresh_s

    async def run(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                wait = await self.step(client)
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=wait)


def from_environment(expires_minutes: int, sessions: Callable[[], int], draining: Callable[[], bool],
                     environ=os.environ) -> TaskProtection | None:
    """A keeper when the ECS agent's endpoint is there (the agent injects ECS_AGENT_URI) and
    protection is on; None otherwise (a dev box, another orchestrator, expires_minutes=0)."""
    uri = environ.get(AGENT_ENV)
    if not uri or expires_minutes <= 0:
        return None
    return TaskProtection(uri, expires_minutes=expires_minutes, sessions=sessions, draining=draining)
