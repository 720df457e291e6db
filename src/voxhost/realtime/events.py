"""What a live transcription session tells its client, as plain data.

The session emits these; api/protocol/realtime.py renders them in whichever
OpenAI Realtime generation (beta or GA) the client speaks.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxhost.errors import VoxhostError


@dataclass(frozen=True)
class SpeechStarted:
    item_id: str
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True)
class Committed:
    item_id: str
    previous_item_id: str | None
    # The committed audio on this session's clock (ms since its first append): what the
    # final will cover. A client that resumes the session elsewhere trims its replay
    # buffer by it, whoever committed (VAD, the client, the turn limit, a drain).
    audio_start_ms: int | None = None
    audio_end_ms: int | None = None


@dataclass(frozen=True)
class Cleared:
    pass


@dataclass(frozen=True)
class TranscriptDelta:
    item_id: str
    delta: str


@dataclass(frozen=True)
class TranscriptCompleted:
    item_id: str
    transcript: str
    audio_seconds: float
    # Whisper's code of the language the transcript is in (the session's, or the one detected
    # for this turn); None when nothing was said.
    language: str | None = None


@dataclass(frozen=True)
class TranscriptFailed:
    item_id: str
    error: VoxhostError


@dataclass(frozen=True)
class Error:
    error: VoxhostError
    client_event_id: str | None = None


Event = (
    SpeechStarted | SpeechStopped | Committed | Cleared | TranscriptDelta | TranscriptCompleted
    | TranscriptFailed | Error
)
