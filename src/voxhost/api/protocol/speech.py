"""Wire format of POST /v1/audio/speech, as OpenAI defines it."""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError

from voxhost.api.protocol import sse
from voxhost.engines.tts.text import MAX_INPUT_CHARS
from voxhost.tts.designs import VoiceDesign
from voxhost.tts.timing import Marks

SSE_PIECE_BYTES = 32 * 1024  # a cached line is sent as a few deltas, not one huge event


def _voice(value: Any) -> Any:
    if not isinstance(value, (str, dict)):
        raise PydanticCustomError("voice_type", "'voice' must be a voice name or an object such as {\"id\": ...}.")
    return value


# A name or blend ("am_onyx(2)+bm_george(1)"), OpenAI's {"id": "voice_1234"} for
# custom voices, or (extension) an unsaved design {"base": ..., ...} to audition.
Voice = Annotated[
    str | dict[str, Any],
    BeforeValidator(_voice),
    WithJsonSchema({"title": "Voice", "anyOf": [
        {"type": "string"},
        {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
        {"type": "object", "properties": {"base": {"type": "string"}}, "required": ["base"]},
    ]}),
]


class SpeechRequest(BaseModel):
    """The text to speak, the voice and model to speak it with, and the audio format."""

    # Typed as OpenAI types it: a wrong JSON type is a 400 `invalid_type` naming
    # the field. Values (the text, voice, model, speed range, format) are checked
    # by the TTS service, which answers with OpenAI's own codes (`empty_input`,
    # `voice_not_found`, ...).

    model_config = ConfigDict(extra="ignore")

    # Strict: `"model": ""` or `5` is a 400, not the default engine under another name.
    model: Annotated[StrictStr, Field(min_length=1)]
    # The limits are the service's (empty_input, string_above_max_length), stated for clients.
    input: Annotated[StrictStr, WithJsonSchema({"type": "string", "title": "Input", "minLength": 1,
                                                "maxLength": MAX_INPUT_CHARS})]
    voice: Voice
    response_format: StrictStr = "mp3"
    speed: StrictFloat = 1.0  # a number (ints too), never `true` read as 1.0
    stream_format: Literal["audio", "sse"] = "audio"
    instructions: str | None = Field(default=None, max_length=4096)
    timestamps: StrictBool = False  # extension: lip-sync events (speech.word, speech.viseme) in the SSE stream
    # Extension: the language of the whole input (ISO 639-1 or BCP 47: "es", "pt-BR"); unset, each
    # sentence's language is detected from its text.
    language: StrictStr | None = None

    @property
    def voice_id(self) -> str:
        if isinstance(self.voice, dict):
            return str(self.voice.get("id") or "")
        return self.voice

    @property
    def inline_design(self) -> VoiceDesign | None:
        """Extension: `voice: {"base": ..., "pitch_semitones": ...}` auditions a design
        without saving it (the console's design panel)."""
        if isinstance(self.voice, dict) and "id" not in self.voice and "base" in self.voice:
            return VoiceDesign.parse({"name": "audition", **self.voice})
        return None


async def sse_events(chunks: AsyncGenerator[bytes | Marks, None], input_tokens: int,
                     figures: Callable[[], dict | None] = lambda: None) -> AsyncGenerator[bytes, None]:
    """`speech.audio.delta` per piece of encoded audio (base64), then `speech.audio.done`.
    With timestamps, each piece's `speech.word` and `speech.viseme` events come before its audio.
    `figures()`: the request's queue, compute and cost once the audio is done, which the done
    event carries (extension: the headers left before they were known)."""
    async with aclosing(chunks):  # a client that leaves stops synthesis now, not at finalization
        async for chunk in chunks:
            if isinstance(chunk, Marks):
                for event in chunk:
                    yield sse.encode(event)
                continue
            for start in range(0, len(chunk), SSE_PIECE_BYTES):
                piece = chunk[start:start + SSE_PIECE_BYTES]
                yield sse.encode({"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()})
    yield sse.encode({"type": "speech.audio.done",
                     "usage": {"input_tokens": input_tokens, "output_tokens": 0, "total_tokens": input_tokens},
                     **(figures() or {})})
