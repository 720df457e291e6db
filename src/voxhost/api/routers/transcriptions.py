"""POST /v1/audio/transcriptions and /v1/audio/translations (OpenAI wire format).

The handler only parses, calls and encodes: decoding is audio/, decoding
speech is the engine's, running it off the event loop is the scheduler's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from voxhost.api import forms
from voxhost.api.disconnect import unless_disconnected
from voxhost.api.protocol import sse
from voxhost.api.protocol.transcriptions import MEDIA_TYPES, TranscriptionForm, render
from voxhost.api.state import AppState, require_ready
from voxhost.engines.stt.base import Segment, SpeechToText, Task, Transcript, TranscriptionOptions
from voxhost.errors import InvalidRequest
from voxhost.ops import context
from voxhost.stt.service import SttService

router = APIRouter(prefix="/v1/audio", tags=["speech-to-text"])
log = logging.getLogger("voxhost.stt")

_FORM_DOC = TranscriptionForm.openapi_request_body()


@dataclass
class SttRequest:
    audio_bytes: bytes
    model: str | None
    response_format: str
    granularities: set[Literal["word", "segment"]]
    stream: bool
    options: TranscriptionOptions

    @property
    def timestamps_needed(self) -> bool:
        """Whether the response shows timestamps (a streamed decode keeps them to find segments)."""
        return self.stream or self.response_format not in ("json", "text")


async def _parse(request: Request, state: AppState, task: Task) -> SttRequest:
    form = await forms.read_form(request, state.settings)
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
    # BCP-47 tags (en-US) map to Whisper's codes; unknown ones are refused here, before any decoding.
    options = state.services.transcription.options(
        task=task,
        language=fields.language,
        prompt=fields.prompt,
        temperature=fields.temperature,
        beam_size=s.stt_beam_size if fields.beam_size is None else fields.beam_size,
        word_timestamps="word" in granularities,
        vad_filter=s.stt_vad_filter if fields.vad_filter is None else fields.vad_filter,
        hotwords=fields.hotwords,
    )
    return SttRequest(
        audio_bytes=audio_bytes,
        model=fields.model,
        response_format=response_format,
        granularities=granularities,
        stream=fields.stream,
        options=options,
    )


async def _handle(request: Request, state: AppState, task: Task) -> Response:
    # Shed before the costly parts (reading the upload, decoding): under
    # overload a rejection must cost next to nothing. Refused when the expected
    # wait is past its budget (429, Retry-After: that wait; scheduler/expected_wait.py).
    service = state.services.transcription
    service.admit()
    req = await _parse(request, state, task)
    engine = service.engine(req.model, req.options)
    service.admit(engine)
    audio_bytes, req.audio_bytes = req.audio_bytes, b""  # dropped as soon as decoded
    if req.stream:
        with service.arriving(engine):
            audio = await service.decode(audio_bytes)
        events = _sse_events(service, engine, audio, req.options)
        context.note_work_after_headers()  # the done event carries the figures
        return StreamingResponse(  # Starlette stops the stream (and so the decode) on disconnect
            events, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)

    async def decode_and_transcribe() -> Transcript:
        nonlocal audio_bytes
        with service.arriving(engine):  # until queued: later requests count it as waiting
            audio = await service.decode(audio_bytes)
        audio_bytes = b""
        return await service.transcribe(engine, audio, req.options, timestamps_needed=req.timestamps_needed,
                                        admitted=True)

    transcript = await unless_disconnected(request, decode_and_transcribe())
    if state.settings.retain_content == "logs":  # opt-in only: transcripts are players' words
        log.info("transcript", extra={"content": transcript.text})
    body = render(transcript, req.response_format, task=task, granularities=req.granularities)
    return Response(body, media_type=MEDIA_TYPES[req.response_format])


def _sse_events(service: SttService, engine: SpeechToText, audio: np.ndarray, options: TranscriptionOptions):
    """One `transcript.text.delta` per decoded segment, then `transcript.text.done`.
    Admitted now (a long file against the bulk lane's budget), before the 200 starts."""
    return _events(service.stream(engine, audio, options))


async def _events(stream: AsyncGenerator[Segment, None]) -> AsyncGenerator[bytes, None]:
    parts: list[str] = []
    async with aclosing(stream) as segments:  # leaving stops the decode now
        async for segment in segments:
            delta = segment.text if parts else segment.text.lstrip()
            parts.append(delta)
            yield sse.encode({"type": "transcript.text.delta", "delta": delta, "logprobs": None})
    text = "".join(parts).strip()
    yield sse.encode({"type": "transcript.text.done", "text": text, "logprobs": None, **(context.figures() or {})})


@router.post("/transcriptions", openapi_extra=_FORM_DOC)
async def create_transcription(request: Request, state: AppState = Depends(require_ready)) -> Response:
    return await _handle(request, state, "transcribe")


@router.post("/translations", openapi_extra=_FORM_DOC)
async def create_translation(request: Request, state: AppState = Depends(require_ready)) -> Response:
    return await _handle(request, state, "translate")
