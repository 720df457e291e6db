"""Serving under load through the real server: batching across clients,
accounting headers, metric names, and overload shedding (429 only)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families


def _post(base_url: str, audio: bytes, model: str = "whisper-tiny.en", **data) -> httpx.Response:
    return httpx.post(base_url + "/v1/audio/transcriptions", files={"file": ("clip.wav", audio)},
                      data={"model": model, **data}, timeout=300)


def _samples(base_url: str, name: str) -> list:
    text = httpx.get(base_url + "/metrics").text
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name]


def _batches_over_one(base_url: str, engine: str) -> float:
    count = sum(s.value for s in _samples(base_url, "voxhost_batch_size_count") if s.labels["engine"] == engine)
    single = sum(s.value for s in _samples(base_url, "voxhost_batch_size_bucket")
                 if s.labels["engine"] == engine and s.labels["le"] == "1.0")
    return count - single


def test_concurrent_requests_are_batched_and_match_sequential(sibling, english):
    base_url = sibling(stt_batching=True).base_url  # auto would leave it off on CPU
    clips = [r for r in english if r.duration <= 6][:5]
    audio = [r.audio.read_bytes() for r in clips]
    sequential = [_post(base_url, a).json()["text"] for a in audio]
    before = _batches_over_one(base_url, "stt:whisper-tiny.en")
    with cf.ThreadPoolExecutor(len(audio)) as pool:
        concurrent = [r.json()["text"] for r in pool.map(lambda a: _post(base_url, a), audio)]
    assert concurrent == sequential
    assert _batches_over_one(base_url, "stt:whisper-tiny.en") > before  # some batch held > 1 request


def test_every_response_carries_request_accounting_headers(base_url, short_clip):
    r = _post(base_url, short_clip.read_bytes())
    assert r.status_code == 200
    assert r.headers["x-request-id"].startswith("req_")
    assert float(r.headers["x-compute-ms"]) > 0
    assert float(r.headers["x-queue-ms"]) >= 0
    assert float(r.headers["x-cost-usd"]) > 0
    bad = httpx.post(base_url + "/v1/audio/transcriptions", files={"file": ("x.wav", b"not audio")})
    assert bad.status_code == 400 and bad.headers["x-request-id"] != r.headers["x-request-id"]


def test_metric_names_and_labels(base_url, short_clip):
    assert _post(base_url, short_clip.read_bytes()).status_code == 200
    assert _post(base_url, b"not audio").status_code == 400
    route = "/v1/audio/transcriptions"
    text = httpx.get(base_url + "/metrics").text
    families = {fam.name: fam for fam in text_string_to_metric_families(text)}
    for name in ("voxhost_requests", "voxhost_errors", "voxhost_request_latency_seconds",
                 "voxhost_queue_wait_seconds", "voxhost_compute_seconds", "voxhost_cost_usd",
                 "voxhost_queue_depth", "voxhost_in_flight", "voxhost_batch_size", "voxhost_audio_seconds",
                 "voxhost_tts_characters", "voxhost_cache_hits", "voxhost_cache_misses", "voxhost_live_sessions",
                 "voxhost_scheduler_rejections", "voxhost_http_in_flight"):
        assert name in families, name
    ok = [s for s in families["voxhost_requests"].samples
          if s.labels == {"route": route, "method": "POST", "status": "200"}]
    assert ok and ok[0].value >= 1
    errors = {(s.labels["route"], s.labels["status"]) for s in families["voxhost_errors"].samples
              if s.name.endswith("_total")}
    assert (route, "400") in errors
    lanes = {s.labels["lane"] for s in families["voxhost_queue_depth"].samples
             if s.labels["engine"] == "stt:whisper-tiny.en"}
    assert lanes == {"live", "interactive", "bulk"}
    latency = [s for s in families["voxhost_request_latency_seconds"].samples
               if s.name.endswith("_count") and s.labels["route"] == route]
    assert latency[0].value >= 1
    audio = [s for s in families["voxhost_audio_seconds"].samples if s.labels.get("route") == route]
    assert audio[0].value >= 1.9
    # No GPU here: NVML metrics are absent, not an error.
    assert not any(name.startswith("voxhost_gpu") for name in families)


def test_overload_sheds_with_429_only_and_recovers(sibling, short_clip):
    # Capacity: one batch of 2 running + 2 queued. Offer 5x that at once.
    live = sibling(queue_max_per_lane=2, stt_max_batch_size=2, stt_batching=True)
    audio = short_clip.read_bytes()
    with cf.ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: _post(live.base_url, audio), range(20)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) >= 1 and statuses.count(200) >= 2
    for r in responses:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "server_overloaded"
            assert int(r.headers["retry-after"]) >= 1
        else:
            assert "modern" in r.json()["text"].lower()
    rejected = sum(s.value for s in _samples(live.base_url, "voxhost_errors_total") if s.labels["status"] == "429")
    assert rejected == statuses.count(429)
    assert httpx.get(live.base_url + "/ready").status_code == 200
    assert _post(live.base_url, audio).status_code == 200  # recovered


def test_emf_lines_on_stdout_when_enabled(sibling, short_clip, capfd):
    sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
    from test_emf import validate_emf  # the spec check lives with the EMF unit tests

    live = sibling(emf_enabled=True, emf_interval_s=0.2, emf_service_name="voxhost-test")
    assert _post(live.base_url, short_clip.read_bytes()).status_code == 200
    docs = []
    for _ in range(50):
        time.sleep(0.1)
        out = capfd.readouterr().out
        docs += [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]
        if any(d.get("Requests") for d in docs):
            break
    assert docs, "no EMF line"
    for doc in docs:
        validate_emf(doc)
    assert any(d.get("Requests") == 1 and d["CostUSD"] > 0 and len(d["Latency"]) == 1 for d in docs)
    assert {d["ServiceName"] for d in docs} == {"voxhost-test"}
    # The same latency again, by route (STT and TTS read against their own targets).
    assert any(d.get("Route") == "/v1/audio/transcriptions" and len(d["Latency"]) == 1 for d in docs)
