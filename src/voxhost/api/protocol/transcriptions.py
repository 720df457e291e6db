"""Wire formats of /v1/audio/transcriptions and /translations, as OpenAI sends them."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from voxhost.engines.stt.base import Segment, Transcript
from voxhost.stt.languages import language_name

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(ResponseFormat)

# Whisper keeps only the last 223 prompt tokens (~1,000 characters); a 1 MB
# prompt or hotwords field was tokenised on every window and held the
# decoder for minutes (hostile probe), so longer text is refused.
MAX_PROMPT_CHARS = 4096

_Unset = SkipJsonSchema[None]  # optional on the wire; absent means "the server's default"


def _no_null_defaults(schema: dict) -> None:
    """An absent field is documented as absent, not as `null` (a form can't send null)."""
    for prop in schema["properties"].values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class TranscriptionForm(BaseModel):
    """The multipart fields of /v1/audio/transcriptions and /translations:
    OpenAI's, then voxhost's extensions. Forms are parsed into this model
    (api/forms.py) and the OpenAPI request body is generated from it."""

    model_config = ConfigDict(extra="ignore", title="TranscriptionRequest", json_schema_extra=_no_null_defaults)

    file: Annotated[bytes, WithJsonSchema({"type": "string", "format": "binary"})] = Field(
        description="The audio file (any format FFmpeg decodes).")
    model: str | _Unset = Field(None, json_schema_extra={"default": "whisper-1"})
    language: str | _Unset = Field(None, description="ISO-639-1 or a BCP-47 tag such as en-US.")
    prompt: Annotated[str, Field(max_length=MAX_PROMPT_CHARS)] | _Unset = None
    response_format: ResponseFormat = "json"
    temperature: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    timestamp_granularities: list[Literal["word", "segment"]] = Field(
        default_factory=list, serialization_alias="timestamp_granularities[]")
    stream: bool = False
    hotwords: Annotated[str, Field(max_length=MAX_PROMPT_CHARS)] | _Unset = Field(
        None, description="voxhost extension: game vocabulary")
    vad_filter: bool | _Unset = Field(None, description="voxhost extension (default: VOXHOST_STT_VAD_FILTER)")
    beam_size: Annotated[int, Field(ge=1, le=10)] | _Unset = Field(
        None, description="voxhost extension (default: VOXHOST_STT_BEAM_SIZE)")

    @classmethod
    def openapi_request_body(cls) -> dict:
        # Serialization mode names the array `timestamp_granularities[]`, as
        # OpenAI's SDKs send it; validation takes either spelling (api/forms.py).
        return {"requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": cls.model_json_schema(by_alias=True, mode="serialization")}}}}

MEDIA_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


def _timestamp(seconds: float, decimal: str) -> str:
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def to_srt(segments: list[Segment]) -> str:
    blocks = [
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: list[Segment]) -> str:
    blocks = [
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n" for s in segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def to_verbose_json(transcript: Transcript, *, task: str, granularities: Collection[str]) -> dict:
    body: dict = {
        "task": task,
        "language": language_name(transcript.info.language),  # by name, like OpenAI ("english")
        "duration": round(transcript.info.duration, 3),
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {
                "id": s.id,
                "seek": s.seek,
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": s.tokens,
                "temperature": s.temperature,
                "avg_logprob": _finite(s.avg_logprob),
                "compression_ratio": _finite(s.compression_ratio),
                "no_speech_prob": _finite(s.no_speech_prob),
            }
            for s in transcript.segments
        ]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for s in transcript.segments
            for w in s.words
        ]
    body["usage"] = usage(transcript)
    return body


def usage(transcript: Transcript) -> dict:
    return {"type": "duration", "seconds": int(math.ceil(transcript.info.duration))}


def render(transcript: Transcript, fmt: str, *, task: str, granularities: Collection[str]) -> str:
    if fmt == "text":
        return transcript.text + "\n" if transcript.text else ""
    if fmt == "srt":
        return to_srt(transcript.segments)
    if fmt == "vtt":
        return to_vtt(transcript.segments)
    if fmt == "verbose_json":
        return json.dumps(to_verbose_json(transcript, task=task, granularities=granularities))
    body: dict = {"text": transcript.text, "usage": usage(transcript)}
    if task == "transcribe":
        body["languages"] = languages(transcript)
    return json.dumps(body)


def languages(transcript: Transcript) -> list[dict]:
    """OpenAI's `languages` (it fills them for gpt-transcribe): the language the text is in,
    the one asked for or the one Whisper detected, by ISO-639-1 code; [] when nothing was said."""
    return [{"code": transcript.info.language}] if transcript.text else []


