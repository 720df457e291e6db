"""Plain faster-whisper set up as voxhost sets up its engine: the reference side
of the server-vs-engine comparisons (tests/test_accuracy.py, bench/stt_overhead.py,
bench/stt_languages.py).

Written against faster-whisper's public API on purpose, not voxhost's engine,
so a difference the comparison finds is voxhost's.
"""

from __future__ import annotations

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.transcribe import Segment, TranscriptionInfo
from faster_whisper.vad import VadOptions, get_speech_timestamps

from voxhost.audio.pcm import WHISPER_RATE
from voxhost.ops.settings import Settings


def transcribe_raw(model: WhisperModel, audio: np.ndarray, settings: Settings,
                   language: str | None = None) -> tuple[list[Segment], TranscriptionInfo | None]:
    """Segments and faster-whisper's info (None where the gate skipped the clip: no language heard)."""
    short = len(audio) <= settings.stt_vad_trim_over_seconds * WHISPER_RATE
    # voxhost skips short audio in which VAD hears no speech, and trims only long audio
    if short and not get_speech_timestamps(audio, VadOptions(threshold=settings.stt_vad_gate_threshold)):
        return [], None
    segments, info = model.transcribe(
        audio, beam_size=settings.stt_beam_size, vad_filter=not short, language=language,
        vad_parameters={"threshold": settings.stt_vad_threshold},
        no_speech_threshold=settings.stt_no_speech_threshold,
    )
    return list(segments), info


def transcribe_like_voxhost(model: WhisperModel, audio: np.ndarray, settings: Settings,
                            language: str | None = None) -> list[Segment]:
    return transcribe_raw(model, audio, settings, language)[0]
