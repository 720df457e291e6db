"""SIGTERM drain for real: `voxhost serve` as a subprocess under load."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys

import httpx
import pytest
import websockets.sync.client as ws_client
from fastapi import WebSocket
from websockets.exceptions import ConnectionClosed

from voxhost_testing import free_port, metric_sum, wait_until


def test_sigterm_drains_accepted_work_refuses_new_and_exits_zero(english):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VOXHOST_DRAIN_TIMEOUT_S": "120", "VOXHOST_LOG_LEVEL": "warning",
           "VOXHOST_TTS_ENGINES": "hibari",  # STT only here: loading Kokoro and piper just slows the start
           "VOXHOST_STT_WAIT_BUDGET_S": "0"}  # every request of the burst accepted: the drain is under test
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(port), "--stt-model", "whisper-tiny.en"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: httpx.get(base + "/ready", timeout=2).status_code == 200, 180, "ready")
        clips = [r.audio.read_bytes() for r in english if 4 < r.duration <= 10][:4]

        def post(audio: bytes) -> httpx.Response:
            return httpx.post(base + "/v1/audio/transcriptions", files={"file": ("a.wav", audio)},
                              data={"model": "whisper-tiny.en"}, timeout=180)

        with cf.ThreadPoolExecutor(len(clips)) as pool:
            accepted = [pool.submit(post, audio) for audio in clips]
            wait_until(lambda: metric_sum(base, "voxhost_http_in_flight") >= len(clips), 60, "all requests accepted")
            proc.send_signal(signal.SIGTERM)
            wait_until(lambda: httpx.get(base + "/ready", timeout=2).status_code == 503, 10, "/ready 503")
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
    with ws_client.connect(live.base_url.replace("http://", "ws://") + "/test/echo") as ws, \
            pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=10)
    assert info.value.rcvd.code == 1013
    ready = httpx.get(live.base_url + "/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    assert int(ready.headers["retry-after"]) >= 1  # as every other 503
    assert httpx.get(live.base_url + "/health").status_code == 200


class FakeAws:
    """The two AWS endpoints the target-drain watcher reads, on a real socket:
    ECS task metadata v4 (GET: this container's network) and ELBv2's query API
    (POST DescribeTargetHealth: the target's state, which the test sets)."""

    IP = "10.0.3.7"

    def __init__(self):
        import http.server
        import threading

        fake = self
        self.state = "healthy"
        self.polls: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, body: str, content_type: str):
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # ${ECS_CONTAINER_METADATA_URI_V4}: the container's own metadata
                self._reply(json.dumps({"Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": [fake.IP]}]}),
                            "application/json")

            def do_POST(self):
                fake.polls.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
                self._reply(
                    '<DescribeTargetHealthResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
                    "<DescribeTargetHealthResult><TargetHealthDescriptions><member>"
                    f"<Target><Id>{fake.IP}</Id><Port>8000</Port></Target>"
                    f"<TargetHealth><State>{fake.state}</State></TargetHealth>"
                    "</member></TargetHealthDescriptions></DescribeTargetHealthResult>"
                    "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeTargetHealthResponse>",
                    "text/xml")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_aws(monkeypatch):
    pytest.importorskip("boto3")
    fake = FakeAws()
    monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", fake.url + "/v4/container-id")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", fake.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    yield fake
    fake.close()


def test_ecs_stop_sequence_live_session_closes_cleanly_before_sigterm(fake_aws, eval_audio):
    """ECS's stop as it runs, against `voxhost serve`: the ALB starts deregistering
    the target (the fake ELB says `draining`); the server notices through the target
    group, and a player mid-turn gets that turn's transcript, then the drain's error
    event and close frame, while the ALB would still hold the socket. SIGTERM,
    which comes after the deregistration delay, then finds it drained: exit 0 at once."""
    from voxhost.loadtest.realtime_client import load_pcm, session_update
    from voxhost.stt.wer import wer

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VOXHOST_LOG_LEVEL": "warning", "VOXHOST_DRAIN_TIMEOUT_S": "60",
           "VOXHOST_TTS_ENGINES": "hibari",  # STT only here: loading Kokoro and piper just slows the start
           "VOXHOST_DRAIN_TARGET_GROUP_ARN":
               "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/voxhost/0123456789abcdef",
           "VOXHOST_DRAIN_POLL_INTERVAL_S": "0.2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(port), "--stt-model", "whisper-tiny.en"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: httpx.get(base + "/ready", timeout=2).status_code == 200, 180, "ready")
        pcm = load_pcm(eval_audio / "lj_LJ001-0002.wav", 24_000, lead_silence=0.2, tail_silence=0.3)
        events = []
        with ws_client.connect(f"ws://127.0.0.1:{port}/v1/realtime?intent=transcription") as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
            ws.send(json.dumps(session_update(turn_detection=None)))
            assert json.loads(ws.recv(timeout=10))["type"] == "session.updated"
            # A turn in progress: audio appended, not committed (push-to-talk held).
            ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}))
            wait_until(lambda: len(fake_aws.polls) >= 2, 30, "the server polling its target group")
            fake_aws.state = "draining"
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    events.append(json.loads(ws.recv(timeout=120)))
        types = [e["type"] for e in events]
        assert types == ["input_audio_buffer.committed", "conversation.item.input_audio_transcription.completed",
                         "error"], types
        assert wer(["in being comparatively modern."], [events[1]["transcript"]]) == 0.0, events[1]
        assert events[2]["error"]["code"] == "not_ready"
        assert closed.value.rcvd.code == 1013 and "draining" in closed.value.rcvd.reason
        assert httpx.get(base + "/ready").status_code == 503
        assert f"Targets.member.1.Id={FakeAws.IP}" in fake_aws.polls[0]  # its own target, from the metadata
        assert proc.poll() is None  # drained, still up: ECS decides when it stops
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"Traceback" not in proc.stdout.read()
