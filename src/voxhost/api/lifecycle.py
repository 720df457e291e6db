"""Graceful drain on SIGTERM (ECS stops tasks with SIGTERM, then SIGKILL
after stopTimeout).

On the first SIGTERM/SIGINT: `/ready` turns 503 at once (the load balancer
stops routing here), new requests get 503 NotReady and new live sessions
1013, while requests and sessions already accepted finish, for at most
`drain_timeout_s`. Then uvicorn shuts down normally and the process exits 0.
A second SIGINT forces an immediate exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import uvicorn

from voxhost.api.state import AppState

log = logging.getLogger("voxhost.lifecycle")


async def drain(state: AppState, timeout_s: float, poll_s: float = 0.05) -> bool:
    """Refuse new work and wait for accepted work; True if everything finished.
    With `drain_grace_s`, first tell the load balancer (/ready 503, agent 0%) and
    keep serving for that long, so it stops sending here before anything is refused."""
    grace_s = state.settings.drain_grace_s
    if grace_s > 0 and not state.draining.is_set():
        state.leaving.set()
        log.info("leaving: /ready 503 for %.1fs before the drain refuses new work", grace_s)
        await asyncio.sleep(grace_s)
    state.draining.set()
    state.sessions.draining = True
    deadline = time.monotonic() + timeout_s
    log.info("draining: %d requests/sessions in flight", state.http_in_flight)
    while time.monotonic() < deadline:
        if state.http_in_flight <= 0:
            log.info("drained")
            return True
        await asyncio.sleep(poll_s)
    log.warning("drain timeout after %.0fs with %d still in flight", timeout_s, state.http_in_flight)
    return False


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose exit signal starts a drain instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, state: AppState, drain_timeout_s: float):
        super().__init__(config)
        self.state = state
        self.drain_timeout_s = drain_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task | None = None

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame) -> None:
        if self._draining is not None or self._loop is None:
            if sig == signal.SIGINT:
                return super().handle_exit(sig, frame)  # second Ctrl-C: stop now
            return
        # Not recorded in uvicorn's captured signals: it would re-raise it after
        # shutdown and the process would die by SIGTERM instead of exiting 0.
        log.info("signal %s: draining for up to %.0fs", signal.Signals(sig).name, self.drain_timeout_s)
        self._draining = self._loop.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await drain(self.state, self.drain_timeout_s)
        finally:
            self.should_exit = True


def start_target_drain_watch(state: AppState) -> asyncio.Task | None:
    """With VOXHOST_DRAIN_TARGET_GROUP_ARN set: drain when the ALB starts
    deregistering this task, before ECS's SIGTERM (see ops/target_drain.py)."""
    settings = state.settings
    if not settings.drain_target_group_arn:
        return None
    from voxhost.ops.target_drain import TargetDrainWatcher

    watcher = TargetDrainWatcher(
        settings.drain_target_group_arn, settings.port,
        lambda: drain(state, settings.drain_timeout_s), interval_s=settings.drain_poll_interval_s)
    return asyncio.create_task(watcher.run(), name="target-drain-watch")


def start_task_protection(state: AppState) -> asyncio.Task | None:
    """On ECS (ECS_AGENT_URI set): protect this task from scale-in while it holds live sessions
    (ops/task_protection.py); released when they end or the drain starts."""
    from voxhost.ops.task_protection import from_environment

    keeper = from_environment(state.settings.task_protection_minutes, lambda: state.sessions.active,
                              lambda: state.sessions.draining)
    if keeper is None:
        return None
    state.sessions.subscribe(keeper.changed)
    return asyncio.create_task(keeper.run(), name="task-protection")
