"""Speech to text as a service: request in, transcript out. Knows nothing of HTTP.

options from settings -> language tag to Whisper code -> model and language
checks -> decode (capped) -> lane by length -> the scheduler. The REST router
and `voxhost transcribe` both come through here, so defaults and checks are
written once (the CLI used to skip the English-only and translate checks).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import AsyncIterator

import numpy as np

from voxhost.audio.decode import decode_audio
from voxhost.audio.pcm import WHISPER_RATE
from voxhost.engines.stt.base import Segment, Transcript, TranscriptionOptions
from voxhost.engines.stt.registry import SttRegistry
from voxhost.ops.settings import Settings
from voxhost.realtime.decoding import final_window_seconds
from voxhost.scheduler.lanes import Lane
from voxhost.scheduler.stt import SttScheduler
from voxhost.stt.languages import check_model_language, whisper_language

# REST clips' encoder window floor with stt_rest_short_window: 20 s, not the live finals' 15 s.
# On the 69 English clips under 6 s (docs/benchmarks.md) 15 s cost +1.5 WER points and
# dropped words ("Gregson ... rose to his feet" -> "Grigs and ... rose"); 20 s costs +0.7
# at 0.44x the decode time; 25 s +0.4 at 0.73x. None holds the issue's +-0.3: off by default.
REST_MIN_WINDOW_S = 20


def options_from(settings: Settings, *, task: str = "transcribe", language: str | None = None,
                 **fields) -> TranscriptionOptions:
    """Options with the server's defaults (beam, VAD) unless the caller set
    them; `language` may be any tag a client sends (mapped, or refused)."""
    fields.setdefault("beam_size", settings.stt_beam_size)
    fields.setdefault("vad_filter", settings.stt_vad_filter)
    return TranscriptionOptions(task=task, language=whisper_language(language), **fields)


def resolve_engine(registry: SttRegistry, model: str | None, options: TranscriptionOptions):
    """The engine for `model`, if it can do what `options` ask (else InvalidRequest)."""
    engine = registry.get(model)
    check_model_language(engine, options.language, options.task)
    return engine


class SttService:
    def __init__(self, registry: SttRegistry, scheduler: SttScheduler, settings: Settings):
        self.registry = registry
        self.scheduler = scheduler
        self.settings = settings

    def options(self, **kw) -> TranscriptionOptions:
        return options_from(self.settings, **kw)

    def engine(self, model: str | None, options: TranscriptionOptions):
        return resolve_engine(self.registry, model, options)

    def can_admit(self, engine=None) -> bool:
        if engine is None:
            return self.scheduler.can_admit_any(Lane.INTERACTIVE)
        return self.scheduler.can_admit(engine, Lane.INTERACTIVE)

    async def decode(self, data: bytes) -> np.ndarray:
        """Any container -> 16 kHz mono, off the event loop, refused past the length cap."""
        return await asyncio.to_thread(decode_audio, data, max_seconds=self.settings.max_audio_seconds)

    def lane(self, audio: np.ndarray) -> Lane:
        # Long files would hold up players' short clips: they wait in the bulk lane.
        return Lane.BULK if len(audio) > self.settings.bulk_threshold_s * WHISPER_RATE else Lane.INTERACTIVE

    def windowed(self, audio: np.ndarray, options: TranscriptionOptions) -> TranscriptionOptions:
        """With stt_rest_short_window, a short clip decodes in an encoder window sized
        to it (clip + 5 s, at least REST_MIN_WINDOW_S) instead of paying for Whisper's 30 s."""
        if not self.settings.stt_rest_short_window or options.chunk_length:
            return options
        window = max(REST_MIN_WINDOW_S, final_window_seconds(len(audio) / WHISPER_RATE))
        return replace(options, chunk_length=window)

    async def transcribe(self, engine, audio: np.ndarray, options: TranscriptionOptions) -> Transcript:
        return await self.scheduler.transcribe(engine, audio, self.windowed(audio, options), lane=self.lane(audio))

    def stream(self, engine, audio: np.ndarray, options: TranscriptionOptions) -> AsyncIterator[Segment]:
        return self.scheduler.stream(engine, audio, self.windowed(audio, options), lane=self.lane(audio))
