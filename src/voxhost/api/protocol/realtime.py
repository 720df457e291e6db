"""Wire format of WS /v1/realtime?intent=transcription (OpenAI Realtime).

OpenAI has two generations and clients speak both:
- beta: `transcription_session.update` with `input_audio_format`,
  `input_audio_transcription`, `turn_detection`; answered by
  `transcription_session.created/updated`;
- GA: `session.update` with `session.type = "transcription"` and
  `audio.input.{format, transcription, turn_detection}`; answered by
  `session.created/updated`.
Both parse into one SessionConfig, and replies use the generation the client
last spoke. Audio and transcript events are the same in both.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field

from voxhost.errors import InvalidRequest, VoxhostError
from voxhost.ids import new_id
from voxhost.realtime import events as ev
from voxhost.realtime.audio import SUPPORTED_RATES
from voxhost.realtime.config import SessionConfig
from voxhost.realtime.vad import TurnDetection
from voxhost.stt.languages import MAX_TAG_CHARS, whisper_language


class Generation(str, Enum):
    BETA = "beta"
    GA = "ga"


CLIENT_EVENTS = (
    "session.update",
    "transcription_session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)

# semantic_vad has no model here: approximated by server_vad with a silence
# wait per eagerness (OpenAI's are adaptive, up to 8/4/2 s).
_EAGERNESS_SILENCE_MS = {"low": 1200, "medium": 800, "auto": 800, "high": 500}


def event_id() -> str:
    return new_id("event")


def decode_client_event(text: str) -> dict:
    """JSON text -> an event object (its `type` not yet checked)."""
    try:
        event = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The event is not valid JSON: {exc.msg}.", code="invalid_json") from exc
    if not isinstance(event, dict):
        raise InvalidRequest("An event must be a JSON object.", code="invalid_json")
    if not isinstance(event.get("event_id"), str):
        event["event_id"] = None
    return event


def check_client_event(event: dict) -> str:
    """The event's type, if it is one this server handles."""
    kind = event.get("type")
    if not isinstance(kind, str):
        raise InvalidRequest("The event has no 'type'.", param="type", code="missing_required_parameter")
    if kind not in CLIENT_EVENTS:
        raise InvalidRequest(
            f"Invalid value: '{kind[:100]}'. Supported values are: {', '.join(repr(e) for e in CLIENT_EVENTS)}.",
            param="type",
            code="invalid_value",
        )
    return kind


# --- session.update / transcription_session.update -----------------------------

