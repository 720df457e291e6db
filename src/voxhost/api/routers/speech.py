"""POST /v1/audio/speech and GET /v1/audio/voices (OpenAI wire format).

The handler parses, calls the speech service and streams what it yields:
text handling, synthesis, stitching, encoding and caching live below.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse

from voxhost.api.protocol.speech import STREAM_FORMATS, SpeechRequest, sse_events
from voxhost.api.state import AppState, get_state, require_ready
from voxhost.audio.encode import MEDIA_TYPES
from voxhost.errors import InvalidRequest

router = APIRouter(prefix="/v1/audio", tags=["text-to-speech"])


@router.post("/speech")
async def create_speech(body: SpeechRequest, state: AppState = Depends(require_ready)) -> Response:
    if body.stream_format not in STREAM_FORMATS:
        raise InvalidRequest(f"'stream_format' must be 'audio' or 'sse', got {body.stream_format[:20]!r}.",
                             param="stream_format", code="invalid_value")
    if not isinstance(body.input, str):
        raise InvalidRequest("'input' must be a string.", param="input", code="invalid_type")
    speech = state.speech
    job = speech.prepare(model=body.model, voice=body.voice_id, text=body.input, speed=body.speed,
                         fmt=body.response_format)
    result = await speech.open(job)
    headers = {"X-Cache": result.cache, "X-Voxhost-Engine": job.engine.name,
               "X-Voxhost-Voice": job.voice.definition, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if result.timing is not None:
        headers["Server-Timing"] = result.timing.header()
    if body.stream_format == "sse":
        return StreamingResponse(sse_events(result.chunks, job.input_tokens), media_type="text/event-stream",
                                 headers=headers)
    if result.data is not None:  # a hit: the whole file at once, with its length
        return Response(result.data, media_type=MEDIA_TYPES[job.format], headers=headers)
    return StreamingResponse(result.chunks, media_type=MEDIA_TYPES[job.format], headers=headers)


@router.get("/voices")
async def list_voices(state: AppState = Depends(get_state)) -> dict:
    return {"object": "list", "data": state.tts.describe_voices()}
