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

The pydantic models below are the wire types, both ways: client events are
validated by them (a bad field is an `error` event whose `param` is the
field's path, as for REST forms), and server events are rendered from them.
"""

from __future__ import annotations

import binascii
import json
import time
from base64 import b64decode
from dataclasses import replace
from enum import Enum
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, ValidationError
from pydantic_core import PydanticCustomError

from voxhost.errors import InvalidRequest, VoxhostError, invalid_request
from voxhost.ids import new_id
from voxhost.realtime import events as ev
from voxhost.realtime.audio import SUPPORTED_RATES
from voxhost.realtime.config import SessionConfig
from voxhost.realtime.vad import TurnDetection
from voxhost.stt.languages import MAX_TAG_CHARS, whisper_language


class Generation(str, Enum):
    BETA = "beta"
    GA = "ga"


# semantic_vad has no model here: approximated by server_vad with a silence
# wait per eagerness (OpenAI's are adaptive, up to 8/4/2 s).
_EAGERNESS_SILENCE_MS = {"low": 1200, "medium": 800, "auto": 800, "high": 500}


def event_id() -> str:
    return new_id("event")


def _refuse(message: str) -> PydanticCustomError:
    """A validation failure with our own message (a ValueError's would start 'Value error, ')."""
    return PydanticCustomError("invalid_value", message)


class _ClientWire(BaseModel):
    # Clients send fields voxhost has no use for (noise_reduction, tools, ...):
    # ignored, as OpenAI's own server ignores what a session type doesn't use.
    model_config = ConfigDict(extra="ignore")


# --- session.update / transcription_session.update -----------------------------

def _pcm16_name(value: Any) -> Any:
    """The beta generation names its one PCM format by a string."""
    if isinstance(value, str):
        if value != "pcm16":
            raise _refuse(
                f"Unsupported audio format '{value[:40]}': voxhost accepts 'pcm16' (24 kHz, or 16 kHz "
                "with {\"type\": \"audio/pcm\", \"rate\": 16000}).")
        return {"type": "audio/pcm", "rate": 24_000}
    return value


def _supported_rate(rate: Any) -> Any:
    if isinstance(rate, bool) or rate not in SUPPORTED_RATES:
        raise _refuse(f"Unsupported sample rate {str(rate)[:20]}: use 24000 (OpenAI's) or 16000.")
    return int(rate)


class AudioFormat(_ClientWire):
    """Only PCM16 is accepted; `rate` is the input sample rate."""

    type: Literal["audio/pcm"] = "audio/pcm"
    rate: Annotated[int, BeforeValidator(_supported_rate)] = 24_000


# 'pcm16' or {"type": "audio/pcm", "rate": ...}: the error's param is the field
# itself for a bad name, and `.type` / `.rate` inside an object.
InputFormat = Annotated[AudioFormat, BeforeValidator(_pcm16_name)]


class InputTranscription(_ClientWire):
    model: Annotated[str, Field(max_length=200)] | None = None
    language: Annotated[str, Field(max_length=MAX_TAG_CHARS)] | None = None
    prompt: Annotated[str, Field(max_length=4096)] | None = None
    hotwords: Annotated[str, Field(max_length=4096)] | None = None
    keywords: list[str] | None = None  # OpenAI's name for what faster-whisper calls hotwords


# Strict: JSON booleans and numeric strings are not numbers here.
_Probability = Annotated[StrictFloat, Field(ge=0.0, le=1.0)] | None
_PrefixMs = Annotated[StrictFloat, Field(ge=0, le=5000)] | None
_SilenceMs = Annotated[StrictFloat, Field(ge=0, le=10_000)] | None


class TurnDetectionOptions(_ClientWire):
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: _Probability = None
    prefix_padding_ms: _PrefixMs = None
    silence_duration_ms: _SilenceMs = None
    eagerness: Literal["low", "medium", "high", "auto"] | None = None


class AudioInput(_ClientWire):
    format: InputFormat = AudioFormat()
    transcription: InputTranscription | None = None
    turn_detection: TurnDetectionOptions | None = None


class AudioOptions(_ClientWire):
    input: AudioInput = AudioInput()


class _SessionFields(_ClientWire):
    """The session fields both generations accept; a field absent from the update keeps its value."""

    type: Any = None  # checked by GA sessions (first, as it decides what the rest means), ignored by beta
    audio: AudioOptions = AudioOptions()
    input_audio_format: InputFormat = AudioFormat()
    input_audio_transcription: InputTranscription | None = None
    turn_detection: TurnDetectionOptions | None = None
    include: list[str] | None = None


def _transcription_only(value: Any) -> Any:
    if value != "transcription":
        raise _refuse("voxhost serves transcription sessions only: set session.type to 'transcription' "
                      "(connect with ?intent=transcription).")
    return value


class GaSession(_SessionFields):
    type: Annotated[str, BeforeValidator(_transcription_only)] = "transcription"


class BetaSession(_SessionFields):
    """No `type`: a beta transcription session is one by its event's name."""


class _ClientEvent(_ClientWire):
    event_id: str | None = None


class SessionUpdateEvent(_ClientEvent):
    type: Literal["session.update"] = "session.update"
    session: GaSession = GaSession()


class TranscriptionSessionUpdateEvent(_ClientEvent):
    type: Literal["transcription_session.update"] = "transcription_session.update"
    session: BetaSession = BetaSession()


def _base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _refuse("'audio' must be a base64 string of PCM16 audio.")
    try:
        return b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("'audio' is not valid base64.") from None


class AppendEvent(_ClientEvent):
    type: Literal["input_audio_buffer.append"] = "input_audio_buffer.append"
    audio: Annotated[bytes, BeforeValidator(_base64)] = Field(description="PCM16 audio, base64 on the wire")


class CommitEvent(_ClientEvent):
    type: Literal["input_audio_buffer.commit"] = "input_audio_buffer.commit"


class ClearEvent(_ClientEvent):
    type: Literal["input_audio_buffer.clear"] = "input_audio_buffer.clear"


ClientEvent = SessionUpdateEvent | TranscriptionSessionUpdateEvent | AppendEvent | CommitEvent | ClearEvent
_CLIENT_EVENTS: dict[str, type[_ClientEvent]] = {
    m.model_fields["type"].default: m
    for m in (SessionUpdateEvent, TranscriptionSessionUpdateEvent, AppendEvent, CommitEvent, ClearEvent)
}
CLIENT_EVENTS = tuple(_CLIENT_EVENTS)


def decode_client_event(text: str) -> dict:
    """JSON text -> an event object (its `type` not yet checked), with its
    `event_id` if it has a usable one, so that an error can name it."""
    try:
        event = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.reason
        raise InvalidRequest(f"The event is not valid JSON: {reason}.", code="invalid_json") from exc
    if not isinstance(event, dict):
        raise InvalidRequest("An event must be a JSON object.", code="invalid_json")
    if not isinstance(event.get("event_id"), str):
        event["event_id"] = None
    return event


def parse_client_event(event: dict) -> ClientEvent:
    """The event as its wire model, if it is one this server handles."""
    kind = event.get("type")
    if not isinstance(kind, str):
        raise InvalidRequest("The event has no 'type'.", param="type", code="missing_required_parameter")
    model = _CLIENT_EVENTS.get(kind)
    if model is None:
        raise InvalidRequest(
            f"Invalid value: '{kind[:100]}'. Supported values are: {', '.join(repr(e) for e in CLIENT_EVENTS)}.",
            param="type",
            code="invalid_value",
        )
    try:
        return cast(ClientEvent, model.model_validate(event))
    except ValidationError as exc:  # `param` is the field's path, e.g. session.audio.input.format.rate
        raise invalid_request(exc.errors()) from None


def _apply_transcription(options: InputTranscription | None, param: str, config: SessionConfig) -> SessionConfig:
    if options is None:  # "off" makes no sense for a transcription session: back to defaults
        return replace(config, model="whisper-1", language=None, prompt=None, hotwords=None)
    hotwords = options.hotwords or None
    if options.keywords is not None:
        hotwords = " ".join([*(hotwords.split() if hotwords else []), *options.keywords])[:4096] or None
    return replace(
        config,
        model=options.model or "whisper-1",
        # Refused here, at session.update, not on every later turn.
        language=whisper_language(options.language or None, param=f"{param}.language"),
        prompt=options.prompt or None,
        hotwords=hotwords,
    )


def _turn_detection(options: TurnDetectionOptions | None) -> TurnDetection | None:
    if options is None:
        return None
    if options.type == "semantic_vad":
        eagerness = options.eagerness or "auto"
        return TurnDetection(type="semantic_vad", eagerness=eagerness,
                             silence_duration_ms=_EAGERNESS_SILENCE_MS[eagerness])
    default = TurnDetection()

    def given(value: float | None, fallback):
        return fallback if value is None else type(fallback)(value)

    return TurnDetection(
        type="server_vad",
        threshold=given(options.threshold, default.threshold),
        prefix_padding_ms=given(options.prefix_padding_ms, default.prefix_padding_ms),
        silence_duration_ms=given(options.silence_duration_ms, default.silence_duration_ms),
    )


def apply_session_update(session: _SessionFields, config: SessionConfig) -> SessionConfig:
    """Apply the fields present in an update to `config` (absent fields keep their value).
    GA names first, the beta generation's flat names second."""
    audio_input = session.audio.input
    given, given_ga = session.model_fields_set, audio_input.model_fields_set
    if "format" in given_ga:
        config = replace(config, input_rate=audio_input.format.rate)
    elif "input_audio_format" in given:
        config = replace(config, input_rate=session.input_audio_format.rate)
    if "transcription" in given_ga:
        config = _apply_transcription(audio_input.transcription, "session.audio.input.transcription", config)
    elif "input_audio_transcription" in given:
        config = _apply_transcription(session.input_audio_transcription, "session.input_audio_transcription", config)
    if "turn_detection" in given_ga:
        config = replace(config, turn_detection=_turn_detection(audio_input.turn_detection))
    elif "turn_detection" in given:
        config = replace(config, turn_detection=_turn_detection(session.turn_detection))
    if "include" in given:
        config = replace(config, include=tuple(session.include or ()))
    return config


# --- server events --------------------------------------------------------------

class ServerVadWire(BaseModel):
    type: Literal["server_vad"] = "server_vad"
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int


class SemanticVadWire(BaseModel):
    type: Literal["semantic_vad"] = "semantic_vad"
    eagerness: str


class TranscriptionWire(BaseModel):
    model: str
    language: str | None
    prompt: str | None
    # Extension (faster-whisper's hotwords): shown only when set.
    hotwords: str | None = Field(None, exclude_if=lambda value: value is None)


class PcmFormatWire(BaseModel):
    type: Literal["audio/pcm"] = "audio/pcm"
    rate: int


class AudioInputWire(BaseModel):
    format: PcmFormatWire
    transcription: TranscriptionWire
    noise_reduction: None = None
    turn_detection: ServerVadWire | SemanticVadWire | None


class AudioWire(BaseModel):
    input: AudioInputWire


class GaSessionObject(BaseModel):
    """`session` of GA `session.created/updated`."""

    type: Literal["transcription"] = "transcription"
    object: Literal["realtime.transcription_session"] = "realtime.transcription_session"
    id: str
    expires_at: int
    audio: AudioWire
    include: list[str]


class BetaSessionObject(BaseModel):
    """`session` of beta `transcription_session.created/updated`."""

    id: str
    object: Literal["realtime.transcription_session"] = "realtime.transcription_session"
    expires_at: int
    input_audio_format: Literal["pcm16"] | PcmFormatWire
    input_audio_transcription: TranscriptionWire
    turn_detection: ServerVadWire | SemanticVadWire | None
    input_audio_noise_reduction: None = None
    include: list[str]
    modalities: list[str] = ["text"]
    client_secret: None = None


def _turn_detection_wire(td: TurnDetection | None) -> ServerVadWire | SemanticVadWire | None:
    if td is None:
        return None
    if td.type == "semantic_vad":
        return SemanticVadWire(eagerness=td.eagerness)
    return ServerVadWire(threshold=td.threshold, prefix_padding_ms=td.prefix_padding_ms,
                         silence_duration_ms=td.silence_duration_ms)


def session_object(c: SessionConfig, generation: Generation, session_id: str, expires_at: int) -> dict:
    transcription = TranscriptionWire(model=c.model, language=c.language, prompt=c.prompt, hotwords=c.hotwords)
    if generation is Generation.GA:
        session: BaseModel = GaSessionObject(
            id=session_id, expires_at=expires_at, include=list(c.include),
            audio=AudioWire(input=AudioInputWire(
                format=PcmFormatWire(rate=c.input_rate), transcription=transcription,
                turn_detection=_turn_detection_wire(c.turn_detection))),
        )
    else:
        session = BetaSessionObject(
            id=session_id, expires_at=expires_at, include=list(c.include),
            input_audio_format="pcm16" if c.input_rate == 24_000 else PcmFormatWire(rate=c.input_rate),
            input_audio_transcription=transcription,
            turn_detection=_turn_detection_wire(c.turn_detection),
        )
    return session.model_dump(mode="json")


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
    def of(cls, error: VoxhostError, client_event_id: str | None = None) -> RealtimeErrorDetail:
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
    # Extension (OpenAI's event has neither): the committed audio's span on the session's
    # clock, so a client can tell which of its audio a final covers (docs/architecture.md,
    # "Surviving a lost server").
    audio_start_ms: int | None = None
    audio_end_ms: int | None = None


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


class TranscriptionLanguageWire(BaseModel):
    """OpenAI's `TranscriptionLanguage`: a language in the audio, by its ISO-639-1 code."""

    code: str


class TranscriptionCompletedEvent(_ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.completed"] = (
        "conversation.item.input_audio_transcription.completed")
    item_id: str
    content_index: int = 0
    transcript: str
    usage: DurationUsage
    # The GA event's `languages` (OpenAI fills it for gpt-transcribe; the beta event has no such
    # field, so there it is an extension of the same name and shape): the language the turn was
    # transcribed in, the session's or the one Whisper detected for the turn; [] when nothing was said.
    languages: list[TranscriptionLanguageWire]


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
        return CommittedEvent(previous_item_id=event.previous_item_id, item_id=event.item_id,
                              audio_start_ms=event.audio_start_ms, audio_end_ms=event.audio_end_ms)
    if isinstance(event, ev.Cleared):
        return ClearedEvent()
    if isinstance(event, ev.TranscriptDelta):
        return TranscriptionDeltaEvent(item_id=event.item_id, delta=event.delta)
    if isinstance(event, ev.TranscriptCompleted):
        return TranscriptionCompletedEvent(
            item_id=event.item_id, transcript=event.transcript,
            usage=DurationUsage(seconds=round(event.audio_seconds, 3)),
            languages=[TranscriptionLanguageWire(code=event.language)] if event.language else [])
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
