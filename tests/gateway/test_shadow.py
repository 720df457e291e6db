"""Shadow comparisons: recorded (WER, latency, cost) against a real upstream,
run off the response path, and holding figures only."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from faulty_upstream import UPSTREAM_KEY

from voxhost.api.gateway.shadow import transcript_text, word_errors

pytestmark = pytest.mark.timeout(300)


def wait_for(predicate, timeout=150.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def post(gw, clip, **data):
    with open(clip, "rb") as f:
        return httpx.post(gw.base_url + "/v1/audio/transcriptions", timeout=120,
                          files={"file": (clip.name, f, "audio/wav")}, data={"model": "whisper-1", **data})


def test_shadow_records_wer_latency_and_cost_but_no_text(gateway, upstream_process, english, eval_audio,
                                                         tmp_path):
    log = tmp_path / "shadow.jsonl"
    gw = gateway(upstream_url=upstream_process, upstream_api_key=UPSTREAM_KEY, route_shadow_share=1.0,
                 route_shadow_log=log)
    items = [i for i in english if i.duration <= 4][:2]
    for item in items:
        response = post(gw, eval_audio / item.audio, language="en")
        assert response.headers["x-voxhost-route"] == "local"
    shadow = gw.app.state.voxhost.gateway.shadow
    assert wait_for(lambda: len(shadow.records) == len(items)), (shadow.records, [l for l in httpx.get(gw.base_url + "/metrics").text.splitlines() if "gateway" in l or "shadow_req" in l])
    for record in shadow.records:
        assert record.ok and record.words > 0 and record.model == "whisper-tiny.en" and record.language == "en"
        assert record.upstream_s > 0 and record.local_s > 0 and record.upstream_usd > 0
    # A record is published when compared, and its log line appended just after, off the loop.
    assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= len(items), timeout=10)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == len(items)
    assert not any("text" in key for line in lines for key in line)  # figures only
    for item in items:  # no transcript word run of the reference leaks into the file
        assert item.text.lower()[:20] not in log.read_text().lower()
    metrics = httpx.get(gw.base_url + "/metrics").text
    assert 'voxhost_shadow_words_total{language="en",model="whisper-tiny.en"}' in metrics
    assert 'voxhost_shadow_latency_seconds_count{route="transcriptions",side="upstream"} 2.0' in metrics


def test_shadow_runs_off_the_response_path(gateway, faulty, short_clip):
    """The upstream holds the shadow request; the player has their answer
    before the upstream has even replied."""
    faulty.mode = "block"
    faulty.release.clear()
    faulty.entered.clear()
    gw = gateway(upstream_url=faulty.base_url, route_shadow_share=1.0)
    try:
        response = post(gw, short_clip)
        assert response.status_code == 200 and response.headers["x-voxhost-route"] == "local"
        assert "comparatively modern" in response.json()["text"].lower()
        assert faulty.entered.wait(30)  # the shadow request did go out...
        assert gw.app.state.voxhost.gateway.shadow.records == []  # ...and is still waiting
    finally:
        faulty.release.set()
        faulty.mode = "ok"
    shadow = gw.app.state.voxhost.gateway.shadow
    assert wait_for(lambda: len(shadow.records) == 1)
    assert shadow.records[0].wer == 0.0  # the fault upstream's transcript is the clip's words


def test_a_failing_shadow_upstream_costs_the_player_nothing(gateway, faulty, short_clip):
    faulty.mode = "500"
    gw = gateway(upstream_url=faulty.base_url, route_shadow_share=1.0)
    try:
        response = post(gw, short_clip)
        assert response.status_code == 200 and response.headers["x-voxhost-route"] == "local"
        assert wait_for(lambda: 'outcome="upstream_error"' in httpx.get(gw.base_url + "/metrics").text)
    finally:
        faulty.mode = "ok"


def test_transcript_text_and_word_errors():
    assert transcript_text(b'{"text": "Hello there."}', "application/json") == "Hello there."
    assert transcript_text(b"Hello there.\n", "text/plain; charset=utf-8") == "Hello there.\n"
    sse = b'data: {"type": "transcript.text.delta", "delta": "Hi"}\n\ndata: {"type": "transcript.text.done", ' \
          b'"text": "Hi there"}\n\n'
    assert transcript_text(sse, "text/event-stream") == "Hi there"
    assert word_errors("I have 2 swords.", "i have two swords", "en") == (0, 4)
    assert word_errors("the north gate", "the gate", "en") == (1, 3)
