"""POST /v1/audio/speech through the official openai SDK, against the real engines."""

from __future__ import annotations

import base64
import io
import itertools
import json
import threading
import time

import av
import httpx
import numpy as np
import pytest

from voxhost.scheduler.executor import EngineExecutor

LINE = "Halt! Nobody passes the gate after sunset, traveler."
_unique = itertools.count()


def unique_line(text: str = LINE) -> str:
    """A line no earlier test cached (the server's phrase cache lives for the session)."""
    return f"{text} Watch number {next(_unique) + 1}."


def decode(data: bytes) -> tuple[int, float, np.ndarray]:
    """(sample rate, seconds, mono float32) of an encoded file, via PyAV."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().astype(np.float32).reshape(f.samples, -1).mean(axis=1) if f.format.is_packed
                  else f.to_ndarray().astype(np.float32).mean(axis=0) for f in container.decode(stream)]
        rate = stream.codec_context.sample_rate
    pcm = np.concatenate(frames)
    return rate, pcm.size / rate, pcm


def pcm_seconds(data: bytes) -> float:
    assert len(data) % 2 == 0
    return len(data) / 2 / 24_000


@pytest.fixture(scope="module")
def reference_pcm(openai_client) -> bytes:
    return openai_client.audio.speech.create(model="tts-1", voice="alloy", input=LINE, response_format="pcm").content


@pytest.mark.parametrize("fmt, rate", [("mp3", 24_000), ("opus", 48_000), ("aac", 24_000), ("flac", 24_000),
                                       ("wav", 24_000)])
def test_every_format_decodes_at_the_right_rate_and_length(openai_client, reference_pcm, fmt, rate):
    with openai_client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=LINE, response_format=fmt
    ) as response:
        assert response.headers["content-type"].startswith("audio/")
        data = response.read()
    decoded_rate, seconds, pcm = decode(data)
    # Opus always decodes at 48 kHz (it was encoded from 24 kHz); the rest carry 24 kHz.
    assert decoded_rate == rate
    expected = pcm_seconds(reference_pcm)
    assert 2.0 < expected < 6.0  # eight words: not silence, not a runaway
    assert abs(seconds - expected) < 0.12, (fmt, seconds, expected)  # codec priming/padding only
    assert np.sqrt(np.mean(pcm**2)) > 0.02  # audible, not a silent file of the right length


def test_pcm_is_24khz_s16le_mono_without_header(openai_client, reference_pcm):
    wav = openai_client.audio.speech.create(model="tts-1", voice="alloy", input=LINE, response_format="wav").content
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert int.from_bytes(wav[24:28], "little") == 24_000
    assert int.from_bytes(wav[22:24], "little") == 1 and int.from_bytes(wav[34:36], "little") == 16
    assert reference_pcm[:4] != b"RIFF"
    assert wav[44:] == reference_pcm  # the same samples: raw s16le at the rate the header states


def test_piper_is_resampled_to_24khz(openai_client):
    """Piper synthesises at 22.05 kHz; every response format still leaves at 24 kHz."""
    text = unique_line("The birch canoe slid on the smooth planks.")
    with openai_client.audio.speech.with_streaming_response.create(
        model="piper", voice="onyx", input=text, response_format="wav"  # a male name: piper's joe
    ) as response:
        assert response.headers["x-voxhost-engine"] == "piper"
        wav = response.read()
    rate, seconds, _ = decode(wav)
    assert rate == 24_000 and 1.5 < seconds < 6


def test_duration_follows_text_length_and_speed(openai_client):
    short = pcm_seconds(openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input="Halt!", response_format="pcm").content)
    long = pcm_seconds(openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input=LINE + " " + LINE, response_format="pcm").content)
    fast = pcm_seconds(openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input=LINE + " " + LINE, response_format="pcm", speed=2.0).content)
    assert 0.2 < short < 1.5
    assert long > 4 * short
    assert 0.35 * long < fast < 0.75 * long


def test_joins_have_no_clicks(openai_client):
    """Sentences are joined through silence with faded edges: no step at any join."""
    text = "Halt! Who goes there? Show yourself. The gate is closed."
    pcm = np.frombuffer(openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input=text, response_format="pcm").content, "<i2").astype(np.float32) / 32768
    silent = np.abs(pcm) == 0
    # Joins: runs of exact digital silence of at least 100 ms (the sentence pauses).
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    runs = [(a + 1, b + 1) for a, b in zip(edges[:-1], edges[1:]) if silent[a + 1] and b - a >= 2400]
    assert len(runs) >= 3, "expected a pause between each of the four sentences"
    for start, end in runs:
        before, after = pcm[max(0, start - 24):start], pcm[end:end + 24]
        # 1 ms either side of the pause: the fade brings the waveform to zero.
        assert np.max(np.abs(before)) < 0.02 and np.max(np.abs(after)) < 0.02


def test_sse_stream_has_deltas_then_done(base_url):
    text = unique_line()
    response = httpx.post(base_url + "/v1/audio/speech", json={
        "model": "gpt-4o-mini-tts", "voice": "coral", "input": text, "response_format": "mp3",
        "stream_format": "sse", "instructions": "Speak like a grumpy guard."}, timeout=120)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(block[len("data: "):]) for block in response.text.split("\n\n") if block.strip()]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done"
    assert events[-1]["usage"]["input_tokens"] > 0
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    rate, seconds, _ = decode(audio)
    assert rate == 24_000 and 2.5 < seconds < 8


def test_streaming_starts_before_synthesis_ends(openai_client, server, monkeypatch):
    """The first bytes reach the client while later sentences are still being synthesised."""
    engine = server.app.state.voxhost.services.tts_engines.engines["hibari"]
    real = engine.synthesize
    finished: list[float] = []

    def spy(text, voice, speed=1.0):
        audio = real(text, voice, speed)
        finished.append(time.monotonic())
        return audio

    monkeypatch.setattr(engine, "synthesize", spy)
    paragraph = unique_line(" ".join([
        "The old bridge to the northern village collapsed during last night's storm.",
        "Three goblins were seen near the mill, two hours ago.",
        "Our supplies will last fourteen days if nobody gets greedy.",
        "Meet me at the tavern at nine o'clock, and bring the map.",
        "The captain says the road through the marsh is flooded until spring.",
        "If you see the merchant from the coast, tell him the debt is paid.",
        "Nobody passes the gate after sunset, not even the king's own riders.",
        "Rest now, traveler; tomorrow we ride for the mountains.",
    ]))
    arrivals: list[float] = []
    with openai_client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=paragraph, response_format="pcm"
    ) as response:
        assert response.headers["x-cache"] == "miss"
        for chunk in response.iter_bytes():
            if chunk:
                arrivals.append(time.monotonic())
    assert len(finished) >= 9  # one synthesis per sentence
    assert len(arrivals) > 1
    # Order of events: first byte in hand before the last sentences were synthesised.
    assert arrivals[0] < finished[-2] < finished[-1]
    assert arrivals[-1] >= finished[-1]


def test_voices_endpoint_lists_every_bundled_voice(base_url):
    data = httpx.get(base_url + "/v1/audio/voices").json()["data"]
    by_id = {v["id"]: v for v in data}
    assert by_id["heart"] | {} == by_id["heart"]
    assert by_id["heart"]["engine"] == "hibari" and by_id["heart"]["sample_rate"] == 24_000
    assert by_id["joe"]["engine"] == "piper" and by_id["joe"]["sample_rate"] == 22_050
    assert {"jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"} <= set(by_id)
    assert by_id["jm_kumo"]["gender"] == "male" and by_id["jf_alpha"]["gender"] == "female"
    assert "alloy" in by_id["heart"]["openai_aliases"]


def test_tts_models_are_listed(openai_client):
    models = {m.id: m for m in openai_client.models.list().data}
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "hibari", "kokoro", "piper"} <= set(models)
    assert {"whisper-1"} <= set(models)  # transcription models are still there


def test_bundled_voice_ids_and_blends_work_directly(openai_client):
    with openai_client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="jf_alpha(2)+jm_kumo(1)", input="Halt!", response_format="wav"
    ) as response:
        assert response.headers["x-voxhost-engine"] == "kokoro"
        assert response.headers["x-voxhost-voice"] == "jf_alpha(0.6667)+jm_kumo(0.3333)"
        rate, seconds, _ = decode(response.read())
    assert rate == 24_000 and 0.2 < seconds < 2


def test_full_queue_answers_429_and_recovers(base_url, server, monkeypatch):
    state = server.app.state.voxhost
    engine = state.services.tts_engines.engines["hibari"]
    real = engine.synthesize
    release = threading.Event()
    started = threading.Event()

    def blocking(text, voice, speed=1.0):
        started.set()
        release.wait(30)
        return real(text, voice, speed)

    tiny = EngineExecutor("tts", workers=1, max_queue=0)
    monkeypatch.setattr(state.services.speech.scheduler, "executor", tiny)
    monkeypatch.setattr(engine, "synthesize", blocking)
    first: dict = {}

    def occupy():
        first["response"] = httpx.post(base_url + "/v1/audio/speech", json={
            "model": "tts-1", "voice": "alloy", "input": unique_line()}, timeout=60)

    worker = threading.Thread(target=occupy)
    worker.start()
    try:
        assert started.wait(30)
        rejected = httpx.post(base_url + "/v1/audio/speech", json={
            "model": "tts-1", "voice": "alloy", "input": unique_line()}, timeout=60)
        assert rejected.status_code == 429
        assert rejected.headers["retry-after"] == "1"
        assert rejected.json()["error"]["type"] == "rate_limit_error"
    finally:
        release.set()
        worker.join(60)
        tiny.shutdown()
    assert first["response"].status_code == 200 and len(first["response"].content) > 1000


def test_a_busy_server_speaks_the_first_clause_whole_and_either_cut_is_a_cache_hit(openai_client, base_url,
                                                                                 server, monkeypatch):
    """Idle: the first chunk is a few words, for an early first byte. Busy (another line
    runs): no early cut, since every cut costs the engine another call's lead-in and ending.
    Both cuts are the same line to the phrase cache."""
    state = server.app.state.voxhost
    engine = state.services.tts_engines.engines["hibari"]
    real = engine.synthesize
    release, started = threading.Event(), threading.Event()
    spoken: list[str] = []

    def spy(text, voice, speed=1.0):
        spoken.append(text)
        started.set()
        release.wait(30)
        return real(text, voice, speed)

    one = EngineExecutor("tts", workers=1, max_queue=4)
    monkeypatch.setattr(state.services.speech.scheduler, "executor", one)
    monkeypatch.setattr(engine, "synthesize", spy)
    idle_line = unique_line("The old bridge to the northern village collapsed during last night's storm.")
    busy_line = unique_line("Three goblins were seen near the mill by the river two hours ago.")
    responses: dict[str, httpx.Response] = {}

    def speak(name, text):
        responses[name] = httpx.post(base_url + "/v1/audio/speech", json={
            "model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}, timeout=60)

    first = threading.Thread(target=speak, args=("idle", idle_line))
    first.start()
    try:
        assert started.wait(30)
        second = threading.Thread(target=speak, args=("busy", busy_line))
        second.start()
        deadline = time.monotonic() + 30
        while one.queued < 1 and time.monotonic() < deadline:  # the busy line waits for the worker
            time.sleep(0.005)
        assert one.queued == 1
    finally:
        release.set()
        first.join(60)
        second.join(60)
        one.shutdown()
    assert [r.status_code for r in responses.values()] == [200, 200]
    assert spoken[0] == "The old bridge"  # idle: the early cut
    assert "Three goblins were seen near the mill by the river two hours ago." in spoken  # busy: whole
    assert "Three goblins" not in spoken
    # Asked again on an idle server (which would cut it early), the line cut whole is a hit.
    monkeypatch.setattr(engine, "synthesize", real)
    assert state.services.speech.scheduler.idle
    with openai_client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=busy_line, response_format="pcm") as again:
        assert again.headers["x-cache"] == "hit"
        assert again.read() == responses["busy"].content
