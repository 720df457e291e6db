"""Designed voices over HTTP: created, used (by name and in the SDK's object
form), listed, seen by a second server sharing the directory, edited without
stale cache hits, deleted; every bad design is a 400."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from voxhost_testing import assert_openai_error, median_f0

VOICES = "/v1/audio/voices"
DWARF = {"name": "grumpy_dwarf", "base": "am_onyx(2)+bm_george(1)", "pitch_semitones": -3, "formant_shift": -0.1,
         "speed": 0.9, "effect": "cave", "description": "Grumbles in the mines."}
LINE = "Who goes there? Speak your name, or be gone from my mine."


def pcm(response) -> np.ndarray:
    return np.frombuffer(response.read(), "<i2").astype(np.float32) / 32768


def speak(client, voice, line=LINE):
    with client.audio.speech.with_streaming_response.create(model="tts-1-hd", voice=voice, input=line,
                                                            response_format="pcm") as response:
        return response.headers, pcm(response)


def test_a_designed_voice_from_creation_to_deletion(base_url, openai_client, sibling, settings):
    created = httpx.post(base_url + VOICES, json=DWARF, timeout=60)
    assert created.status_code == 201, created.text
    assert created.json() | {} == {"id": "grumpy_dwarf", "object": "voice", "method": "designed", **DWARF}
    assert httpx.get(f"{base_url}{VOICES}/grumpy_dwarf").json()["effect"] == "cave"
    listed = {v["id"]: v for v in httpx.get(base_url + VOICES).json()["data"]}
    assert listed["grumpy_dwarf"]["method"] == "designed" and "am_onyx" in listed  # bundled ones stay

    headers, dwarf = speak(openai_client, "grumpy_dwarf")
    assert headers["x-voxhost-voice"] == "grumpy_dwarf=am_onyx(0.6667)+bm_george(0.3333)"
    _, base = speak(openai_client, DWARF["base"])
    # Three semitones down is a factor 0.84 in pitch; 0.9 pace makes the line longer.
    assert 0.74 < median_f0(dwarf) / median_f0(base) < 0.93
    assert dwarf.size > base.size / 0.9 * 0.95
    object_form, again = speak(openai_client, {"id": "grumpy_dwarf"})  # the SDK's custom-voice form
    assert object_form["x-cache"] == "hit" and np.array_equal(again, dwarf)

    # A second server sharing the directory sees the voice without a restart.
    other = sibling(voices_dir=settings.voices_dir)
    deadline = time.monotonic() + 5
    while (seen := httpx.get(f"{other.base_url}{VOICES}/grumpy_dwarf")).status_code != 200:
        assert time.monotonic() < deadline, seen.text
        time.sleep(0.2)

    # Edited (deleted and made again, higher): never the old audio from the cache.
    assert httpx.delete(f"{base_url}{VOICES}/grumpy_dwarf").json()["deleted"] is True
    assert httpx.post(base_url + VOICES, json=DWARF | {"pitch_semitones": 2}).status_code == 201
    edited_headers, edited = speak(openai_client, "grumpy_dwarf")
    assert edited_headers["x-cache"] == "miss" and median_f0(edited) > median_f0(dwarf) * 1.2

    assert httpx.delete(f"{base_url}{VOICES}/grumpy_dwarf").status_code == 200
    assert_openai_error(httpx.get(f"{base_url}{VOICES}/grumpy_dwarf"), 404, "voice_id", "voice_not_found")
    assert_openai_error(httpx.delete(f"{base_url}{VOICES}/grumpy_dwarf"), 404, "voice_id", "voice_not_found")
    gone = httpx.post(base_url + "/v1/audio/speech", json={"model": "tts-1-hd", "voice": "grumpy_dwarf",
                                                           "input": "Hello."})
    assert_openai_error(gone, 400, "voice", "voice_not_found")


@pytest.mark.parametrize("change, param, code", [
    ({"base": "gandalf"}, "base", "voice_not_found"),
    ({"base": "am_onyx(1e400)"}, "base", "voice_not_found"),
    ({"base": "am_onyx(" + "9" * 400 + ")+bm_george(1)"}, "base", "invalid_value"),
    ({"pitch_semitones": 13}, "pitch_semitones", "invalid_value"),
    ({"formant_shift": -0.5}, "formant_shift", "invalid_value"),
    ({"speed": 0}, "speed", "invalid_value"),
    ({"speed": "fast"}, "speed", "invalid_value"),
    ({"effect": "disco"}, "effect", "invalid_value"),
    ({"name": "onyx"}, "name", "reserved_name"),
    ({"name": "af_heart"}, "name", "reserved_name"),
    ({"name": "../../etc/passwd"}, "name", "invalid_value"),
    ({"name": "Dwarf King"}, "name", "invalid_value"),
    ({"name": ""}, "name", "invalid_value"),
    ({"surprise": 1}, "surprise", "invalid_value"),
])
def test_a_bad_design_is_a_400(base_url, change, param, code):
    response = httpx.post(base_url + VOICES, json=DWARF | {"name": "bad_design"} | change, timeout=60)
    assert_openai_error(response, 400, param, code)


def test_a_duplicate_or_non_json_design_is_a_400(base_url):
    design = DWARF | {"name": "twice"}
    assert httpx.post(base_url + VOICES, json=design).status_code == 201
    try:
        assert_openai_error(httpx.post(base_url + VOICES, json=design), 400, "name", "duplicate_voice")
    finally:
        httpx.delete(f"{base_url}{VOICES}/twice")
    response = httpx.post(base_url + VOICES, content=b"name=x", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
