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

# REST json/text clips (no timestamps shown) on a CPU engine decode text-only in an encoder
# window of the clip + 5 s, at least 25 s (stt_rest_short_window, auto). Measured on whisper-base
# (docs/benchmarks.md "REST short clips, the model side"): the two together took 0.71x the time
# on the 69 English clips under 6 s at 8.42% WER against 8.79%, and -0.44 points on the whole
# English set; apart, each cost words (25 s with timestamps +0.37, text-only at 30 s +0.37), and
# 20 s (+0.73) and the live finals' 15 s (+1.47, "Gregson ... rose" -> "Grigs and ... rose") more.
REST_MIN_WINDOW_S = 25


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

    def windowed(self, audio: np.ndarray, options: TranscriptionOptions, engine=None) -> TranscriptionOptions:
        """A json/text clip of up to 30 s decodes without timestamp tokens, in an encoder window
        sized to it (clip + 5 s, at least REST_MIN_WINDOW_S) rather than Whisper's 30 s, where
        stt_rest_short_window is on (auto: CPU engines; a GPU's encoder is not the bottleneck)."""
        enabled = self.settings.stt_rest_short_window
        if enabled is None:
            enabled = getattr(engine, "device", "cpu") != "cuda"
        seconds = len(audio) / WHISPER_RATE
        if (not enabled or options.timestamps_needed or options.chunk_length or options.word_timestamps
                or seconds > 30):
            return options
        window = max(REST_MIN_WINDOW_S, final_window_seconds(seconds))
        return replace(options, without_timestamps=True, chunk_length=window if window < 30 else None)

    async def transcribe(self, engine, audio: np.ndarray, options: TranscriptionOptions) -> Transcript:
        return await self.scheduler.transcribe(engine, audio, self.windowed(audio, options, engine), lane=self.lane(audio))

    def stream(self, engine, audio: np.ndarray, options: TranscriptionOptions) -> AsyncIterator[Segment]:
        return self.scheduler.stream(engine, audio, self.windowed(audio, options, engine), lane=self.lane(audio))
