"""POST /v1/audio/transcriptions and /v1/audio/translations (OpenAI wire format).

The handler only parses, calls and encodes: decoding is audio/, decoding
speech is the engine's, running it off the event loop is the scheduler's.
"""

from __future__ import annotations

from contextlib import aclosing

import logging
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import FormData

from voxhost.api import forms
from voxhost.api.protocol.transcriptions import MEDIA_TYPES, TranscriptionForm, render
from voxhost.api.protocol import sse
from voxhost.api.state import AppState, require_ready
from voxhost.api.disconnect import unless_disconnected
from voxhost.engines.stt.base import Transcript, TranscriptionOptions
from voxhost.errors import InvalidRequest, Overloaded
from voxhost.stt.service import SttService

router = APIRouter(prefix="/v1/audio", tags=["speech-to-text"])
log = logging.getLogger("voxhost.stt")

_FORM_DOC = TranscriptionForm.openapi_request_body()


@dataclass
class SttRequest:
    audio_bytes: bytes
    model: str | None
    response_format: str
    granularities: set[str]
    stream: bool
    options: TranscriptionOptions


async def _read_form(request: Request, state: AppState, field: str = "file") -> FormData:
    return await forms.read_form(request, state.settings, field)


async def _parse(request: Request, state: AppState, task: str) -> SttRequest:
    form = await _read_form(request, state)
    s = state.settings
    audio_bytes, _ = await forms.file_field(form, "file", s.max_upload_bytes)
    fields = forms.parse(form, TranscriptionForm, file=b"")  # the audio stays out of the model's copies
    response_format, granularities = fields.response_format, set(fields.timestamp_granularities)
    if granularities and response_format != "verbose_json":
        raise InvalidRequest(
            "'timestamp_granularities' requires response_format 'verbose_json'.",
            param="timestamp_granularities",
        )
    if fields.stream and response_format not in ("json", "text"):
        raise InvalidRequest("Streaming supports response_format 'json' or 'text'.", param="stream")
    # BCP-47 tags (en-US) map to Whisper's codes; unknown ones are refused
    # here, before any decoding (they used to surface as a 500).
    options = state.transcription.options(
        task=task,
        language=fields.language,
        prompt=fields.prompt,
        temperature=fields.temperature,
        beam_size=s.stt_beam_size if fields.beam_size is None else fields.beam_size,
        word_timestamps="word" in granularities,
        vad_filter=s.stt_vad_filter if fields.vad_filter is None else fields.vad_filter,
        hotwords=fields.hotwords,
        timestamps_needed=fields.stream or response_format not in ("json", "text"),
    )
    return SttRequest(
        audio_bytes=audio_bytes,
        model=fields.model,
        response_format=response_format,
        granularities=granularities,
        stream=fields.stream,
        options=options,
    )


async def _handle(request: Request, state: AppState, task: str) -> Response:
    # Shed before the costly parts (reading the upload, decoding): under
    # overload a rejection must cost next to nothing.
    service = state.transcription
    if not service.can_admit():
        raise Overloaded("Every speech-to-text queue is full; retry shortly.", retry_after=2.0)
    req = await _parse(request, state, task)
    engine = service.engine(req.model, req.options)
    if not service.can_admit(engine):
        raise Overloaded(f"The {engine.name} queue is full; retry shortly.", retry_after=2.0)
    audio_bytes, req.audio_bytes = req.audio_bytes, b""  # dropped as soon as decoded
    if req.stream:
        audio = await service.decode(audio_bytes)
        return StreamingResponse(  # Starlette stops the stream (and so the decode) on disconnect
            _sse_events(service, engine, audio, req.options),
            media_type=sse.MEDIA_TYPE,
            headers=sse.HEADERS,
        )

    async def decode_and_transcribe() -> Transcript:
        nonlocal audio_bytes
        audio = await service.decode(audio_bytes)
        audio_bytes = b""
        return await service.transcribe(engine, audio, req.options)

    transcript = await unless_disconnected(request, decode_and_transcribe())
    if state.settings.retain_content == "logs":  # opt-in only: transcripts are players' words
        log.info("transcript", extra={"content": transcript.text})
    body = render(transcript, req.response_format, task=task, granularities=req.granularities)
    return Response(body, media_type=MEDIA_TYPES[req.response_format])


async def _sse_events(service: SttService, engine, audio, options: TranscriptionOptions):
    """One `transcript.text.delta` per decoded segment, then `transcript.text.done`."""
    parts: list[str] = []
    async with aclosing(service.stream(engine, audio, options)) as segments:  # leaving stops the decode now
        async for segment in segments:
            delta = segment.text if parts else segment.text.lstrip()
            parts.append(delta)
            yield sse.encode({"type": "transcript.text.delta", "delta": delta, "logprobs": None})
    text = "".join(parts).strip()
    yield sse.encode({"type": "transcript.text.done", "text": text, "logprobs": None})


@router.post("/transcriptions", openapi_extra=_FORM_DOC)
async def create_transcription(request: Request, state: AppState = Depends(require_ready)) -> Response:
    return await _handle(request, state, "transcribe")


@router.post("/translations", openapi_extra=_FORM_DOC)
async def create_translation(request: Request, state: AppState = Depends(require_ready)) -> Response:
    return await _handle(request, state, "translate")
