"""SIGTERM drain for real: `voxhost serve` as a subprocess under load."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import websockets.sync.client as ws_client
from fastapi import WebSocket
from websockets.exceptions import ConnectionClosed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _in_flight(base: str) -> float:
    for line in httpx.get(base + "/metrics", timeout=5).text.splitlines():
        if line.startswith("voxhost_http_in_flight "):
            return float(line.split()[1])
    return 0.0


def test_sigterm_drains_accepted_work_refuses_new_and_exits_zero(english):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VOXHOST_DRAIN_TIMEOUT_S": "120", "VOXHOST_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(port), "--stt-model", "whisper-tiny.en"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        _wait(lambda: httpx.get(base + "/ready", timeout=2).status_code == 200, 180, "ready")
        clips = [r.audio.read_bytes() for r in english if 4 < r.duration <= 10][:4]

        def post(audio: bytes) -> httpx.Response:
            return httpx.post(base + "/v1/audio/transcriptions", files={"file": ("a.wav", audio)},
                              data={"model": "whisper-tiny.en"}, timeout=180)

        with cf.ThreadPoolExecutor(len(clips)) as pool:
            accepted = [pool.submit(post, audio) for audio in clips]
            _wait(lambda: _in_flight(base) >= len(clips), 60, "all requests accepted")
            proc.send_signal(signal.SIGTERM)
            _wait(lambda: httpx.get(base + "/ready", timeout=2).status_code == 503, 10, "/ready 503")
            refused = post(clips[0])
            assert not all(f.done() for f in accepted), "load finished before the checks; use longer clips"
            results = [f.result() for f in accepted]
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "not_ready"
        assert [r.status_code for r in results] == [200] * len(clips)
        assert all(r.json()["text"] for r in results)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_new_websocket_during_drain_is_closed_with_1013(sibling):
    def add_echo(app):
        @app.websocket("/test/echo")
        async def echo(websocket: WebSocket):
            await websocket.accept()
            await websocket.send_text(await websocket.receive_text())

    live = sibling(setup=add_echo)
    live.app.state.voxhost.draining.set()
    with ws_client.connect(live.base_url.replace("http://", "ws://") + "/test/echo") as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd.code == 1013
    assert httpx.get(live.base_url + "/ready").status_code == 503
    assert httpx.get(live.base_url + "/health").status_code == 200
