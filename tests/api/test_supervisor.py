"""The worker supervisor's own rules, with stand-in workers (the real server
group is tests/api/test_workers.py)."""

from __future__ import annotations

import socket
import sys

from voxhost.api import supervisor


def _fail_at_start(sock, index: int) -> None:
    sys.exit(3)  # e.g. bad settings: every worker fails alike


def test_a_worker_failing_at_start_stops_the_group_with_its_status(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with socket.socket() as sock:
        group = supervisor.Supervisor(2, _fail_at_start, sock, drain_timeout_s=5)
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
