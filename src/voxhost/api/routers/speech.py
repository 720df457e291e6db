"""POST /v1/audio/speech and the voices under /v1/audio/voices (OpenAI wire format).

The handler parses, calls the speech service and streams what it yields:
text handling, synthesis, stitching, encoding and caching live below.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from voxhost.api import forms
from voxhost.api.protocol import sse
from voxhost.api.protocol.speech import SpeechRequest, sse_events
from voxhost.api.state import AppState, get_state, require_ready
from voxhost.audio.decode import decode_audio
from voxhost.audio.encode import MEDIA_TYPES
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.errors import InvalidRequest
from voxhost.ops import context
from voxhost.tts import consent, matching
from voxhost.tts.designs import DesignNotFound, VoiceDesign, check_name

router = APIRouter(prefix="/v1/audio", tags=["text-to-speech"])


@router.post("/speech")
async def create_speech(body: SpeechRequest, state: AppState = Depends(require_ready)) -> Response:
    if body.timestamps and body.stream_format != "sse":
        raise InvalidRequest("'timestamps' needs \"stream_format\": \"sse\": the events travel with the audio.",
                             param="timestamps", code="invalid_value")
    speech = state.services.speech
    job = speech.prepare(model=body.model, voice=body.inline_design or body.voice_id, text=body.input,
                         speed=body.speed, fmt=body.response_format, timestamps=body.timestamps,
                         language=body.language)
    result = await speech.open(job)
    if result.data is None:  # a miss streams while it is synthesised (a hit is whole, and free)
        context.note_work_after_headers()
    headers = {"X-Cache": result.cache, "X-Voxhost-Engine": job.engine.name,
               "X-Voxhost-Voice": job.voice.definition, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if result.timing is not None:
        headers["Server-Timing"] = result.timing.header()
    if body.stream_format == "sse":
        return StreamingResponse(sse_events(result.chunks, job.input_tokens, context.figures),
                                 media_type=sse.MEDIA_TYPE, headers=headers)
    if result.data is not None:  # a hit: the whole file at once, with its length
        return Response(result.data, media_type=MEDIA_TYPES[job.format], headers=headers)
    # Timings travel only in SSE (checked above), so this stream is audio bytes alone.
    audio = cast(AsyncGenerator[bytes, None], result.chunks)
    return StreamingResponse(audio, media_type=MEDIA_TYPES[job.format], headers=headers)


@router.get("/voices")
async def list_voices(state: AppState = Depends(get_state)) -> dict:
    return {"object": "list", "data": state.services.voices.describe_voices()}


@router.post("/voices", status_code=201)
async def create_voice(request: Request, state: AppState = Depends(require_ready)) -> JSONResponse:
    """A designed voice: {"name", "base", "pitch_semitones", "formant_shift", "speed", "effect", "description"};
    or OpenAI's multipart form (name, audio_sample, consent): the nearest designed voice to the sample."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return JSONResponse(await _matched_voice(request, state), status_code=201)
    try:
        body = await request.json()
    except ValueError:
        raise InvalidRequest("The body must be a JSON voice design.", code="invalid_json") from None
    design = state.services.voices.create_design(VoiceDesign.parse(body))
    return JSONResponse(design.describe(), status_code=201)


def _design(state: AppState, voice_id: str) -> VoiceDesign:
    design = state.services.voices.designs.get(voice_id)
    if design is None:
        raise DesignNotFound(f"No designed voice '{voice_id[:64]}'.")
    return design


@router.get("/voices/{voice_id}")
async def get_voice(voice_id: str, state: AppState = Depends(get_state)) -> dict:
    return _design(state, voice_id).describe()


@router.delete("/voices/{voice_id}")
async def delete_voice(voice_id: str, state: AppState = Depends(get_state)) -> dict:
    _design(state, voice_id)
    state.services.voices.designs.delete(voice_id)
    return {"id": voice_id, "object": "voice.deleted", "deleted": True}