def _obj(value: Any, param: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{param}' must be an object.", param=param, code="invalid_type")
    return value


def _opt_str(data: dict, key: str, param: str, max_len: int = 4096) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{param}.{key}' must be a string.", param=f"{param}.{key}", code="invalid_type")
    if len(value) > max_len:
        raise InvalidRequest(f"'{param}.{key}' is longer than {max_len} characters.", param=f"{param}.{key}")
    return value or None


def _number(data: dict, key: str, param: str, default, low, high, kind=float):
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise InvalidRequest(
            f"'{param}.{key}' must be a number between {low} and {high}.", param=f"{param}.{key}",
            code="invalid_value",
        )
    return kind(value)


def _parse_format(value: Any, param: str) -> int:
    """The input sample rate a format names. Only PCM16 is accepted."""
    if isinstance(value, str):
        if value == "pcm16":
            return 24_000
        raise InvalidRequest(
            f"Unsupported audio format '{value[:40]}': voxhost accepts 'pcm16' (24 kHz, or 16 kHz "
            "with {\"type\": \"audio/pcm\", \"rate\": 16000}).", param=param, code="invalid_value",
        )
    fmt = _obj(value, param)
    if fmt.get("type", "audio/pcm") != "audio/pcm":
        raise InvalidRequest(
            f"Unsupported audio format '{str(fmt.get('type'))[:40]}': voxhost accepts 'audio/pcm' (PCM16).",
            param=f"{param}.type", code="invalid_value",
        )
    rate = fmt.get("rate", 24_000)
    if rate not in SUPPORTED_RATES or isinstance(rate, bool):
        raise InvalidRequest(
            f"Unsupported sample rate {str(rate)[:20]}: use 24000 (OpenAI's) or 16000.",
            param=f"{param}.rate", code="invalid_value",
        )
    return int(rate)


def _parse_transcription(value: Any, param: str, config: SessionConfig) -> SessionConfig:
    if value is None:  # "off" makes no sense for a transcription session: back to defaults
        return replace(config, model="whisper-1", language=None, prompt=None, hotwords=None)
    data = _obj(value, param)
    hotwords = _opt_str(data, "hotwords", param)
    keywords = data.get("keywords")
    if keywords is not None:
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise InvalidRequest(f"'{param}.keywords' must be a list of strings.", param=f"{param}.keywords")
        hotwords = " ".join([*(hotwords.split() if hotwords else []), *keywords])[:4096] or None
    # Refused here, at session.update, not on every later turn.
    language = whisper_language(_opt_str(data, "language", param, MAX_TAG_CHARS), param=f"{param}.language")
    return replace(
        config,
        model=_opt_str(data, "model", param, 200) or "whisper-1",
        language=language,
        prompt=_opt_str(data, "prompt", param),
        hotwords=hotwords,
    )


def _parse_turn_detection(value: Any, param: str) -> TurnDetection | None:
    if value is None:
        return None
    data = _obj(value, param)
    kind = data.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise InvalidRequest(
            f"Invalid turn detection type '{str(kind)[:40]}': use 'server_vad', 'semantic_vad' or null.",
            param=f"{param}.type", code="invalid_value",
        )
    default = TurnDetection()
    if kind == "semantic_vad":
        eagerness = data.get("eagerness") or "auto"
        if eagerness not in _EAGERNESS_SILENCE_MS:
            raise InvalidRequest("'eagerness' must be low, medium, high or auto.", param=f"{param}.eagerness")
        return TurnDetection(type=kind, eagerness=eagerness, silence_duration_ms=_EAGERNESS_SILENCE_MS[eagerness])
    return TurnDetection(
        type=kind,
        threshold=_number(data, "threshold", param, default.threshold, 0.0, 1.0),
        prefix_padding_ms=_number(data, "prefix_padding_ms", param, default.prefix_padding_ms, 0, 5000, int),
        silence_duration_ms=_number(data, "silence_duration_ms", param, default.silence_duration_ms, 0, 10_000, int),
    )


def parse_session_update(event: dict, config: SessionConfig, generation: Generation) -> SessionConfig:
    """Apply the fields present in an update to `config` (absent fields keep their value)."""
    session = _obj(event.get("session", {}), "session")
    if generation is Generation.GA and session.get("type", "transcription") != "transcription":
        raise InvalidRequest(
            "voxhost serves transcription sessions only: set session.type to 'transcription' "
            "(connect with ?intent=transcription).", param="session.type", code="invalid_value",
        )
    audio_input = _obj(_obj(session.get("audio", {}), "session.audio").get("input", {}), "session.audio.input")
    # GA names first, the beta generation's flat names second.
    if "format" in audio_input:
        config = replace(config, input_rate=_parse_format(audio_input["format"], "session.audio.input.format"))
    elif "input_audio_format" in session:
        config = replace(config, input_rate=_parse_format(session["input_audio_format"], "session.input_audio_format"))
    if "transcription" in audio_input:
        config = _parse_transcription(audio_input["transcription"], "session.audio.input.transcription", config)
    elif "input_audio_transcription" in session:
        config = _parse_transcription(session["input_audio_transcription"], "session.input_audio_transcription", config)
    if "turn_detection" in audio_input:
        config = replace(config, turn_detection=_parse_turn_detection(
            audio_input["turn_detection"], "session.audio.input.turn_detection"))
    elif "turn_detection" in session:
        config = replace(config, turn_detection=_parse_turn_detection(session["turn_detection"], "session.turn_detection"))
    if "include" in session:
        include = session["include"] or []
        if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
            raise InvalidRequest("'session.include' must be a list of strings.", param="session.include")
        config = replace(config, include=tuple(include))
    return config


# --- server events --------------------------------------------------------------

def _turn_detection_wire(td: TurnDetection | None) -> dict | None:
    if td is None:
        return None
    if td.type == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": td.eagerness}
    return {
        "type": "server_vad",
        "threshold": td.threshold,
        "prefix_padding_ms": td.prefix_padding_ms,
        "silence_duration_ms": td.silence_duration_ms,
    }


def _transcription_wire(c: SessionConfig) -> dict:
    body = {"model": c.model, "language": c.language, "prompt": c.prompt}
    if c.hotwords:
        body["hotwords"] = c.hotwords
    return body


def session_object(c: SessionConfig, generation: Generation, session_id: str, expires_at: int) -> dict:
    if generation is Generation.GA:
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "expires_at": expires_at,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": c.input_rate},
                    "transcription": _transcription_wire(c),
                    "noise_reduction": None,
                    "turn_detection": _turn_detection_wire(c.turn_detection),
                }
            },
            "include": list(c.include),
        }
    return {
        "id": session_id,
        "object": "realtime.transcription_session",
        "expires_at": expires_at,
        "input_audio_format": "pcm16" if c.input_rate == 24_000 else {"type": "audio/pcm", "rate": c.input_rate},
        "input_audio_transcription": _transcription_wire(c),
        "turn_detection": _turn_detection_wire(c.turn_detection),
        "input_audio_noise_reduction": None,
        "include": list(c.include),
        "modalities": ["text"],
        "client_secret": None,
    }


