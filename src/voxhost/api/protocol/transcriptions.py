"""Wire formats of /v1/audio/transcriptions and /translations, as OpenAI sends them."""

from __future__ import annotations

import json
import math
from typing import Literal

from voxhost.engines.stt.base import Segment, Transcript
from voxhost.stt.languages import language_name

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
RESPONSE_FORMATS: tuple[str, ...] = ("json", "text", "srt", "verbose_json", "vtt")

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


def to_verbose_json(transcript: Transcript, *, task: str, granularities: set[str]) -> dict:
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


def render(transcript: Transcript, fmt: str, *, task: str, granularities: set[str]) -> str:
    if fmt == "text":
        return transcript.text + "\n" if transcript.text else ""
    if fmt == "srt":
        return to_srt(transcript.segments)
    if fmt == "vtt":
        return to_vtt(transcript.segments)
    if fmt == "verbose_json":
        return json.dumps(to_verbose_json(transcript, task=task, granularities=granularities))
    return json.dumps({"text": transcript.text, "usage": usage(transcript)})


def sse(event: dict) -> str:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


