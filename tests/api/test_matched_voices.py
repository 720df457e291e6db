"""OpenAI's custom-voice flow, second half: multipart POST /v1/audio/voices with `name`,
`audio_sample` and `consent`. No engine here clones, so the answer is the nearest designed
voice, labelled "matched". Real speech from shared/eval (a US male and a US female reader),
a consent made through the real consent flow, the openai SDK as the client."""

from __future__ import annotations

import io
import math
import wave

import httpx
import numpy as np
import pytest

from voxhost.tts.consent import CONSENT_PHRASE
from voxhost_testing import assert_openai_error, median_f0, silent_flac

VOICES = "/v1/audio/voices"
MALE = "arctic_aew_arctic_a0001.wav"  # CMU ARCTIC aew, US English male, ~110 Hz
FEMALE = "lj_LJ001-0001.wav"  # LJ Speech, US English female, ~220 Hz
LINE = "Who goes there? Speak your name, or be gone from my gate."


def make_consent(base_url, voice, model: str = "tts-1-hd") -> str:
    """A consent through the real flow, read by one of the server's own voices (a name, or an
    unsaved design such as {"base": ..., "pitch_semitones": ...})."""
    phrase = httpx.post(base_url + "/v1/audio/speech", timeout=120, json={
        "model": model, "voice": voice, "input": CONSENT_PHRASE, "response_format": "wav"})
    assert phrase.status_code == 200, phrase.text
    response = httpx.post(base_url + "/v1/audio/voice_consents", data={"name": "Reader", "language": "en-US"},
                          files={"recording": ("consent.wav", phrase.content, "audio/wav")}, timeout=120)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"id", "object", "name", "language", "created_at"}  # no statistics echoed
    return response.json()["id"]


def sounding_like(eval_audio, clip) -> dict:
    """A design of a bundled voice shifted to the clip speaker's pitch: the kind of consent the
    speaker check cannot tell from the speaker's own (docs/architecture.md)."""
    from voxhost.audio.decode import decode_audio
    from voxhost.tts import matching

    stats = matching.measure(decode_audio((eval_audio / clip).read_bytes()))
    match = matching.nearest(stats, matching.kokoro_profiles())
    return {"base": match.base, "pitch_semitones": round(12 * math.log2(stats.f0_hz / match.base_stats.f0_hz), 1)}


@pytest.fixture(scope="module")
def consents(base_url, openai_client, eval_audio) -> dict[str, str]:
    return {clip: make_consent(base_url, sounding_like(eval_audio, clip)) for clip in (MALE, FEMALE)}


@pytest.fixture(scope="module")
def consent_id(consents) -> str:
    return consents[MALE]


def speak(client, voice: str) -> np.ndarray:
    with client.audio.speech.with_streaming_response.create(model="tts-1-hd", voice=voice, input=LINE,
                                                            response_format="pcm") as response:
        return np.frombuffer(response.read(), "<i2").astype(np.float32) / 32768


@pytest.mark.parametrize("clip, name, gender", [(MALE, "matched_guard", "male"), (FEMALE, "matched_scribe", "female")])
def test_a_sample_becomes_the_nearest_voice_of_its_gender(base_url, openai_client, eval_audio, consents,
                                                          clip, name, gender):
    consent_id = consents[clip]
    with open(eval_audio / clip, "rb") as sample:
        voice = openai_client.audio.voices.create(name=name, audio_sample=sample, consent=consent_id)
    stored = voice.to_dict()
    assert stored["id"] == name and stored["object"] == "voice" and stored["type"] == "audio_sample"
    assert stored["method"] == "matched" and "clone" not in str(stored).replace("not cloned", "")
    assert stored["base"][1] == gender[0]  # am_/bm_ for a man, af_/bf_ for a woman
    assert stored["match"]["consent"] == consent_id
    assert httpx.get(f"{base_url}{VOICES}/{name}").json() == stored
    listed = {v["id"]: v for v in httpx.get(base_url + VOICES).json()["data"]}
    assert listed[name]["method"] == "matched"

    # Usable like any voice, and it speaks near the sample's pitch (the base's own pitch varies by line).
    spoken = median_f0(speak(openai_client, name))
    sample_f0 = stored["match"]["sample"]["f0_hz"]
    assert abs(12 * math.log2(spoken / sample_f0)) < 3, (spoken, sample_f0)
    assert (spoken < 160) == (gender == "male")
    assert httpx.delete(f"{base_url}{VOICES}/{name}").status_code == 200


