"""VOXHOST_WORKERS=2 for real: `voxhost serve` as a process group on one port,
driven by the openai SDK. Cheap: the simulated-gpu engine (real VAD and
features, a sleep for the decode), no TTS engines."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from voxhost_testing import free_port, metric_sum, wait_until

WORKERS = 2
DECODE_MS = 2500  # each request stays in flight this long: the drain has work to wait for


def _workers(pid: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.fixture
def group(tmp_path):
    port = free_port()
    env = {**os.environ, "VOXHOST_WORKERS": str(WORKERS), "VOXHOST_STT_MODELS": "simulated-gpu",
           "VOXHOST_TTS_ENGINES": "", "VOXHOST_STT_SIMULATED_CALL_MS": str(DECODE_MS),
           "VOXHOST_DRAIN_TIMEOUT_S": "60", "VOXHOST_LOG_LEVEL": "warning",
           "VOXHOST_STT_WAIT_BUDGET_S": "0",  # 8 requests of 2.5 s each on 2 workers: all accepted, not 429
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}  # ours, so the test sees it cleaned up after
    proc = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(base + "/ready", timeout=2).status_code == 200, 120, "every worker ready")
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _transcribe(base: str, audio: Path):
    # A client (and connection) per request, as separate players: the kernel
    # spreads new connections over the workers.
    client = OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)
    with audio.open("rb") as f:
        return client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=f)


def test_two_workers_answer_as_one_server_and_drain_on_sigterm(group, short_clip):
    proc, base = group
    workers = _workers(proc.pid)
    assert len(workers) == WORKERS

    # Every answer priced; /metrics (whichever worker serves it) counts the whole group.
    n = 8
    with cf.ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(lambda _: _transcribe(base, short_clip), range(n)))
    assert [r.parse().text for r in replies] == ["simulated transcript"] * n
    costs = [float(r.headers["x-cost-usd"]) for r in replies]
    assert all(c > 0 for c in costs)
    for _ in range(6):  # several scrapes: each may land on either worker
        assert metric_sum(base, "voxhost_requests_total", route="/v1/audio/transcriptions", status="200") == n
        assert metric_sum(base, "voxhost_cost_usd_total") == pytest.approx(sum(costs), rel=1e-4)

    # Drain: accepted work finishes in every worker, new work is refused, all exit 0.
    with cf.ThreadPoolExecutor(n) as pool:
        accepted = [pool.submit(_transcribe, base, short_clip) for _ in range(n)]
        wait_until(lambda: metric_sum(base, "voxhost_http_in_flight") >= n, 30, "all requests in flight (summed over workers)")
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: httpx.get(base + "/ready", timeout=2).status_code == 503, 10, "/ready 503")
        refused = httpx.post(base + "/v1/audio/transcriptions", files={"file": ("a.wav", short_clip.read_bytes())},
                             data={"model": "whisper-1"}, timeout=30)
        assert not all(f.done() for f in accepted), "work finished before the drain; raise DECODE_MS"
        results = [f.result() for f in accepted]
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_ready"
    assert [r.parse().text for r in results] == ["simulated transcript"] * n
    assert proc.wait(timeout=60) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
