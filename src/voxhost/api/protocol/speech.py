"""Wire format of POST /v1/audio/speech, as OpenAI defines it."""

from __future__ import annotations

import base64
from typing import Any, AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from voxhost.api.protocol import sse
from voxhost.tts.designs import VoiceDesign
from voxhost.tts.timing import Marks

STREAM_FORMATS = ("audio", "sse")
SSE_PIECE_BYTES = 32 * 1024  # a cached line is sent as a few deltas, not one huge event


def _documented(schema: dict) -> None:
    """The OpenAPI schema states OpenAI's contract (required strings), while
    parsing stays loose so the service can answer with OpenAI's own errors."""
    schema["required"] = ["model", "input", "voice"]
    props = schema["properties"]
    props["model"] = {"type": "string", "title": "Model"}
    props["input"] = {"type": "string", "title": "Input", "minLength": 1, "maxLength": 4096}
    props["voice"] = {"title": "Voice", "anyOf": [
        {"type": "string"}, {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}]}


class SpeechRequest(BaseModel):
    """Types are loose on purpose: values are checked by the service, which
    answers with OpenAI's error codes and the offending `param`."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_documented)

    model: str | None = None
    input: Any = None
    voice: Any = None
    response_format: str = "mp3"
    speed: float = 1.0
    stream_format: str = "audio"
    instructions: str | None = Field(default=None, max_length=4096)
    timestamps: Any = False  # extension: lip-sync events (speech.word, speech.viseme) in the SSE stream

    @property
    def voice_id(self) -> str:
        # OpenAI also accepts {"id": "voice_1234"} for custom voices.
        if isinstance(self.voice, dict):
            return str(self.voice.get("id") or "")
        return self.voice if isinstance(self.voice, str) else ""

    @property
    def inline_design(self) -> VoiceDesign | None:
        """Extension: `voice: {"base": ..., "pitch_semitones": ...}` auditions a design
        without saving it (the console's design panel)."""
        if isinstance(self.voice, dict) and "id" not in self.voice and "base" in self.voice:
            return VoiceDesign.parse({"name": "audition", **self.voice})
        return None


async def sse_events(chunks: AsyncIterator[bytes | Marks], input_tokens: int) -> AsyncIterator[bytes]:
    """`speech.audio.delta` per piece of encoded audio (base64), then `speech.audio.done`.
    With timestamps, each piece's `speech.word` and `speech.viseme` events come before its audio."""
    async for chunk in chunks:
        if isinstance(chunk, Marks):
            for event in chunk:
                yield sse.encode(event)
            continue
        for start in range(0, len(chunk), SSE_PIECE_BYTES):
            piece = chunk[start:start + SSE_PIECE_BYTES]
            yield sse.encode({"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()})
    yield sse.encode({"type": "speech.audio.done",
                     "usage": {"input_tokens": input_tokens, "output_tokens": 0, "total_tokens": input_tokens}})
