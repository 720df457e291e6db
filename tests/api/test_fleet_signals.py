"""The fleet's signals from a real server: live sessions, session capacity, STT and TTS work
(EMF and Prometheus), and task scale-in protection asked of a stand-in ECS agent."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
from test_task_protection import Agent  # noqa: E402  (the stand-in agent lives with the unit tests)


@pytest.fixture
def agent():
    a = Agent()
    yield a
    a.close()


def test_a_real_live_session_protects_the_task_until_it_ends(agent, sibling, monkeypatch):
    """The server itself: a WebSocket session through `voxhost`'s realtime route turns protection on;
    closing it turns it off; the published gauges say the same."""
    import websockets.sync.client as ws_client

    monkeypatch.setenv("ECS_AGENT_URI", agent.uri)
    live = sibling(max_live_sessions=7)
    url = live.base_url.replace("http", "ws") + "/v1/realtime?intent=transcription"
    with ws_client.connect(url) as ws:
        json.loads(ws.recv())  # session.created
        deadline = time.monotonic() + 5
        while not agent.bodies and time.monotonic() < deadline:
            time.sleep(0.02)
        assert agent.bodies == [{"ProtectionEnabled": True, "ExpiresInMinutes": 30}]
        metrics = httpx.get(live.base_url + "/metrics").text
        assert "voxhost_live_sessions 1.0" in metrics and "voxhost_live_session_capacity 7.0" in metrics
    deadline = time.monotonic() + 5
    while len(agent.bodies) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert agent.bodies[-1] == {"ProtectionEnabled": False}


def test_emf_carries_the_scaling_signals(sibling, short_clip, capfd):
    from test_emf import validate_emf

    live = sibling(emf_enabled=True, emf_interval_s=0.2, max_live_sessions=9, workers=1)
    assert httpx.post(live.base_url + "/v1/audio/transcriptions", files={"file": ("a.wav", short_clip.read_bytes())},
                      data={"model": "whisper-1"}, timeout=60).status_code == 200
    capfd.readouterr()  # lines emitted while the request ran
    docs = []
    for _ in range(30):
        time.sleep(0.1)
        docs += [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"_aws"')]
        if any("LiveSessionCapacity" in d for d in docs):
            break
    doc = next(d for d in docs if "LiveSessionCapacity" in d)  # emitted after the request finished
    validate_emf(doc)
    assert doc["LiveSessionCapacity"] == 9 and doc["LiveSessions"] == 0 and doc["LiveSessionsRefused"] == 0
    for name in ("SttInFlight", "SttQueued", "TtsInFlight", "TtsQueued"):
        assert doc[name] == 0, name  # the request is done: nothing running or waiting
    names = {m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"LiveSessions", "LiveSessionCapacity", "SttInFlight", "SttQueued", "TtsInFlight", "TtsQueued",
            "QueueDepth", "InFlight"} <= names
    prom = httpx.get(live.base_url + "/metrics").text
    for gauge in ("voxhost_stt_in_flight", "voxhost_stt_queued", "voxhost_tts_in_flight", "voxhost_tts_queued",
                  "voxhost_live_session_capacity 9.0"):
        assert gauge in prom, gauge
