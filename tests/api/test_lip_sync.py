"""Lip-sync timings (`"timestamps": true` on the SSE speech stream), through the real
Kokoro engine over HTTP, checked against Whisper's word timestamps on the audio."""

from __future__ import annotations

import base64
import io
import json
import re
import wave

import httpx
import numpy as np
import pytest

from voxhost.evaluation.lipsync import median_start_error
from voxhost.tts.timing import VISEMES

LINE = "Halt, traveler! Nobody passes the northern gate after the sun goes down."
RATE = 24_000


def _speak(base_url: str, **body) -> tuple[list[dict], np.ndarray]:
    request = {"model": "tts-1-hd", "voice": "am_onyx", "input": LINE, "response_format": "pcm",
               "stream_format": "sse", "timestamps": True, **body}
    response = httpx.post(base_url + "/v1/audio/speech", json=request, timeout=300)
    assert response.status_code == 200, response.text
    events = [json.loads(block[len("data: "):]) for block in response.text.split("\n\n") if block.strip()]
    assert events[-1]["type"] == "speech.audio.done"
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    return events, np.frombuffer(pcm, np.int16).astype(np.float32) / 32768


def _words(events):
    return [e for e in events if e["type"] == "speech.word"]


@pytest.fixture(scope="module")
def onyx(base_url):
    return _speak(base_url)


def test_words_arrive_in_order_cover_the_audio_and_match_the_text(onyx):
    events, audio = onyx
    words = _words(events)
    assert [w["word"] for w in words] == re.findall(r"[\w']+", LINE)
    seconds = audio.size / RATE
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and all(w["start"] < w["end"] for w in words)
    # Times are in whole milliseconds, hence the half-millisecond allowance.
    assert 0 <= starts[0] < 0.3 and seconds - 0.5 < words[-1]["end"] <= seconds + 0.0005
    # Each word's events come before the audio it belongs to ends up in the stream.
    assert events.index(words[0]) < next(i for i, e in enumerate(events) if e["type"] == "speech.audio.delta")


def test_visemes_are_of_the_documented_set_in_order(onyx):
    visemes = [e for e in onyx[0] if e["type"] == "speech.viseme"]
    assert {v["viseme"] for v in visemes} <= set(VISEMES)
    assert len(visemes) > len(_words(onyx[0]))  # several mouth shapes a word
    assert [v["start"] for v in visemes] == sorted(v["start"] for v in visemes)
    assert visemes[-1]["viseme"] == "sil"
    # "Halt" opens with h (kk) then a; "Nobody" with n.
    assert {"PP", "DD", "SS", "aa", "oh"} <= {v["viseme"] for v in visemes}


def test_times_agree_with_whisper_word_timestamps(onyx, openai_client):
    events, audio = onyx
    wav = io.BytesIO()
    with wave.open(wav, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(RATE)
        out.writeframes((audio * 32767).astype(np.int16).tobytes())
    result = openai_client.audio.transcriptions.create(
        model="whisper-base", file=("line.wav", wav.getvalue()), response_format="verbose_json",
        timestamp_granularities=["word"])
    reference = [(w.word, w.start) for w in result.words]
    error, pairs = median_start_error([(w["word"], w["start"]) for w in _words(events)], reference)
    assert pairs >= 9
    assert error < 0.15  # loose here; the 60 ms goal is measured in bench/tts_lip_sync.py


def test_a_slower_designed_voice_shifts_the_times(base_url, onyx):
    created = httpx.post(base_url + "/v1/audio/voices", json={
        "name": "slow_lipsync_guard", "base": "am_onyx", "speed": 0.8, "pitch_semitones": -2}, timeout=60)
    assert created.status_code == 201, created.text
    try:
        events, audio = _speak(base_url, voice="slow_lipsync_guard")
    finally:
        httpx.delete(base_url + "/v1/audio/voices/slow_lipsync_guard", timeout=60)
    slow, fast = _words(events), _words(onyx[0])
    assert [w["word"] for w in slow] == [w["word"] for w in fast]
    ratio = (slow[-1]["end"] - slow[0]["start"]) / (fast[-1]["end"] - fast[0]["start"])
    assert 1.12 < ratio < 1.4  # 1 / 0.8 = 1.25
    assert audio.size / RATE - 0.5 < slow[-1]["end"] <= audio.size / RATE + 0.0005


@pytest.mark.parametrize("body, code", [
    ({"stream_format": "audio"}, "invalid_value"),  # timings travel only on the SSE stream
    ({"timestamps": "yes"}, "invalid_type"),
    ({"model": "tts-1", "voice": "heart"}, "timestamps_unsupported"),  # hibari reports no durations
])
def test_timestamps_bad_requests_get_a_400(base_url, body, code):
    request = {"model": "tts-1-hd", "voice": "am_onyx", "input": "Halt.", "stream_format": "sse",
               "timestamps": True, **body}
    response = httpx.post(base_url + "/v1/audio/speech", json=request, timeout=120)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == "timestamps" and error["type"] == "invalid_request_error"
