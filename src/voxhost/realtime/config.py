"""A live session's configuration and the server-side limits that bound it."""

from __future__ import annotations

from dataclasses import dataclass, field

from voxhost.realtime.vad import TurnDetection


@dataclass(frozen=True)
class SessionConfig:
    """What the client chose (session.update / transcription_session.update)."""

    input_rate: int = 24_000
    model: str = "whisper-1"  # as the client named it; echoed back
    language: str | None = None
    prompt: str | None = None
    hotwords: str | None = None  # voxhost extension (GA `keywords` map here too)
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class SessionLimits:
    """What the server allows and how it decodes (from Settings)."""

    max_turn_seconds: float = 30.0
    max_pending_turns: int = 4
    partial_interval_ms: int = 500  # 0: no partials
    final_beam_size: int = 5
    short_window: bool = True  # encode turns in a window sized to them, not 30 s
    min_commit_ms: int = 100  # OpenAI rejects commits of less audio
    # server_vad: start the final decode this long into a pause, while the silence
    # timer still runs; used if the pause ends the turn. 0: decode only at the stop.
    speculative_final_ms: int = 200
    # A final's audio runs at least this far past the start of the pause that ended its turn,
    # padded with silence where less was heard (a speculative final, a short silence_duration_ms):
    # Whisper drops a turn's last words when its audio stops ~150 ms after them
    # (docs/benchmarks.md, "Trailing silence of live finals"). 0: decode only what was heard.
    final_trailing_ms: int = 500
