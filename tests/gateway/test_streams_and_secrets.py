"""Upstream-served work through the official openai SDK: plain and SSE
transcriptions, chunked and SSE speech, prices in X-Cost-USD; and the
upstream key in no log line, response or metric."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from faulty_upstream import UPSTREAM_KEY
from openai import OpenAI

from voxhost.ops.cost import CLOUD_PRICES

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def cloud_gateway(gateway, upstream_process):
    """Every player upstream: a real voxhost (whisper-base, hibari) behind the key."""
    gw = gateway(upstream_url=upstream_process, upstream_api_key=UPSTREAM_KEY, route_local_share=0.0)
    return gw, OpenAI(base_url=gw.base_url + "/v1", api_key="player-key", max_retries=0, timeout=120)


def test_transcription_served_upstream_with_its_cloud_price(cloud_gateway, short_clip):
    _, client = cloud_gateway
    with open(short_clip, "rb") as f:
        raw = client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=f)
    assert raw.headers["x-voxhost-route"] == "upstream"
    assert "comparatively modern" in raw.parse().text.lower()
    seconds = 1.9  # lj_LJ001-0002 is 1.9 s
    expected = seconds / 60 * CLOUD_PRICES["whisper-1_per_minute"]
    assert float(raw.headers["x-cost-usd"]) == pytest.approx(expected, rel=0.1)


def test_sse_transcription_streams_through_the_proxy(cloud_gateway, short_clip):
    _, client = cloud_gateway
    with open(short_clip, "rb") as f:
        events = list(client.audio.transcriptions.create(model="whisper-1", file=f, stream=True))
    assert events[-1].type == "transcript.text.done"
    assert any(e.type == "transcript.text.delta" for e in events)
    assert "comparatively modern" in events[-1].text.lower()


def test_chunked_speech_streams_through_the_proxy(cloud_gateway):
    gw, client = cloud_gateway
    line = "The bridge is out. Take the mountain pass before the snow comes."
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input=line,
                                                            response_format="pcm") as response:
        assert response.headers["x-voxhost-route"] == "upstream"
        assert response.headers.get("transfer-encoding") == "chunked"
        pieces = list(response.iter_bytes())
        cost = float(response.headers["x-cost-usd"])
    data = b"".join(pieces)
    assert len(data) > 24_000 * 2  # over a second of 24 kHz PCM
    assert cost == pytest.approx(len(line) * CLOUD_PRICES["tts-1_per_million_chars"] / 1e6)


def test_sse_speech_streams_through_the_proxy(cloud_gateway):
    gw, _ = cloud_gateway
    with httpx.stream("POST", gw.base_url + "/v1/audio/speech", timeout=120,
                      json={"model": "tts-1", "voice": "alloy", "input": "Halt, traveler.",
                            "stream_format": "sse"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert events[-1]["type"] == "speech.audio.done"
    assert sum(e["type"] == "speech.audio.delta" for e in events) >= 1


def test_the_upstream_key_appears_in_no_log_response_or_metric(gateway, faulty, short_clip, caplog):
    caplog.set_level(logging.DEBUG)
    gw = gateway(upstream_url=faulty.base_url, upstream_api_key=UPSTREAM_KEY, route_local_share=0.0,
                 route_shadow_share=1.0)
    seen = []
    for mode in ("ok", "500", "429", "401", "slow"):
        faulty.mode, faulty.delay_s = mode, 0.2
        with open(short_clip, "rb") as f:
            response = httpx.post(gw.base_url + "/v1/audio/transcriptions", timeout=60,
                                  files={"file": ("a.wav", f, "audio/wav")}, data={"model": "whisper-1"})
        seen.append(response.text + json.dumps(dict(response.headers)))
    faulty.mode = "ok"
    assert faulty.received[-1]["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"  # it was used
    seen.append(httpx.get(gw.base_url + "/metrics").text)
    seen.append(caplog.text)
    seen.append(repr(gw.app.state.voxhost.settings) + repr(gw.app.state.voxhost.gateway.config))
    for text in seen:
        assert UPSTREAM_KEY not in text
        assert UPSTREAM_KEY[:12] not in text  # nor a prefix of it, as OpenAI's 401 message shows
