"""OpenAI's consent upload, POST /v1/audio/voice_consents: the recording is the consent
phrase spoken by a real engine (hibari, through the OpenAI SDK) or real speech from
shared/eval; the bundled Whisper decides. Every bad input is a 400 in OpenAI's shape."""

from __future__ import annotations

import httpx
import pytest

from voxhost.tts.consent import CONSENT_PHRASE
from voxhost_testing import assert_openai_error

CONSENTS = "/v1/audio/voice_consents"


@pytest.fixture(scope="module")
def spoken_phrase(openai_client) -> bytes:
    return openai_client.audio.speech.create(model="tts-1", voice="alloy", input=CONSENT_PHRASE,
                                             response_format="wav").read()


def post(base_url, recording: bytes | None, **fields):
    files = {"recording": ("consent.wav", recording, "audio/wav")} if recording is not None else None
    data = {"name": "Jane Doe", "language": "en-US"} | fields
    return httpx.post(base_url + CONSENTS, data={k: v for k, v in data.items() if v is not None},
                      files=files, timeout=120)


def test_the_consent_phrase_is_accepted(base_url, spoken_phrase, settings):
    response = post(base_url, spoken_phrase)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "audio.voice_consent" and body["id"].startswith("cons_")
    assert body["name"] == "Jane Doe" and body["language"] == "en-US" and body["created_at"] > 0
    # The record only, never the audio. Other tests in the session record consents too.
    kept = [p for p in (settings.designs_dir / "consents").iterdir() if p.name.startswith(body["id"])]
    assert [p.name for p in kept] == [body["id"] + ".json"]
    assert all(p.suffix == ".json" for p in (settings.designs_dir / "consents").iterdir())


def test_another_sentence_is_refused(base_url, short_clip):
    response = post(base_url, short_clip.read_bytes())  # real speech, not the phrase
    error = assert_openai_error(response, 400, "recording", "consent_phrase_mismatch")
    assert CONSENT_PHRASE in error["message"]


@pytest.mark.parametrize("fields, param", [
    ({"name": None}, "name"), ({"name": " "}, "name"), ({"name": "x" * 200}, "name"),
    ({"language": None}, "language"), ({"language": "fr"}, "language"),
])
def test_bad_fields_are_400(base_url, spoken_phrase, fields, param):
    assert_openai_error(post(base_url, spoken_phrase, **fields), 400, param)


def test_bad_recordings_are_400(base_url):
    assert_openai_error(post(base_url, None), 400, "recording")
    assert post(base_url, b"not audio at all").status_code == 400
    assert httpx.post(base_url + CONSENTS, json={"name": "x"}).status_code == 400