def wav_of_silence(seconds: float, rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(int(seconds * rate) * 2))
    return buf.getvalue()


def post(base_url, sample: bytes | None, **fields):
    files = {"audio_sample": ("sample.wav", sample, "audio/wav")} if sample is not None else None
    data = {k: v for k, v in ({"name": "npc_voice"} | fields).items() if v is not None}
    return httpx.post(base_url + VOICES, data=data, files=files or {"unused": ("x", b"", "text/plain")},
                      timeout=120)


@pytest.mark.parametrize("case, param, code", [
    ("no consent", "consent", "missing_consent"),
    ("unknown consent", "consent", "consent_not_found"),
    ("path as consent", "consent", "consent_not_found"),
    ("no sample", "audio_sample", None),
    ("not audio", "audio_sample", "invalid_audio"),
    ("too short", "audio_sample", "audio_sample_unusable"),
    ("silence", "audio_sample", "audio_sample_unusable"),
    ("too long", "audio_sample", "audio_too_long"),
    ("no name", "name", "invalid_value"),
    ("unsafe name", "name", "invalid_value"),
    ("reserved name", "name", "reserved_name"),
    ("prompt type", "type", "invalid_value"),
])
def test_bad_requests_are_400(base_url, eval_audio, consent_id, case, param, code):
    speech = (eval_audio / MALE).read_bytes()
    sample, fields = {
        "no consent": (speech, {}),
        "unknown consent": (speech, {"consent": "cons_" + "0" * 24}),
        "path as consent": (speech, {"consent": "../../etc/passwd"}),
        "no sample": (None, {"consent": consent_id}),
        "not audio": (b"not audio at all", {"consent": consent_id}),
        "too short": ((eval_audio / "sc_tflm_yes_1000ms.wav").read_bytes(), {"consent": consent_id}),
        "silence": (wav_of_silence(5), {"consent": consent_id}),
        "too long": (silent_flac(120), {"consent": consent_id}),
        "no name": (speech, {"consent": consent_id, "name": None}),
        "unsafe name": (speech, {"consent": consent_id, "name": "../guard"}),
        "reserved name": (speech, {"consent": consent_id, "name": "onyx"}),
        "prompt type": (speech, {"consent": consent_id, "type": "prompt"}),
    }[case]
    assert_openai_error(post(base_url, sample, **fields), 400, param, code)


@pytest.mark.parametrize("reader, model, clip", [("am_onyx", "tts-1-hd", FEMALE), ("alloy", "tts-1", MALE)])
def test_the_servers_own_voice_cannot_consent_for_another_speaker(base_url, eval_audio, reader, model, clip):
    """The attack: the server's own TTS reads the consent phrase (the phrase check passes), then a
    real person of a clearly different voice is sent as the sample."""
    consent = make_consent(base_url, reader, model)
    response = post(base_url, (eval_audio / clip).read_bytes(), consent=consent, name="stolen_voice")
    error = assert_openai_error(response, 400, "audio_sample", "consent_speaker_mismatch")
    assert "semitones apart" in error["message"]
    assert httpx.get(f"{base_url}{VOICES}/stolen_voice").status_code == 404


def test_a_consent_without_speaker_statistics_is_refused(base_url, eval_audio, consent_id, settings):
    """Consents stored before speakers were compared carry nothing to compare with."""
    import json

    path = settings.designs_dir / "consents" / f"{consent_id}.json"
    record = json.loads(path.read_text())
    legacy = "cons_" + "1" * 24
    (path.parent / f"{legacy}.json").write_text(json.dumps({k: v for k, v in record.items() if k != "speaker"}
                                                           | {"id": legacy}))
    error = assert_openai_error(post(base_url, (eval_audio / MALE).read_bytes(), consent=legacy), 400, "consent",
                                "consent_speaker_mismatch")
    assert "record the consent again" in error["message"]


def test_a_json_design_cannot_claim_to_be_matched(base_url):
    for claim in ({"method": "matched"}, {"method": "cloned"}, {"match": {"consent": "cons_x"}}):
        response = httpx.post(base_url + VOICES, json={"name": "liar", "base": "am_onyx"} | claim)
        assert_openai_error(response, 400, "method", "invalid_value")
