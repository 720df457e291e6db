"""What a speech request cost, told truthfully: a synthesis streams while it runs, so its
headers cannot know its cost and carry none (never a false 0); the SSE stream's
`speech.audio.done` event states it, and /metrics counts the same figure, in every format.
A phrase-cache hit costs nothing and says so."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from voxhost_testing import metric_sum

URL = "/v1/audio/speech"
ROUTE = "/v1/audio/speech"
FIGURES = ("x-queue-ms", "x-compute-ms", "x-cost-usd")


def _fresh(line: str) -> str:
    """A line the phrase cache has not seen (a miss)."""
    return f"{line} Ticket {uuid.uuid4().int % 10_000}."


def _spent(base_url: str) -> tuple[float, float]:
    return (metric_sum(base_url, "voxhost_cost_usd_total", route=ROUTE),
            metric_sum(base_url, "voxhost_compute_seconds_sum", route=ROUTE))


def test_streamed_speech_states_its_cost_in_the_done_event_as_metrics_count_it(base_url):
    cost_before, compute_before = _spent(base_url)
    body = {"model": "tts-1-hd", "voice": "am_onyx", "stream_format": "sse",
            "input": _fresh("The bridge is out. Take the mountain pass before the snow comes.")}
    with httpx.stream("POST", base_url + URL, json=body, timeout=300) as response:
        assert response.status_code == 200 and response.headers["x-cache"] == "miss"
        assert not set(FIGURES) & set(response.headers), "figures unknown when the headers left: omitted"
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    done = events[-1]
    assert done["type"] == "speech.audio.done" and done["usage"]["input_tokens"] > 0
    assert done["compute_ms"] > 0 and done["cost_usd"] > 0 and done["queue_ms"] >= 0
    cost_after, compute_after = _spent(base_url)
    print(f"\nspeech.audio.done cost_usd={done['cost_usd']:.8f} compute_ms={done['compute_ms']:.1f}; "
          f"/metrics voxhost_cost_usd_total +{cost_after - cost_before:.8f}, "
          f"voxhost_compute_seconds_sum +{compute_after - compute_before:.4f}")
    assert cost_after - cost_before == pytest.approx(done["cost_usd"], rel=1e-4, abs=1e-8)
    assert (compute_after - compute_before) * 1000 == pytest.approx(done["compute_ms"], abs=0.2)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_format_is_priced_and_its_headers_never_claim_zero(base_url, fmt):
    cost_before, compute_before = _spent(base_url)
    response = httpx.post(base_url + URL, timeout=120, json={
        "model": "tts-1", "voice": "alloy", "response_format": fmt, "input": _fresh("Halt! Who goes there?")})
    assert response.status_code == 200 and response.headers["x-cache"] == "miss" and response.content
    assert not set(FIGURES) & set(response.headers)
    cost_after, compute_after = _spent(base_url)
    assert cost_after > cost_before and compute_after > compute_before, fmt


def test_a_cache_hit_costs_nothing_and_says_so(base_url):
    body = {"model": "tts-1", "voice": "alloy", "response_format": "wav", "input": _fresh("Welcome back, hero.")}
    assert httpx.post(base_url + URL, json=body, timeout=120).headers["x-cache"] == "miss"
    cost_before, _ = _spent(base_url)
    hit = httpx.post(base_url + URL, json=body, timeout=120)
    assert hit.headers["x-cache"] == "hit"
    assert float(hit.headers["x-cost-usd"]) == 0 and float(hit.headers["x-compute-ms"]) == 0
    assert _spent(base_url)[0] == cost_before
    with httpx.stream("POST", base_url + URL, json=body | {"stream_format": "sse"}, timeout=120) as response:
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert events[-1]["cost_usd"] == 0 and events[-1]["compute_ms"] == 0
