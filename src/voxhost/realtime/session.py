"""A live transcription session: PCM16 in, turns and their transcripts out.

server_vad mode:
    idle --(speech probability >= threshold)--> speaking: speech_started (new item)
    speaking --(silence >= silence_duration_ms)--> idle: speech_stopped, committed, final decode
    speaking --(turn reaches max_turn_seconds)--> speaking: speech_stopped, committed, speech_started
manual mode (turn_detection null, push-to-talk): audio accumulates until the
client commits; a turn that reaches max_turn_seconds is committed for it.

Speculative finals (server_vad): a turn ends only after `silence_duration_ms`
of pause, but the words are all there when the pause begins. So
`speculative_final_ms` into a pause, if a decode worker is free, the final
decode starts on the turn so far; if the pause ends the turn, that decode is
its final (most of it already done while the silence timer ran), and if speech
resumes it is dropped. Like partials it never waits for a worker.

A final's audio runs at least `final_trailing_ms` past the pause's start: what
was heard, then silence. Whisper drops a turn's last words when the audio stops
soon after them, as a speculative final's did 200 ms into the pause
("in being comparatively modern." -> "in being"), so the speculation decodes
as much trailing audio as the final at the stop would.

While a turn is open, a partial decode (greedy) runs every
`partial_interval_ms` of new audio, but only when a decode worker is free:
partials are skipped, never queued, so they cannot delay anyone's final.
Finals go to the scheduler's LIVE lane and are emitted in commit order.

Transport-agnostic: the caller feeds bytes and client commands in and gets
events (realtime/events.py) through the async `emit` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import numpy as np

from voxhost.audio.pcm import WHISPER_RATE
from voxhost.engines.stt.base import SpeechToText, Transcript
from voxhost.engines.stt.features import AudioWithFeatures, IncrementalMel, after_context, tail, with_features
from voxhost.errors import InvalidRequest, Overloaded, VoxhostError
from voxhost.ids import new_id
from voxhost.realtime import events as ev
from voxhost.realtime.audio import PcmInput
from voxhost.realtime.buffer import AudioBuffer
from voxhost.realtime.config import SessionConfig, SessionLimits
from voxhost.realtime.decoding import (
    CONTEXT_MAX_GAP_S,
    CONTEXT_S,
    fits_with_context,
    repeats,
    turn_options,
    words_after_context,
)
from voxhost.realtime.partials import LocalAgreement
from voxhost.realtime.scheduling import Decoder
from voxhost.realtime.vad import WINDOW, TurnDetector
from voxhost.realtime.vad_batch import SileroStream
from voxhost.stt.languages import check_model_language

log = logging.getLogger("voxhost.realtime")

INGEST_SLICE = 4096  # samples (256 ms): VAD and turn limits are checked at this grain
Emit = Callable[[ev.Event], Awaitable[None]]


@dataclass
class _Speculation:
    """A final decode started during a pause, before the turn was committed."""

    item_id: str
    pause_start: int  # the detector's silence start it was made for
    task: asyncio.Task


@dataclass(frozen=True)
class Final:
    """A turn's final transcript and the language it is in (None: nothing was said)."""

    text: str
    language: str | None

    @classmethod
    def of(cls, text: str, transcript: Transcript) -> Final:
        return cls(text, transcript.info.language if text else None)


