"""The pydantic wire types are the one source: forms parse through them, the
OpenAPI document is generated from them, and streams and IDs have one encoder."""

from __future__ import annotations

import json

import pytest
from starlette.datastructures import FormData

from voxhost.api import forms
from voxhost.api.app import create_app
from voxhost.api.protocol import sse
from voxhost.api.protocol.realtime import (
    Generation,
    SessionUpdateEvent,
    apply_session_update,
    parse_client_event,
    render,
    session_object,
)
from voxhost.api.protocol.speech import SpeechRequest
from voxhost.api.protocol.transcriptions import TranscriptionForm
from voxhost.errors import InvalidRequest
from voxhost.ids import new_id
from voxhost.realtime import events as ev
from voxhost.realtime.config import SessionConfig
from voxhost.realtime.vad import TurnDetection


@pytest.fixture(scope="module")
def openapi(settings) -> dict:
    return create_app(settings, load_models=False).openapi()


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/v1/audio/translations"])
def test_the_documented_form_is_the_parsed_model(openapi, path):
    body = openapi["paths"][path]["post"]["requestBody"]
    schema = body["content"]["multipart/form-data"]["schema"]
    assert body["required"] and schema["required"] == ["file"]
    assert schema["properties"]["file"] == {**schema["properties"]["file"], "type": "string", "format": "binary"}
    # Every field the parser accepts is documented (OpenAI's array spelling), and nothing else.
    documented = {name.removesuffix("[]") for name in schema["properties"]}
    assert documented == set(TranscriptionForm.model_fields)
    assert schema["properties"]["temperature"]["maximum"] == 1
    assert schema["properties"]["beam_size"] == {**schema["properties"]["beam_size"], "minimum": 1, "maximum": 10}
    assert all(prop.get("default", "") is not None for prop in schema["properties"].values())  # forms can't send null
    for status in ("400", "401", "413", "429", "503"):
        assert "ErrorResponse" in json.dumps(openapi["paths"][path]["post"]["responses"][status])


@pytest.mark.parametrize(("items", "param"), [
    ([("temperature", "nan")], "temperature"),
    ([("beam_size", "1000")], "beam_size"),
    ([("stream", "maybe")], "stream"),
    ([("response_format", "xml")], "response_format"),
    ([("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "sentence")], "timestamp_granularities"),
    ([("prompt", "x" * 5000)], "prompt"),
])
def test_a_bad_field_is_a_400_naming_it(items, param):
    with pytest.raises(InvalidRequest) as info:
        forms.parse(FormData(items), TranscriptionForm, file=b"")
    assert info.value.param == param and info.value.status_code == 400


def test_blank_fields_take_the_defaults_and_arrays_take_both_spellings():
    parsed = forms.parse(FormData([("beam_size", " "), ("timestamp_granularities", "word,segment")]),
                         TranscriptionForm, file=b"")
    assert parsed.beam_size is None and parsed.timestamp_granularities == ["word", "segment"]


def test_one_sse_encoder_keeps_text_readable():
    assert sse.encode({"type": "transcript.text.delta", "delta": "Ça va"}) == \
        'data: {"type": "transcript.text.delta", "delta": "Ça va"}\n\n'.encode()


def test_realtime_events_render_from_their_models():
    event = render(ev.TranscriptCompleted("item_1", "hello", 1.23456))
    assert event["type"] == "conversation.item.input_audio_transcription.completed"
    assert event["usage"] == {"type": "duration", "seconds": 1.235} and event["event_id"].startswith("event_")
    assert render(ev.Cleared()).keys() == {"type", "event_id"}


def test_ids_are_prefixed_and_unique():
    ids = {new_id("item") for _ in range(1000)}
    assert len(ids) == 1000 and all(i.startswith("item_") and len(i) == len("item_") + 22 for i in ids)


@pytest.mark.parametrize(("event", "param", "code"), [
    ({"type": "input_audio_buffer.append"}, "audio", "missing_required_parameter"),
    ({"type": "input_audio_buffer.append", "audio": 12}, "audio", "invalid_value"),
    ({"type": "session.update", "session": []}, "session", "invalid_type"),
    ({"type": "session.update", "session": {"type": "realtime", "audio": 5}}, "session.type", "invalid_value"),
    ({"type": "session.update", "session": {"audio": {"input": {"format": None}}}},
     "session.audio.input.format", "invalid_type"),
    ({"type": "session.update", "session": {"audio": {"input": {"format": {"rate": True}}}}},
     "session.audio.input.format.rate", "invalid_value"),
    ({"type": "transcription_session.update", "session": {"input_audio_transcription": {"keywords": "x"}}},
     "session.input_audio_transcription.keywords", "invalid_type"),
    ({"type": "transcription_session.update", "session": {"turn_detection": {"silence_duration_ms": "500"}}},
     "session.turn_detection.silence_duration_ms", "invalid_type"),
    ({"type": "transcription_session.update", "session": {"input_audio_transcription": {"language": "xx-YY"}}},
     "session.input_audio_transcription.language", "unsupported_language"),
])
def test_a_bad_realtime_event_is_an_error_naming_the_field(event, param, code):
    with pytest.raises(InvalidRequest) as info:
        parsed = parse_client_event(event)
        apply_session_update(parsed.session, SessionConfig())
    assert (info.value.param, info.value.code) == (param, code)


@pytest.mark.parametrize("generation", list(Generation))
@pytest.mark.parametrize("config", [
    SessionConfig(),
    SessionConfig(input_rate=16_000, model="whisper-tiny.en", language="de", prompt="Skyrim", hotwords="Jarl Balgruuf",
                  turn_detection=None, include=("item.input_audio_transcription.logprobs",)),
    SessionConfig(turn_detection=TurnDetection(type="semantic_vad", eagerness="high", silence_duration_ms=500)),
    SessionConfig(turn_detection=TurnDetection(threshold=0.7, prefix_padding_ms=100, silence_duration_ms=333)),
])
def test_a_session_the_server_describes_parses_back_to_itself(config, generation):
    """The session object and the update share their field names: a client can echo it back."""
    kind = "session.update" if generation is Generation.GA else "transcription_session.update"
    described = session_object(config, generation, "sess_1", 0)
    event = parse_client_event({"type": kind, "session": described})
    assert isinstance(event, SessionUpdateEvent) == (generation is Generation.GA)
    assert apply_session_update(event.session, SessionConfig()) == config


def test_an_update_keeps_what_it_does_not_name():
    config = SessionConfig(input_rate=16_000, language="de", turn_detection=None)
    update = parse_client_event({"type": "session.update", "session": {"type": "transcription",
                                                                       "include": ["x"]}}).session
    assert apply_session_update(update, config) == SessionConfig(input_rate=16_000, language="de",
                                                                  turn_detection=None, include=("x",))


def test_the_documented_speech_body_is_the_parsed_model(openapi):
    schema = openapi["components"]["schemas"]["SpeechRequest"]
    assert schema["properties"].keys() == SpeechRequest.model_fields.keys()
    assert schema["required"] == ["model", "input", "voice"]
    assert schema["properties"]["input"] == {**schema["properties"]["input"], "minLength": 1, "maxLength": 4096}
    assert schema["properties"]["stream_format"]["enum"] == ["audio", "sse"]
    # Required means a value, not null: no required field admits null.
    assert all("null" not in json.dumps(schema["properties"][name]) for name in schema["required"])
