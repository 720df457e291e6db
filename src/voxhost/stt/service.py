"""Speech to text as a service: request in, transcript out. Knows nothing of HTTP.

options from settings -> language tag to Whisper code -> model and language
checks -> admission (expected wait) -> decode (capped, under the decoded-audio
memory budget) -> REST decode policy (text-only, window) -> lane by length ->
the scheduler. The REST router and `voxhost transcribe` both come through
here, so defaults, checks and policy are written once.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from voxhost.audio.decode import decode_audio
from voxhost.audio.pcm import WHISPER_RATE
from voxhost.engines.stt.base import Segment, SpeechToText, Task, Transcript, TranscriptionOptions
from voxhost.engines.stt.registry import SttRegistry
from voxhost.engines.stt.windows import WHISPER_WINDOW_S, encoder_window
from voxhost.errors import Overloaded
from voxhost.ops.settings import Settings
from voxhost.scheduler.audio_memory import AudioMemoryBudget
from voxhost.scheduler.lanes import Lane
from voxhost.scheduler.stt import SttScheduler
from voxhost.stt.languages import check_model_language, whisper_language

# A REST json/text clip on a CPU engine decodes in an encoder window of the clip + REST_WINDOW_PAD_S,
# at least REST_WINDOW_FLOOR_S, text-only: together they kept the WER where each alone lost words
# (docs/benchmarks.md, "REST short clips, the model side"). Live turns size theirs differently
# (realtime/decoding.py): a REST clip has no repeat check to fall back on.
REST_WINDOW_PAD_S = 5.0
REST_WINDOW_FLOOR_S = 25
# ... and only in these languages (given, or detected first when `language` is unset): in German,
# Spanish and French the short text-only window lost words against Whisper's own decode, which
# those languages keep (docs/benchmarks.md "Speech-to-text per language").
REST_SHORT_WINDOW_LANGUAGES = frozenset({"en"})


def options_from(settings: Settings, *, task: Task = "transcribe", language: str | None = None,
                 **fields) -> TranscriptionOptions:
    """Options with the server's defaults (beam, VAD) unless the caller set
    them; `language` may be any tag a client sends (mapped, or refused)."""
    fields.setdefault("beam_size", settings.stt_beam_size)
    fields.setdefault("vad_filter", settings.stt_vad_filter)
    return TranscriptionOptions(task=task, language=whisper_language(language), **fields)


class SttService:
    def __init__(self, registry: SttRegistry, scheduler: SttScheduler, settings: Settings,
                 audio_memory: AudioMemoryBudget | None = None):
        self.registry = registry
        self.scheduler = scheduler
        self.settings = settings
        self.audio_memory = audio_memory or AudioMemoryBudget(0)

    def options(self, **kw) -> TranscriptionOptions:
        return options_from(self.settings, **kw)

    def engine(self, model: str | None, options: TranscriptionOptions) -> SpeechToText:
        """The engine for `model`, if it can do what `options` ask (else InvalidRequest)."""
        engine = self.registry.get(model)
        check_model_language(engine, options.language, options.task)
        return engine

    def admit(self, engine: SpeechToText | None = None) -> None:
        """Raise Overloaded (429, Retry-After: the expected wait) when a new request
        would wait past the budget: with no engine yet (before the upload is read),
        only when every engine would refuse. A request's length is not known before
        its decode, so it is admitted on the interactive lane; a long file is checked
        again against the bulk lane's budget once decoded (`transcribe`)."""
        if engine is None:
            self.scheduler.admit_any(Lane.INTERACTIVE)
        else:
            self.scheduler.admit(engine, Lane.INTERACTIVE)

    @contextmanager
    def arriving(self, engine: SpeechToText) -> Iterator[None]:
        """An admitted request whose audio is decoding counts in the wait of those after it."""
        with self.scheduler.arriving(engine, Lane.INTERACTIVE):
            yield

    async def decode(self, data: bytes) -> np.ndarray:
        """Any container -> 16 kHz mono, off the event loop, refused past the length cap
        and past the decoded-audio memory budget (before decoding, where the container
        declares its length). The budget holds the audio until it is freed."""
        try:
            return await asyncio.to_thread(self._decode_held, data)
        except Overloaded as exc:  # the budget is full: room comes back as the work ahead finishes
            exc.retry_after = max(exc.retry_after or 1.0, self.drain_seconds())
            raise

    def _decode_held(self, data: bytes) -> np.ndarray:
        reservation = self.audio_memory.reservation()
        try:
            audio = decode_audio(data, max_seconds=self.settings.max_audio_seconds, hold=reservation.hold)
        except BaseException:
            reservation.release()
            raise
        reservation.settle(audio.nbytes)
        # Released when the audio is freed: answered, failed, streamed, or its client gone.
        weakref.finalize(audio, reservation.release)
        return audio

    def drain_seconds(self) -> float:
        """Expected seconds until the speech-to-text work queued and running now is done."""
        return max((self.scheduler.expected_wait(engine, Lane.BULK) for engine in self.registry.engines.values()),
                   default=0.0)

    def lane(self, audio: np.ndarray) -> Lane:
        # Long files would hold up players' short clips: they wait in the bulk lane.
        return Lane.BULK if len(audio) > self.settings.bulk_threshold_s * WHISPER_RATE else Lane.INTERACTIVE

    def request_options(self, audio: np.ndarray, options: TranscriptionOptions, engine: SpeechToText, *,
                        timestamps_needed: bool) -> TranscriptionOptions:
        """The REST decode policy (VOXHOST_STT_REST_TEXT_ONLY): a clip of one encoder window or
        less whose response shows no timestamps decodes without timestamp tokens; on a CPU
        engine also in a window sized to it. On a GPU the encoder is not the bottleneck, so
        the window stays whole, and timestamp tokens are what cost the time and stop batching
        from paying (docs/benchmarks.md, "Speech-to-text on a GPU"). The CPU window is only for
        REST_SHORT_WINDOW_LANGUAGES (with `language` unset the engine detects it first): other
        languages decode as Whisper does."""
        seconds = len(audio) / WHISPER_RATE
        if (not self.settings.stt_rest_text_only or timestamps_needed or options.word_timestamps
                or options.without_timestamps or options.chunk_length or seconds > WHISPER_WINDOW_S):
            return options
        if engine.device == "cuda":
            return replace(options, without_timestamps=True)
        window = encoder_window(seconds, pad_s=REST_WINDOW_PAD_S, floor_s=REST_WINDOW_FLOOR_S)
        return replace(options, without_timestamps=True, chunk_length=window if window < WHISPER_WINDOW_S else None,
                       shortcut_languages=REST_SHORT_WINDOW_LANGUAGES)

    async def transcribe(self, engine: SpeechToText, audio: np.ndarray, options: TranscriptionOptions, *,
                         timestamps_needed: bool = True, admitted: bool = False) -> Transcript:
        """`timestamps_needed`: False when the response shows none (REST json/text), which
        lets the decode policy drop them. `admitted`: `admit` let it in; only a long file
        (bulk lane) is checked again."""
        options = self.request_options(audio, options, engine, timestamps_needed=timestamps_needed)
        lane = self.lane(audio)
        return await self.scheduler.transcribe(engine, audio, options, lane=lane,
                                               check_wait=not admitted or lane is not Lane.INTERACTIVE)

    def stream(self, engine: SpeechToText, audio: np.ndarray,
               options: TranscriptionOptions) -> AsyncGenerator[Segment, None]:
        """Segments as they are decoded; Whisper finds a segment's end by its timestamp tokens, so
        a streamed decode keeps them. Admitted now, not when the stream is first read: once the
        response has started, a refusal could no longer be a 429."""
        lane = self.lane(audio)
        if lane is not Lane.INTERACTIVE:
            self.scheduler.admit(engine, lane)
        return self.scheduler.stream(engine, audio, options, lane=lane, check_wait=False)
