"""Admission through the real server, models and clients: a backlog past the
wait budget is refused at once with an honest Retry-After, the openai SDK
waits that long and gets its transcript, and silent FLAC uploads are held to
the decoded-audio memory budget. The arithmetic alone, with fakes:
tests/scheduler/test_admission.py."""

from __future__ import annotations

import concurrent.futures as cf
import math
import threading
import time

import httpx
from openai import DefaultHttpxClient, OpenAI

from voxhost.scheduler.audio_memory import MB
from voxhost.scheduler.lanes import Lane
from voxhost_testing import assert_openai_error, metric_sum, silent_flac, wait_until

URL = "/v1/audio/transcriptions"
MODEL = "whisper-tiny.en"


def _post(base_url: str, audio: bytes, name: str = "clip.wav") -> tuple[httpx.Response, float, float]:
    sent = time.perf_counter()
    response = httpx.post(base_url + URL, files={"file": (name, audio)}, data={"model": MODEL}, timeout=120)
    return response, sent, time.perf_counter()


def _refused_as_overloaded(response: httpx.Response) -> float:
    """The refusal's shape; returns its Retry-After in seconds (from retry-after-ms)."""
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "server_overloaded", error
    wait_s = int(response.headers["retry-after-ms"]) / 1000
    assert int(response.headers["retry-after"]) == math.ceil(wait_s) >= 1
    return wait_s


def test_a_backlog_past_the_budget_is_refused_at_once_with_its_real_wait(sibling, short_clip):
    live = sibling(stt_wait_budget_s=2.0, stt_num_workers=1)
    audio = short_clip.read_bytes()
    for _ in range(3):  # the service time is measured, not assumed
        assert _post(live.base_url, audio)[0].status_code == 200
    with cf.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: _post(live.base_url, audio), range(10)))
    served = [(r, sent, done) for r, sent, done in results if r.status_code == 200]
    refused = [(r, sent, done) for r, sent, done in results if r.status_code != 200]
    assert served and refused, [r.status_code for r, _, _ in results]
    assert all("modern" in r.json()["text"].lower() for r, _, _ in served)
    last_served = max(done for _, _, done in served)
    for response, _, answered in refused:
        retry_after = _refused_as_overloaded(response)
        assert "budget" in response.json()["error"]["message"]
        # Honest: the wait it announces is the backlog it saw, which the served requests then
        # took to drain (a loose band: service times vary on a loaded CI box).
        drained = last_served - answered
        assert drained / 4 <= retry_after <= drained * 4 + 1.0, (retry_after, drained)
        # Refused at once, not after waiting its turn.
        assert answered - min(sent for _, sent, _ in results) < drained
    assert metric_sum(live.base_url, "voxhost_scheduler_rejections_total", reason="wait_budget") == len(refused)


def test_the_openai_sdk_waits_the_retry_after_then_gets_its_transcript(sibling, short_clip, monkeypatch):
    live = sibling(stt_wait_budget_s=0.5, stt_num_workers=1)
    state = live.app.state.voxhost
    engine = state.services.stt_engines.get(MODEL)
    executor = state.services.stt_scheduler.executor_for(engine)
    for _ in range(3):  # as measured on a slower host: 1.2 s a clip
        executor.service_times.record(None, Lane.INTERACTIVE.value, 1.9, 1.2)
    real, gate, entered = engine.transcribe, threading.Event(), threading.Event()

    def held(*args, **kwargs):  # the first decode holds the only worker until the SDK is refused
        entered.set()
        gate.wait(30)
        return real(*args, **kwargs)

    seen: list[tuple[str, float, httpx.Response | None]] = []

    def on_request(request):
        seen.append(("request", time.perf_counter(), None))

    def on_response(response):
        seen.append(("response", time.perf_counter(), response))
        if response.status_code == 429:
            gate.set()

    audio = short_clip.read_bytes()
    monkeypatch.setattr(engine, "transcribe", held)  # the session's engine object: undone after the test
    try:
        with cf.ThreadPoolExecutor(2) as pool:
            backlog = [pool.submit(_post, live.base_url, audio)]
            wait_until(entered.is_set, 30, "the first decode running")
            # Once its expected remainder is within the budget, one more is admitted and queues.
            wait_until(lambda: executor.expected_wait(Lane.INTERACTIVE) < 0.4, 30, "the running job nearly due")
            backlog.append(pool.submit(_post, live.base_url, audio))
            wait_until(lambda: executor.queued == 1, 30, "a request queued behind it")
            client = OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=4, timeout=60,
                            http_client=DefaultHttpxClient(event_hooks={"request": [on_request],
                                                                        "response": [on_response]}))
            with short_clip.open("rb") as f:
                transcript = client.audio.transcriptions.create(model=MODEL, file=f)
            assert all(f.result()[0].status_code == 200 for f in backlog)
    finally:
        gate.set()
    assert "modern" in transcript.text.lower()
    statuses = [r.status_code for kind, _, r in seen if kind == "response"]
    assert statuses[0] == 429 and statuses[-1] == 200, statuses
    # Every retry came no sooner than the server said: the SDK read retry-after-ms.
    for (kind, answered, response), (next_kind, resent, _) in zip(seen, seen[1:]):
        if kind == "response" and response.status_code == 429:
            assert next_kind == "request"
            assert resent - answered >= _refused_as_overloaded(response) * 0.95


def test_silent_flac_uploads_are_held_to_the_decoded_audio_budget(sibling):
    held: list[int] = []
    live = sibling(audio_memory_budget_mb=16, stt_wait_budget_s=0, max_audio_seconds=600)
    budget = live.app.state.voxhost.services.audio_memory
    record = budget.on_change
    budget.on_change = lambda n: (held.append(n), record(n))
    three_minutes = silent_flac(180)  # 11 MB decoded: one fits in 16 MB, two do not

    # Room held by other work: refused before this upload is decoded, then served once it frees.
    other = budget.reservation()
    other.hold(8 * MB)
    response, _, _ = _post(live.base_url, three_minutes, "silence.flac")
    assert _refused_as_overloaded(response) >= 1
    assert "budget" in response.json()["error"]["message"]
    assert max(held) == 8 * MB  # nothing of it was ever held
    other.release()
    response, _, _ = _post(live.base_url, three_minutes, "silence.flac")
    assert response.status_code == 200 and response.json()["text"] == ""

    # One upload larger than the whole budget: 413, whatever else is held.
    error = assert_openai_error(_post(live.base_url, silent_flac(300), "silence.flac")[0], 413, "file",
                                "audio_too_large")
    assert "VOXHOST_AUDIO_MEMORY_BUDGET_MB" in error["message"]

    # Many at once: never more than the budget held; each answered (200) or refused (429).
    with cf.ThreadPoolExecutor(6) as pool:
        statuses = [r.status_code for r, _, _ in pool.map(lambda _: _post(live.base_url, three_minutes,
                                                                           "silence.flac"), range(6))]
    assert set(statuses) == {200, 429}, statuses
    assert max(held) <= 16 * MB
    wait_until(lambda: budget.held == 0, 10, "every reservation released")  # freed with the audio
    assert metric_sum(live.base_url, "voxhost_audio_memory_bytes") == 0
