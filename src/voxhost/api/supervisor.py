"""Several server processes on one port (`VOXHOST_WORKERS` > 1).

The parent binds the listening socket once and starts N workers (spawned, not
forked: each imports and loads its own engines, so no CUDA context or thread
pool is shared by accident). The kernel spreads connections over the workers
accepting on that socket. The parent holds no models and serves nothing:

- SIGTERM/SIGINT: forwarded to every worker as SIGTERM, so each one drains its
  own accepted work (`/ready` 503, new work refused, in-flight finished; see
  lifecycle.py); the parent exits 0 when all did.
- Metrics: workers write prometheus_client's multiprocess files in one
  directory (PROMETHEUS_MULTIPROC_DIR) and `/metrics` in any worker reads all of
  them (ops/metrics.py). A worker's live gauges are dropped when it exits.
- A worker that dies while serving is replaced; one that dies before it has
  served `STARTUP_GRACE_S` (bad settings, a model that will not load) stops
  the whole group, since its replacement would fail the same way.

Why not uvicorn's own `--workers`: its supervisor runs plain uvicorn.Server in
each child, without the drain that ECS stop and the ALB rely on.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess

from voxhost.ops.metrics import MULTIPROC_ENV

log = logging.getLogger("voxhost.supervisor")

STARTUP_GRACE_S = 60.0  # a worker dead sooner than this did not start: stop, don't respawn
KILL_GRACE_S = 10.0  # after the drain timeout, before SIGKILL


class Supervisor:
    def __init__(self, workers: int, target, sock, drain_timeout_s: float):
        self.count = workers
        self.target = target  # module-level callable(sock, index): one worker's server
        self.sock = sock
        self.drain_timeout_s = drain_timeout_s
        self.context = multiprocessing.get_context("spawn")
        self.procs: dict[int, tuple[BaseProcess, float]] = {}  # index -> (process, started)
        self.stopping = False
        self.exit_code = 0
        self._owned_dir: str | None = None

    def _start(self, index: int) -> None:
        proc = self.context.Process(target=self.target, args=(self.sock, index), name=f"voxhost-worker-{index}")
        proc.start()
        self.procs[index] = (proc, time.monotonic())
        log.info("worker %d started (pid %d)", index, proc.pid)

    def _stop_all(self, *_args) -> None:
        if self.stopping:
            return
        self.stopping = True
        for proc, _ in self.procs.values():
            if proc.exitcode is None and proc.pid is not None:
                # exited since: reaped by the loop
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)  # each worker drains (lifecycle.DrainingServer)

    def _reap(self, index: int, proc: BaseProcess, started: float) -> None:
        _mark_dead(proc.pid)
        if self.stopping:
            return
        if time.monotonic() - started < STARTUP_GRACE_S:
            log.error("worker %d exited with %s while starting: stopping all workers", index, proc.exitcode)
            self.exit_code = _failure(proc.exitcode)
            self._stop_all()
            return
        log.error("worker %d exited with %s while serving: starting a replacement", index, proc.exitcode)
        self._start(index)

    def run(self) -> int:
        if not os.environ.get(MULTIPROC_ENV):
            # Before any worker imports prometheus_client: it picks its value store at import.
            self._owned_dir = tempfile.mkdtemp(prefix="voxhost-metrics-")
            os.environ[MULTIPROC_ENV] = self._owned_dir
        signal.signal(signal.SIGTERM, self._stop_all)
        signal.signal(signal.SIGINT, self._stop_all)
        try:
            for index in range(self.count):
                self._start(index)
            deadline = None
            while self.procs:
                for index, (proc, started) in list(self.procs.items()):
                    proc.join(timeout=0.2 / len(self.procs))
                    if proc.exitcode is not None:
                        del self.procs[index]
                        if proc.exitcode != 0 and self.stopping:
                            self.exit_code = self.exit_code or _failure(proc.exitcode)
                        self._reap(index, proc, started)
                if self.stopping and deadline is None:
                    deadline = time.monotonic() + self.drain_timeout_s + KILL_GRACE_S
                if deadline is not None and time.monotonic() > deadline:
                    for proc, _ in self.procs.values():
                        log.warning("worker pid %d still running after the drain: killing it", proc.pid)
                        proc.kill()
                    self.exit_code = self.exit_code or 1
                    deadline = float("inf")
        finally:
            if self._owned_dir:
                shutil.rmtree(self._owned_dir, ignore_errors=True)
        return self.exit_code


def exit_with_parent() -> None:
    """In a worker: get SIGTERM (and so drain) if the supervisor dies, even by SIGKILL,
    instead of living on as an orphan that holds the port and its models."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the supervisor died before the call: nothing would signal us
        os.kill(os.getpid(), signal.SIGTERM)


def _failure(exitcode: int | None) -> int:
    """A worker's failure as the group's exit status (killed by a signal: 1)."""
    return exitcode if exitcode and exitcode > 0 else 1


def _mark_dead(pid: int | None) -> None:
    """Drop a dead worker's live gauges (in-flight, queue depth) from /metrics; its counters stay."""
    path = os.environ.get(MULTIPROC_ENV)
    if pid is None or not path:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)
    # died before it was ready
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(path, f"{_READY_PREFIX}{pid}"))


# ---- group readiness: /ready turns 200 once every worker has loaded ----------
# Until then a request could land on a worker still loading its models and get
# 503, so no worker reports ready before all have been. Afterwards each worker
# answers for itself (a replacement worker loading does not pull the whole task
# out of the load balancer). Markers live beside the metric files: no content.

_READY_PREFIX = "ready-"
_group_started = False


def mark_worker_ready() -> None:
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        open(os.path.join(path, f"{_READY_PREFIX}{os.getpid()}"), "w").close()


def all_workers_started(workers: int) -> bool:
    global _group_started
    if workers <= 1 or _group_started:
        return True
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return True
    _group_started = sum(name.startswith(_READY_PREFIX) for name in os.listdir(path)) >= workers
    return _group_started