MAX_CONSENT_BYTES = 10 * 1024 * 1024  # OpenAI's limit for the recording (and for a voice's audio_sample)
MAX_CONSENT_SECONDS = 60
MIN_SAMPLE_SECONDS = 2.0  # below this, pitch and spectrum statistics are noise
MAX_SAMPLE_SECONDS = 60.0


async def _matched_voice(request: Request, state: AppState) -> dict:
    """OpenAI's create-voice form, answered honestly: no cloning engine is installed, so the
    voice is the nearest designed one (tts/matching.py) and says "method": "matched"."""
    form = await forms.read_form(request, state.settings, "audio_sample")
    kind = forms.text_field(form, "type", "audio_sample") or ""
    if kind != "audio_sample":
        raise InvalidRequest(f"Only 'type': 'audio_sample' is supported here, got {kind[:20]!r}.", param="type",
                             code="invalid_value")
    name = check_name(forms.text_field(form, "name"))
    consent_id = forms.text_field(form, "consent")
    if consent_id is None:
        raise InvalidRequest("'consent' (the id from POST /v1/audio/voice_consents) is required.", param="consent",
                             code="missing_consent")
    record = consent.ConsentStore(state.settings.designs_dir).get(consent_id)
    data, _ = await forms.file_field(form, "audio_sample", MAX_CONSENT_BYTES)
    try:
        audio = await asyncio.to_thread(decode_audio, data, max_seconds=MAX_SAMPLE_SECONDS)
    except InvalidRequest as exc:  # the decoder names its input 'file'
        exc.param = "audio_sample"
        raise
    if audio.size < MIN_SAMPLE_SECONDS * matching.RATE:
        raise matching.SampleUnusable(f"The audio sample is {audio.size / matching.RATE:.1f} s long; send "
                                      f"{MIN_SAMPLE_SECONDS:g}-{MAX_SAMPLE_SECONDS:g} s of one person speaking.",
                                      param="audio_sample")
    stats = await asyncio.to_thread(matching.measure, audio)
    consent.check_same_speaker(record, stats)
    match = matching.nearest(stats, matching.kokoro_profiles())
    design = VoiceDesign.model_validate({
        "name": name, "base": match.base, "pitch_semitones": match.pitch_semitones, "method": "matched",
        "description": (f"Matched, not cloned: {match.gender} sample at {stats.f0_hz:.0f} Hz; nearest bundled "
                        f"voice {match.base} ({match.base_stats.f0_hz:.0f} Hz), pitch "
                        f"{match.pitch_semitones:+.1f} semitones."),
        "match": {"consent": record["id"], "sample": stats.as_dict(), "base": match.base_stats.as_dict(),
                  "distance": match.distance},
    })
    return state.services.voices.create_design(design).describe()


@router.post("/voice_consents")
async def create_voice_consent(request: Request, state: AppState = Depends(require_ready)) -> dict:
    """OpenAI's consent upload (multipart: name, language, recording). Accepted only if the
    bundled Whisper hears the consent phrase (tts/consent.py); the audio is not kept."""
    form = await forms.read_form(request, state.settings, "recording")
    name = consent.check_name(forms.text_field(form, "name"))
    language = consent.check_language(forms.text_field(form, "language"))
    data, _ = await forms.file_field(form, "recording", MAX_CONSENT_BYTES)
    try:
        audio = await asyncio.to_thread(decode_audio, data, max_seconds=MAX_CONSENT_SECONDS)
    except InvalidRequest as exc:  # the decoder names its input 'file'
        exc.param = "recording"
        raise
    transcription = state.services.transcription
    options = TranscriptionOptions(language="en", beam_size=5, vad_filter=False)
    transcript = await transcription.transcribe(transcription.engine(None, options), audio, options)
    consent.check_phrase(transcript.text)
    try:  # kept to compare the samples made into voices under this consent (tts/consent.py)
        speaker = await asyncio.to_thread(matching.measure, audio)
    except matching.SampleUnusable as exc:
        exc.param = "recording"
        raise
    return consent.ConsentStore(state.settings.designs_dir).save(name, language, speaker)
