"""Every bad /v1/audio/speech request gets a 4xx in OpenAI's error shape, and the
server keeps serving."""

from __future__ import annotations

import httpx
import openai
import pytest

from voxhost_testing import assert_openai_error

URL = "/v1/audio/speech"
GOOD = {"model": "tts-1", "voice": "alloy", "input": "Halt!"}


def _assert_error(response: httpx.Response, status: int, param: str | None, code: str | None = None) -> dict:
    return assert_openai_error(response, status, param, code)


@pytest.fixture
def still_serves(base_url):
    """After each bad request, a good one must still work."""
    yield
    good = httpx.post(base_url + URL, json=GOOD | {"response_format": "wav"}, timeout=120)
    assert good.status_code == 200 and good.content[:4] == b"RIFF" and len(good.content) > 5000


@pytest.mark.usefixtures("still_serves")
@pytest.mark.parametrize(
    "change, param, code",
    [
        ({"input": ""}, "input", "empty_input"),
        ({"input": "   \n\t  "}, "input", "empty_input"),
        ({"input": "a" * 4097}, "input", "string_above_max_length"),
        ({"input": "Open the gate\x00 now"}, "input", "invalid_characters"),
        ({"input": "\x1b[31mred\x1b[0m"}, "input", "invalid_characters"),
        ({"input": "🙂🎉🐉"}, "input", "unpronounceable_input"),
        ({"input": "?!?! ... ***"}, "input", "unpronounceable_input"),
        # Mandarin is spoken (by Kokoro), but not by hibari's voice, whose G2P reads English only
        ({"input": "你好世界", "model": "tts-1", "voice": "heart"}, "language", "unsupported_language"),
        ({"input": ["a", "list"]}, "input", "invalid_type"),
        ({"voice": "gandalf"}, "voice", "voice_not_found"),
        ({"voice": "jf_alpha(2)+nobody(1)"}, "voice", "voice_not_found"),
        ({"voice": ""}, "voice", "voice_not_found"),
        ({"model": "tts-9000"}, "model", "model_not_found"),
        ({"speed": 0.2}, "speed", "invalid_value"),
        ({"speed": 4.01}, "speed", "invalid_value"),
        ({"speed": "fast"}, "speed", "invalid_type"),
        ({"speed": True}, "speed", "invalid_type"),  # not 1.0: a probe got audio for it
        ({"model": ""}, "model", "invalid_value"),  # not the default engine under no name
        ({"model": 5}, "model", "invalid_type"),
        ({"response_format": "ogg"}, "response_format", "unsupported_format"),
        ({"stream_format": "websocket"}, "stream_format", "invalid_value"),
    ],
)
def test_bad_request_is_a_clear_400(base_url, change, param, code):
    _assert_error(httpx.post(base_url + URL, json=GOOD | change, timeout=60), 400, param, code)


@pytest.mark.usefixtures("still_serves")
def test_not_json_is_a_400(base_url):
    response = httpx.post(base_url + URL, content=b"input=hello", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_openai_sdk_raises_its_own_error_types(openai_client):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.audio.speech.create(model="tts-1", voice="alloy", input="x" * 5000)
    assert caught.value.body["code"] == "string_above_max_length"
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.audio.speech.create(model="tts-1", voice="nobody", input="Halt!")
    assert caught.value.body["param"] == "voice"


def test_long_valid_input_at_the_limit_is_accepted(openai_client):
    text = ("Halt! " * 700)[:4096]
    with openai_client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="pcm"
    ) as response:
        assert response.status_code == 200
        first = next(response.iter_bytes())
        assert len(first) > 1000  # started; the rest is not needed