def session_event(kind: str, c: SessionConfig, generation: Generation, session_id: str, expires_at: int) -> dict:
    """`kind`: 'created' or 'updated'."""
    prefix = "session" if generation is Generation.GA else "transcription_session"
    return {
        "type": f"{prefix}.{kind}",
        "event_id": event_id(),
        "session": session_object(c, generation, session_id, expires_at),
    }


class _ServerEvent(BaseModel):
    """Every server event: its `type` (a Literal per event) and a fresh `event_id`."""

    type: str
    event_id: str = Field(default_factory=event_id)


class RealtimeErrorDetail(BaseModel):
    """OpenAI's error object as realtime events carry it: the REST body's fields
    plus the `event_id` of the client event that caused it."""

    type: str
    code: str | None
    message: str
    param: str | None
    event_id: str | None = None

    @classmethod
    def of(cls, error: VoxhostError, client_event_id: str | None = None) -> "RealtimeErrorDetail":
        return cls(**error.to_dict()["error"], event_id=client_event_id)


class SpeechStartedEvent(_ServerEvent):
    type: Literal["input_audio_buffer.speech_started"] = "input_audio_buffer.speech_started"
    audio_start_ms: int
    item_id: str


class SpeechStoppedEvent(_ServerEvent):
    type: Literal["input_audio_buffer.speech_stopped"] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int
    item_id: str


class CommittedEvent(_ServerEvent):
    type: Literal["input_audio_buffer.committed"] = "input_audio_buffer.committed"
    previous_item_id: str | None
    item_id: str


class ClearedEvent(_ServerEvent):
    type: Literal["input_audio_buffer.cleared"] = "input_audio_buffer.cleared"


class TranscriptionDeltaEvent(_ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.delta"] = (
        "conversation.item.input_audio_transcription.delta")
    item_id: str
    content_index: int = 0
    delta: str


class DurationUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class TranscriptionCompletedEvent(_ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.completed"] = (
        "conversation.item.input_audio_transcription.completed")
    item_id: str
    content_index: int = 0
    transcript: str
    usage: DurationUsage


class TranscriptionFailedEvent(_ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.failed"] = (
        "conversation.item.input_audio_transcription.failed")
    item_id: str
    content_index: int = 0
    error: RealtimeErrorDetail


class ErrorEvent(_ServerEvent):
    type: Literal["error"] = "error"
    error: RealtimeErrorDetail


def _wire_model(event: ev.Event) -> _ServerEvent:
    if isinstance(event, ev.SpeechStarted):
        return SpeechStartedEvent(audio_start_ms=event.audio_start_ms, item_id=event.item_id)
    if isinstance(event, ev.SpeechStopped):
        return SpeechStoppedEvent(audio_end_ms=event.audio_end_ms, item_id=event.item_id)
    if isinstance(event, ev.Committed):
        return CommittedEvent(previous_item_id=event.previous_item_id, item_id=event.item_id)
    if isinstance(event, ev.Cleared):
        return ClearedEvent()
    if isinstance(event, ev.TranscriptDelta):
        return TranscriptionDeltaEvent(item_id=event.item_id, delta=event.delta)
    if isinstance(event, ev.TranscriptCompleted):
        return TranscriptionCompletedEvent(item_id=event.item_id, transcript=event.transcript,
                                           usage=DurationUsage(seconds=round(event.audio_seconds, 3)))
    if isinstance(event, ev.TranscriptFailed):
        return TranscriptionFailedEvent(item_id=event.item_id, error=RealtimeErrorDetail.of(event.error))
    if isinstance(event, ev.Error):
        return ErrorEvent(error=RealtimeErrorDetail.of(event.error, event.client_event_id))
    raise TypeError(f"unknown event {event!r}")


def render(event: ev.Event) -> dict:
    """A session event as the JSON object sent to the client."""
    return _wire_model(event).model_dump(mode="json")


def error_event(error: VoxhostError, client_event_id: str | None = None) -> dict:
    return render(ev.Error(error, client_event_id))


def expires_at(max_seconds: float) -> int:
    return int(time.time() + max_seconds)