def _retrieve(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


def _ms(samples: int) -> int:
    return samples * 1000 // WHISPER_RATE


MIN_DECODE_LEAD_MS = 600  # audio decoded before a detected speech start
# Silero's LSTM state after a turn can keep it deaf to the next speaker for seconds (a French
# line after a Spanish one was heard 3.5 s late, its start lost); after this long idle the
# stream starts afresh, as at a session's start (docs/benchmarks.md "Speech-to-text per language").
VAD_FRESH_AFTER_IDLE_MS = 1000


class TranscriptionSession:
    def __init__(self, config: SessionConfig, limits: SessionLimits, decoder: Decoder, emit: Emit):
        self.limits = limits
        self.decoder = decoder
        self._emit = emit
        self._engine = self.validate(config)
        self.config = config
        self._input = PcmInput(config.input_rate)
        self._buffer = AudioBuffer()
        self._vad = SileroStream()  # scored with every live session's windows (realtime/vad_batch.py)
        self._vad_pos = 0  # absolute sample up to which VAD has scored
        self._idle_since: int | None = None  # where the last turn stopped, until the VAD state is fresh
        self._detector: TurnDetector | None = None
        self._item_id: str | None = None  # the turn in progress
        self._set_turn_detection()
        self._turn_start = 0
        self._turn_peak = 0.0  # the highest VAD probability heard in the turn so far
        self._mel: IncrementalMel | None = None  # the turn's features, each frame computed once
        self._last_item_id: str | None = None
        self._agreement = LocalAgreement()
        self._partial_task: asyncio.Task | None = None
        self._partial_mark = 0
        self._finals: list[asyncio.Task] = []
        self._tail: np.ndarray | None = None  # the last turn's final seconds (context for the next)
        self._tail_end = 0
        # The language of the turn the tail ends (resolved when its final is decoded): with no
        # session language, a turn decoded after that tail is told it (TranscriptionOptions.language_hint).
        self._tail_language: asyncio.Future | None = None
        self._speculation: _Speculation | None = None
        self._language: str | None = None  # of the last turn with words: the next turn's hint
        self.speculative_used = 0
        self.speculative_dropped = 0
        self._closed = False
        self.turns = 0

    # --- configuration -------------------------------------------------
    def validate(self, config: SessionConfig) -> SpeechToText:
        """The engine for `config`; raises InvalidRequest/ModelNotFound if unusable."""
        PcmInput(config.input_rate)
        try:
            engine = self.decoder.engine(config.model)
        except VoxhostError as exc:
            exc.param = "session.audio.input.transcription.model"
            raise
        # The code itself was checked (and mapped to Whisper's) when parsed.
        check_model_language(engine, config.language, param="session.audio.input.transcription.language",
                             model_param="session.audio.input.transcription.model")
        return engine

    async def update(self, config: SessionConfig) -> None:
        self._engine = self.validate(config)
        rate_changed = config.input_rate != self.config.input_rate
        vad_changed = config.turn_detection != self.config.turn_detection
        self.config = config
        if rate_changed:
            self._input = PcmInput(config.input_rate)
        if vad_changed:
            self._set_turn_detection()

    def _set_turn_detection(self) -> None:
        td = self.config.turn_detection
        self._detector = TurnDetector(td) if td is not None else None
        # VAD scores audio from here on; a turn already open carries on.
        self._vad.reset()
        self._vad_pos = self._buffer.end
        if self._detector is not None and self._item_id is not None:
            self._detector.active = True

    # --- client commands -----------------------------------------------
    async def append(self, data: bytes) -> None:
        audio = self._input.convert(data)
        for offset in range(0, audio.size, INGEST_SLICE):
            await self._ingest(audio[offset : offset + INGEST_SLICE])
        self._maybe_partial()

    async def commit(self) -> None:
        start = self._turn_start if self._item_id is not None else self._buffer.start
        start = max(start, self._buffer.start)
        end = self._buffer.end
        if end - start < self.limits.min_commit_ms * WHISPER_RATE // 1000:
            raise InvalidRequest(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{self.limits.min_commit_ms}ms of audio, but buffer only has {_ms(end - start)}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        item_id = self._item_id or new_id("item")
        if self._detector is not None:
            self._detector.reset()
        await self._commit(item_id, start, end)

    async def clear(self) -> None:
        self._buffer.clear()
        self._tail = self._tail_language = None  # cleared audio is no context for what follows
        self._end_turn()
        if self._detector is not None:
            self._detector.reset()
        await self._emit(ev.Cleared())

    async def finish(self) -> None:
        """The server is draining: commit the turn in progress (if it holds enough
        audio) and wait until every final transcript has been sent."""
        if self._item_id is not None:
            # under the minimum commit: nothing to transcribe
            with contextlib.suppress(InvalidRequest):
                await self.commit()
        pending = [t for t in self._finals if not t.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        """Cancel everything still pending (the client is gone)."""
        self._closed = True
        if self._speculation is not None:
            self._speculation.task.cancel()
            self._speculation = None
        tasks = [t for t in [self._partial_task, *self._finals] if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._buffer.clear()

    @property
    def speaking(self) -> bool:
        """Server VAD has a turn open: the player is mid-sentence."""
        return self._detector is not None and self._item_id is not None

    @property
    def pending_tasks(self) -> int:
        return sum(1 for t in [self._partial_task, *self._finals] if t is not None and not t.done())

    # --- audio path ----------------------------------------------------
    async def _ingest(self, audio: np.ndarray) -> None:
        self._buffer.append(audio)
        max_turn = int(self.limits.max_turn_seconds * WHISPER_RATE)
        if self._detector is None:
            item_id = self._item_id or self._open_turn(self._buffer.start)
            if self._buffer.end - self._turn_start >= max_turn:
                await self._commit(item_id, self._turn_start, self._buffer.end)
            return

        prefix = self._detector.config.prefix_padding_ms * WHISPER_RATE // 1000
        # Decode from a little before the reported start: Silero fires after a
        # word's onset, and Whisper misreads a clipped first word ("Montreal
        # Forced" -> "Forest") with OpenAI's 300 ms default.
        lead = max(prefix, MIN_DECODE_LEAD_MS * WHISPER_RATE // 1000)
        for prob in await self._vad.feed(audio):
            self._vad_pos += WINDOW
            pause_start = self._detector.silence_since
            change = self._detector.push(float(prob), self._vad_pos)
            if self._speculation is not None and change is None and \
                    self._detector.silence_since != self._speculation.pause_start:
                self._drop_speculation()  # speech resumed: that pause did not end the turn
            if change is not None and change[0] == "start":
                item_id = self._open_turn(max(self._buffer.start, change[1] - lead))
                reported = max(self._buffer.start, change[1] - prefix)
                await self._emit(ev.SpeechStarted(item_id, _ms(reported)))
            elif change is not None and self._item_id is not None:  # stop
                self._idle_since = change[1]
                await self._emit(ev.SpeechStopped(self._item_id, _ms(change[1])))
                await self._commit(self._item_id, self._turn_start, change[1], pause_start=pause_start)
            elif self._item_id is not None and self._vad_pos - self._turn_start >= max_turn:
                # Too long for one turn: cut here and carry on in a new one.
                end = self._vad_pos
                await self._emit(ev.SpeechStopped(self._item_id, _ms(end)))
                await self._commit(self._item_id, self._turn_start, end)
                self._open_turn(end)
                await self._emit(ev.SpeechStarted(self._item_id, _ms(end)))
            else:
                self._maybe_speculate()
            if self._item_id is not None and self._vad_pos - WINDOW >= self._turn_start:
                self._turn_peak = max(self._turn_peak, float(prob))
        if self._item_id is None:
            # Idle: keep only what the next turn's lead can reach.
            self._buffer.drop_before(self._vad_pos - lead)
            if self._idle_since is not None and \
                    self._vad_pos - self._idle_since >= VAD_FRESH_AFTER_IDLE_MS * WHISPER_RATE // 1000:
                self._vad.forget()
                self._idle_since = None
        else:
            self._idle_since = None

    def _open_turn(self, start: int) -> str:
        self._item_id = item_id = new_id("item")
        self._turn_start = start
        self._partial_mark = start
        self._turn_peak = 0.0
        n_mels = self._engine.n_mels  # engines that compute Whisper features
        # Built after the context its final will be decoded after, so that final reuses its frames.
        self._mel = IncrementalMel(n_mels, self._context_for(start)) if n_mels else None
        self._agreement = LocalAgreement()
        self._buffer.drop_before(start)
        return item_id

    def _end_turn(self) -> None:
        self._drop_speculation()
        self._item_id = None
        self._turn_peak = 0.0
        self._mel = None
        if self._partial_task is not None and not self._partial_task.done():
            self._partial_task.cancel()
        self._partial_task = None

    async def _commit(self, item_id: str, start: int, end: int, *, pause_start: int | None = None) -> None:
        """`pause_start`: where the pause that ended the turn began (server VAD), else None."""
        audio = self._turn_audio(start, end)
        self._buffer.drop_before(end)
        speculation = self._speculation
        decoded = None
        if speculation is not None and speculation.item_id == item_id and speculation.pause_start == pause_start:
            decoded, self._speculation = speculation.task, None
            self.speculative_used += 1
        heard = self._speech_heard()
        self._end_turn()
        previous, self._last_item_id = self._last_item_id, item_id
        self.turns += 1
        await self._emit(ev.Committed(item_id, previous, _ms(start), _ms(end)))
        # A turn that starts right after the last one is usually the same
        # sentence cut at a pause: decode it after the last turn's tail so
        # Whisper hears the context (then keep only this turn's words).
        context = self._context_for(start)
        # The context rolls across adjacent turns: after a short turn ("um") it
        # still holds the words before it.
        decoded_audio = audio if context is None else after_context(context, audio)
        context_language = self._tail_language if context is not None else None
        self._tail, self._tail_end = tail(decoded_audio, int(CONTEXT_S * WHISPER_RATE)), end
        self._tail_language = asyncio.get_running_loop().create_future()
        final = audio if pause_start is None else self._trailing(audio, end - pause_start)
        self._start_final(item_id, final, context, decoded, heard, context_language, self._tail_language,
                          seconds=audio.size / WHISPER_RATE)

    def _trailing(self, audio: np.ndarray, after_pause: int) -> np.ndarray:
        """`audio`, which ends `after_pause` samples into the pause that ends its turn, padded
        with silence to run as far into it as a final needs: at least `final_trailing_ms`,
        and for a speculation as far as the final at the stop would (`silence_duration_ms`)."""
        want = self.limits.final_trailing_ms * WHISPER_RATE // 1000
        if self._detector is not None:
            want = max(want, self._detector.silence_samples)
        missing = want - after_pause if self.limits.final_trailing_ms > 0 else 0
        if missing <= 0:
            return audio
        padded = np.concatenate([np.asarray(audio), np.zeros(missing, np.float32)])
        if type(audio) is not AudioWithFeatures:
            return padded
        # The turn's feature cache settles only what was heard; the padding's frames are this decode's.
        return with_features(padded, audio.features_cache, audio.features_offset, heard=audio.size)

    def _turn_audio(self, start: int, end: int) -> np.ndarray:
        """The buffer's audio in [start, end); when it begins where the open turn
        does, with the turn's incremental features for the engine to use: a
        partial every 500 ms would otherwise recompute every earlier frame
        (24-33% of a live player's CPU outside the model, docs/benchmarks.md)."""
        audio = self._buffer.slice(start, end)
        if self._mel is not None and start == self._turn_start >= self._buffer.start:
            return with_features(audio, self._mel, self._mel.turn_offset)
        return audio

    def _context_for(self, start: int) -> np.ndarray | None:
        if self._tail is not None and start - self._tail_end <= CONTEXT_MAX_GAP_S * WHISPER_RATE:
            return self._tail
        return None

    # --- speculative finals ------------------------------------------------
    def _maybe_speculate(self) -> None:
        delay = self.limits.speculative_final_ms * WHISPER_RATE // 1000
        pause_start = self._detector.silence_since if self._detector is not None else None
        if delay <= 0 or pause_start is None or self._item_id is None or self._closed:
            return
        if self._vad_pos - pause_start < delay or self._speculation is not None:
            return
        if self.decoder.busy(self._engine):
            return  # never queue: a speculation must not delay anyone's final
        audio = self._trailing(self._turn_audio(self._turn_start, self._vad_pos), self._vad_pos - pause_start)
        context = self._context_for(self._turn_start)
        task = asyncio.create_task(self._decode_final(audio, context, self._speech_heard(),
                                                      self._tail_language if context is not None else None))
        task.add_done_callback(_retrieve)  # a dropped one's error is nobody's to report
        self._speculation = _Speculation(self._item_id, pause_start, task)

    def _drop_speculation(self) -> None:
        if self._speculation is not None:
            self._speculation.task.cancel()
            self._speculation = None
            self.speculative_dropped += 1

    # --- decoding ------------------------------------------------------
    def _options(self, seconds: float, *, final: bool, full_window: bool = False, speech_heard: bool = False):
        return turn_options(self.config, self.limits, seconds, final=final, full_window=full_window,
                            speech_heard=speech_heard, language_hint=self._language)

    def _speech_heard(self) -> bool:
        """Whether this session's own VAD already heard speech in the turn at the
        engine's gate threshold. The engine's gate (`vad_filter`) would rerun Silero
        over the whole turn on every partial and final to find out: over half of
        a live player's CPU outside the model (docs/benchmarks.md, capacity).
        An engine without a gate threshold keeps its gate."""
        threshold = self._engine.gate_threshold
        return threshold is not None and self._turn_peak >= threshold

    def _maybe_partial(self) -> None:
        interval = self.limits.partial_interval_ms * WHISPER_RATE // 1000
        if interval <= 0 or self._item_id is None or self._closed:
            return
        if self._partial_task is not None and not self._partial_task.done():
            return
        end = self._buffer.end
        # At least a second of turn first: Whisper guesses wildly on less.
        if end - self._turn_start < max(interval, WHISPER_RATE) or end - self._partial_mark < interval:
            return
        if self.decoder.busy(self._engine):
            return  # skip, don't queue: a partial must never delay a final
        if self._detector is not None and self._detector.silence_since is not None:
            return  # in a pause that may end the turn: keep the worker for its (speculative) final
        self._partial_mark = end
        audio = self._turn_audio(self._turn_start, end)
        self._partial_task = asyncio.create_task(self._partial(self._item_id, audio, self._speech_heard()))

    async def _partial(self, item_id: str, audio: np.ndarray, speech_heard: bool = False) -> None:
        options = self._options(audio.size / WHISPER_RATE, final=False, speech_heard=speech_heard)
        try:
            transcript = await self.decoder.transcribe(self._engine, audio, options)
        except VoxhostError as exc:  # overloaded: partials are best effort
            log.debug("partial skipped: %s", exc.message)
            return
        if self._item_id != item_id or self._closed:
            return  # the turn was committed or cleared meanwhile; its final says it all
        delta = self._agreement.update(transcript.text)
        if delta:
            await self._emit(ev.TranscriptDelta(item_id, delta))

    def _start_final(self, item_id: str, audio: np.ndarray, context: np.ndarray | None = None,
                     decoded: asyncio.Task | None = None, speech_heard: bool = False,
                     context_language: asyncio.Future | None = None,
                     language_out: asyncio.Future | None = None, seconds: float | None = None) -> None:
        self._finals = [t for t in self._finals if not t.done()]
        overloaded = len(self._finals) >= self.limits.max_pending_turns and decoded is None
        previous = self._finals[-1] if self._finals else None
        self._finals.append(asyncio.create_task(
            self._final(item_id, audio, previous, overloaded, context, decoded, speech_heard,
                        context_language, language_out, seconds)))

    async def _decode_final(self, audio: np.ndarray, context: np.ndarray | None, speech_heard: bool = False,
                            context_language: asyncio.Future | None = None) -> Final:
        final = await self._decode_final_in(audio, context, full_window=False, speech_heard=speech_heard,
                                            context_language=context_language)
        if self.limits.short_window and repeats(final.text):  # rare: a short window's repetition loop
            final = await self._decode_final_in(audio, context, full_window=True, speech_heard=speech_heard,
                                                context_language=context_language)
        return final

    async def _decode_final_in(self, audio: np.ndarray, context: np.ndarray | None, *, full_window: bool,
                               speech_heard: bool = False,
                               context_language: asyncio.Future | None = None) -> Final:
        seconds = audio.size / WHISPER_RATE
        if context is None or not fits_with_context(context, audio):
            options = self._options(seconds, final=True, full_window=full_window, speech_heard=speech_heard)
            transcript = await self.decoder.transcribe(self._engine, audio, options)
            return Final.of(transcript.text, transcript)
        offset = context.size / WHISPER_RATE
        options = replace(self._options(offset + seconds, final=True, full_window=full_window,
                                        speech_heard=speech_heard),
                          word_timestamps=True, detect_language_from=offset)
        if self.config.language is None and context_language is not None:
            # The context's own language, once its turn is decoded (usually long before; under
            # load a moment more): the engine leaves a context in another language out.
            language = await asyncio.shield(context_language)
            options = replace(options, language_hint=language or options.language_hint)
        transcript = await self.decoder.transcribe(self._engine, after_context(context, audio), options)
        return Final.of(words_after_context(transcript, offset), transcript)

    async def _final(self, item_id: str, audio: np.ndarray, previous: asyncio.Task | None, overloaded: bool,
                     context: np.ndarray | None = None, decoded: asyncio.Task | None = None,
                     speech_heard: bool = False, context_language: asyncio.Future | None = None,
                     language_out: asyncio.Future | None = None, seconds: float | None = None) -> None:
        seconds = audio.size / WHISPER_RATE if seconds is None else seconds  # what was heard, not padding
        event: ev.Event
        language = None
        try:
            if overloaded:
                raise Overloaded(
                    f"This session already has {self.limits.max_pending_turns} turns waiting for "
                    "transcription; the server is not keeping up. Turn dropped.",
                    retry_after=1.0,
                )
            final = await decoded if decoded is not None else await self._decode_final(
                audio, context, speech_heard, context_language)
            event = ev.TranscriptCompleted(item_id, final.text, seconds, final.language)
            language = final.language
        except VoxhostError as exc:
            event = ev.TranscriptFailed(item_id, exc)
        except Exception as exc:  # never let one turn take the session down
            log.exception("live transcription failed")
            event = ev.TranscriptFailed(item_id, VoxhostError(f"Transcription failed: {type(exc).__name__}"))
        finally:
            if language_out is not None and not language_out.done():
                language_out.set_result(language)  # also when it failed or was cancelled: no language
        if previous is not None:
            await asyncio.wait({previous})  # completed events follow commit order
        if language:
            self._language = language  # in commit order, as the events
        if not self._closed:
            await self._emit(event)
