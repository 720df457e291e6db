"""The cast: Kokoro's 28 English voices, and OpenAI's 13 names as distinct,
gender-correct voices, through the real server with the openai SDK."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from voxhost.engines.tts.kokoro_voices import ENGLISH_VOICES
from voxhost.tts.voices import OPENAI_VOICE_GENDER, OPENAI_VOICES
from voxhost_testing import assert_openai_error, median_f0

LINE = "Stand back, stranger. The bridge is closed until the morning bell."
# Median f0 below this is a male voice, above a female one. Lower than the textbook
# ~165 Hz because af_alloy, OpenAI's "neutral" alloy, speaks at ~136 Hz; the male
# voices sit at 80-125 Hz (per-voice pitch table in docs/benchmarks.md).
GENDER_SPLIT_HZ = 130.0


@pytest.fixture(scope="module")
def openai_voices(openai_client) -> dict[tuple[str, str], tuple[str, np.ndarray]]:
    """(model, OpenAI voice) -> (voice the server used, 24 kHz PCM) for tts-1 and tts-1-hd."""
    out = {}
    for model in ("tts-1-hd", "tts-1"):
        for name in OPENAI_VOICES:
            with openai_client.audio.speech.with_streaming_response.create(
                model=model, voice=name, input=LINE, response_format="pcm"
            ) as response:
                used = f"{response.headers['x-voxhost-engine']}:{response.headers['x-voxhost-voice']}"
                pcm = np.frombuffer(response.read(), dtype="<i2").astype(np.float32) / 32768
            out[model, name] = used, pcm
    return out


def test_voices_endpoint_describes_28_english_voices(base_url):
    data = httpx.get(base_url + "/v1/audio/voices").json()["data"]
    kokoro = {v["id"]: v for v in data if v["engine"] == "kokoro"}
    english = {vid: v for vid, v in kokoro.items() if v["accent"] in ("American", "British")}
    assert set(english) == set(ENGLISH_VOICES) and len(english) == 28
    assert sum(v["language"] == "en-US" for v in english.values()) == 20
    assert sum(v["language"] == "en-GB" and v["accent"] == "British" for v in english.values()) == 8
    for vid, voice in english.items():
        assert voice["gender"] == ("female" if vid[1] == "f" else "male")
        assert voice["description"] and voice["sample_rate"] == 24_000
    japanese = {vid for vid, v in kokoro.items() if v["accent"] == "Japanese"}
    assert japanese == {"jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"}
    assert all("Japanese" in kokoro[vid]["description"] for vid in japanese)
    assert kokoro["af_heart"]["default"]
    assert "onyx" in kokoro["am_onyx"]["openai_aliases"] and "fable" in kokoro["bm_fable"]["openai_aliases"]


def test_thirteen_openai_names_are_thirteen_voices_on_tts_1_hd(openai_voices):
    used = {name: openai_voices["tts-1-hd", name][0] for name in OPENAI_VOICES}
    assert len(set(used.values())) == 13, used
    assert all(u.startswith("kokoro:") for u in used.values())
    for namesake in ("alloy", "nova", "echo", "onyx", "fable"):
        assert used[namesake].endswith("_" + namesake)
    audio = [openai_voices["tts-1-hd", name][1] for name in OPENAI_VOICES]
    for i, a in enumerate(audio):
        for b in audio[i + 1:]:
            n = min(a.size, b.size)
            assert a.size != b.size or not np.allclose(a[:n], b[:n], atol=1e-3)


@pytest.mark.parametrize("model", ["tts-1-hd", "tts-1"])
def test_every_openai_voice_has_its_gender(openai_voices, model):
    pitches = {name: median_f0(openai_voices[model, name][1]) for name in OPENAI_VOICES}
    wrong = {name: round(f0) for name, f0 in pitches.items()
             if (f0 < GENDER_SPLIT_HZ) != (OPENAI_VOICE_GENDER[name] == "male")}
    assert not wrong, f"{model}: median f0 disagrees with gender: {wrong} (all: {pitches})"


def test_british_voices_speak_british_phonemes(server):
    kokoro = server.app.state.voxhost.services.tts_engines.engines["kokoro"]
    assert kokoro.resolve_voice("bm_george").data.british
    assert not kokoro.resolve_voice("am_onyx").data.british
    assert kokoro.resolve_voice("am_onyx(1)+bm_george(2)").data.british  # the heavier part's accent


@pytest.mark.parametrize("voice", [
    "af_heart(" + "9" * 400 + ")+am_onyx(1)",  # overflows to inf: the blend would be NaN
    "am_onyx(101)+bm_george(1)",
    "am_onyx(0)",
    "+".join(["am_onyx"] * 9),
])
def test_unbounded_blend_weights_are_a_400(base_url, voice):
    response = httpx.post(base_url + "/v1/audio/speech", timeout=60,
                          json={"model": "tts-1-hd", "voice": voice, "input": "Halt!"})
    assert_openai_error(response, 400, "voice", "invalid_value")


def test_non_finite_audio_is_never_cached(openai_client, server, monkeypatch):
    engine = server.app.state.voxhost.services.tts_engines.engines["kokoro"]
    real = engine.synthesize
    monkeypatch.setattr(engine, "synthesize", lambda *a, **kw: real(*a, **kw) * np.float32("nan"))
    line = "A line spoken by a broken engine."
    first = openai_client.audio.speech.with_raw_response.create(model="tts-1-hd", voice="onyx", input=line,
                                                                response_format="pcm")
    assert first.headers["x-cache"] == "miss"
    assert not np.frombuffer(first.content, "<i2").any()  # silence, not noise
    monkeypatch.setattr(engine, "synthesize", real)
    second = openai_client.audio.speech.with_raw_response.create(model="tts-1-hd", voice="onyx", input=line,
                                                                 response_format="pcm")
    assert second.headers["x-cache"] == "miss" and np.frombuffer(second.content, "<i2").any()
