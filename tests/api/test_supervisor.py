"""The worker supervisor's own rules, with stand-in workers (the real server
group is tests/api/test_workers.py)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from supervisor_standins import fail_at_start

from voxhost.api import supervisor


def test_a_worker_failing_at_start_stops_the_group_with_its_status(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with socket.socket() as sock:
        group = supervisor.Supervisor(2, fail_at_start, sock, drain_timeout_s=5)
        assert group.run() == 3  # not respawned forever: the replacement would fail the same way


def test_ready_only_once_every_worker_has_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(supervisor, "_group_started", False)
    supervisor.mark_worker_ready()
    assert not supervisor.all_workers_started(2)
    (tmp_path / "ready-1").touch()  # a second worker
    assert supervisor.all_workers_started(2)
    (tmp_path / "ready-1").unlink()  # it died: the rest keep answering for themselves
    assert supervisor.all_workers_started(2)
    assert supervisor.all_workers_started(1)


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path):
    """SIGKILL (OOM killer, a test's kill()) gives the supervisor no chance to forward
    anything: its workers must still go, or they hold the port and their models."""
    import os
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "worker.pid"
    script = ("import socket, sys; sys.path[:0] = sys.argv[1:]; import supervisor_standins as t; "
              "from voxhost.api.supervisor import Supervisor; "
              "Supervisor(1, t.orphan_candidate, socket.socket(), 5).run()")
    env = {**os.environ, "WORKER_PID_FILE": str(pid_file), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    root = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen([sys.executable, "-c", script, root + "/tests", root + "/src"], env=env)
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and parent.poll() is None, "worker never started"
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{worker}").exists() and b"Z" not in Path(f"/proc/{worker}/stat").read_bytes().split()[2:3]:
            assert time.monotonic() < deadline, "the worker outlived its supervisor"
            time.sleep(0.1)
    finally:
        if Path(f"/proc/{worker}").exists():
            os.kill(worker, signal.SIGKILL)  # a failed run leaves no orphan behind
