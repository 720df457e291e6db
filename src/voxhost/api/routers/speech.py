"""POST /v1/audio/speech and the voices under /v1/audio/voices (OpenAI wire format).

The handler parses, calls the speech service and streams what it yields:
text handling, synthesis, stitching, encoding and caching live below.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from voxhost.api.protocol import sse
from voxhost.api.protocol.speech import STREAM_FORMATS, SpeechRequest, sse_events
from voxhost.api.state import AppState, get_state, require_ready
from voxhost.audio.encode import MEDIA_TYPES
from voxhost.errors import InvalidRequest
from voxhost.api import forms
from voxhost.api.routers.transcriptions import _read_form
from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.scheduler.lanes import Lane
from voxhost.tts import consent
from voxhost.tts.designs import DesignNotFound, VoiceDesign

router = APIRouter(prefix="/v1/audio", tags=["text-to-speech"])


@router.post("/speech")
async def create_speech(body: SpeechRequest, state: AppState = Depends(require_ready)) -> Response:
    if body.stream_format not in STREAM_FORMATS:
        raise InvalidRequest(f"'stream_format' must be 'audio' or 'sse', got {body.stream_format[:20]!r}.",
                             param="stream_format", code="invalid_value")
    if not isinstance(body.input, str):
        raise InvalidRequest("'input' must be a string.", param="input", code="invalid_type")
    if not isinstance(body.timestamps, bool):
        raise InvalidRequest("'timestamps' must be true or false.", param="timestamps", code="invalid_type")
    if body.timestamps and body.stream_format != "sse":
        raise InvalidRequest("'timestamps' needs \"stream_format\": \"sse\": the events travel with the audio.",
                             param="timestamps", code="invalid_value")
    speech = state.speech
    job = speech.prepare(model=body.model, voice=body.inline_design or body.voice_id, text=body.input,
                         speed=body.speed, fmt=body.response_format, timestamps=body.timestamps)
    result = await speech.open(job)
    headers = {"X-Cache": result.cache, "X-Voxhost-Engine": job.engine.name,
               "X-Voxhost-Voice": job.voice.definition, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if result.timing is not None:
        headers["Server-Timing"] = result.timing.header()
    if body.stream_format == "sse":
        return StreamingResponse(sse_events(result.chunks, job.input_tokens), media_type=sse.MEDIA_TYPE,
                                 headers=headers)
    if result.data is not None:  # a hit: the whole file at once, with its length
        return Response(result.data, media_type=MEDIA_TYPES[job.format], headers=headers)
    return StreamingResponse(result.chunks, media_type=MEDIA_TYPES[job.format], headers=headers)


@router.get("/voices")
async def list_voices(state: AppState = Depends(get_state)) -> dict:
    return {"object": "list", "data": state.tts.describe_voices()}


@router.post("/voices", status_code=201)
async def create_voice(request: Request, state: AppState = Depends(require_ready)) -> JSONResponse:
    """A designed voice: {"name", "base", "pitch_semitones", "formant_shift", "speed", "effect", "description"}."""
    try:
        body = await request.json()
    except ValueError:
        raise InvalidRequest("The body must be a JSON voice design.", code="invalid_json") from None
    design = state.tts.create_design(VoiceDesign.parse(body))
    return JSONResponse(design.describe(), status_code=201)


def _design(state: AppState, voice_id: str) -> VoiceDesign:
    design = state.tts.designs.get(voice_id)
    if design is None:
        raise DesignNotFound(f"No designed voice '{voice_id[:64]}'.")
    return design


@router.get("/voices/{voice_id}")
async def get_voice(voice_id: str, state: AppState = Depends(get_state)) -> dict:
    return _design(state, voice_id).describe()


@router.delete("/voices/{voice_id}")
async def delete_voice(voice_id: str, state: AppState = Depends(get_state)) -> dict:
    _design(state, voice_id)
    state.tts.designs.delete(voice_id)
    return {"id": voice_id, "object": "voice.deleted", "deleted": True}


MAX_CONSENT_BYTES = 10 * 1024 * 1024  # OpenAI's limit for the recording
MAX_CONSENT_SECONDS = 60


@router.post("/voice_consents")
async def create_voice_consent(request: Request, state: AppState = Depends(require_ready)) -> dict:
    """OpenAI's consent upload (multipart: name, language, recording). Accepted only if the
    bundled Whisper hears the consent phrase (tts/consent.py); the audio is not kept."""
    form = await _read_form(request, state, "recording")
    name = consent.check_name(forms.text_field(form, "name"))
    language = consent.check_language(forms.text_field(form, "language"))
    data, _ = await forms.file_field(form, "recording", MAX_CONSENT_BYTES)
    audio = await asyncio.to_thread(decode_audio, data, max_seconds=MAX_CONSENT_SECONDS)
    engine = state.stt.get(None)
    options = TranscriptionOptions(language="en", beam_size=5, vad_filter=False)
    transcript = await state.stt_scheduler.transcribe(engine, audio, options, lane=Lane.INTERACTIVE)
    consent.check_phrase(transcript.text)
    return consent.ConsentStore(state.settings.designs_dir).save(name, language)
