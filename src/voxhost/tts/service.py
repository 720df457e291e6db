"""Text to speech as a service: request in, encoded audio bytes out, streamed.

validate + normalise text -> resolve engine and voice -> phrase cache ->
schedule synthesis (sentence by sentence) -> stitch (fades, pauses) ->
encode -> bytes. Used by the HTTP router and the CLI alike (so both compute
the same cache keys). Knows nothing of HTTP.
"""

from __future__ import annotations

import logging
import math
import time
import unicodedata
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from voxhost.audio.encode import StreamEncoder, check_format
from voxhost.audio.stitch import shape, silence
from voxhost.cache.phrases import PhraseCache, phrase_key
from voxhost.engines.tts import text as frontend
from voxhost.engines.tts.base import SpokenWord, TimedAudio, TtsEngine, VoiceSelection
from voxhost.engines.tts.text import TextChunk, Unpronounceable
from voxhost.errors import InvalidRequest
from voxhost.ops import context
from voxhost.scheduler.lanes import Lane
from voxhost.scheduler.tts import Synthesis, TtsScheduler
from voxhost.tts import language_id
from voxhost.tts.designs import VoiceDesign
from voxhost.tts.shaping import Shaper
from voxhost.tts.timing import Marks, Timeline
from voxhost.tts.voices import VoiceCatalog

log = logging.getLogger("voxhost.tts")

MIN_SPEED, MAX_SPEED = 0.25, 4.0
FIRST_SLICE_SECONDS = 0.1
SLICE_SECONDS = 1.0


@dataclass(frozen=True)
class SpeechJob:
    engine: TtsEngine
    voice: VoiceSelection
    text: str  # normalised: what is spoken and what the cache keys on
    chunks: tuple[TextChunk, ...]
    speed: float
    format: str
    key: str
    timestamps: bool = False  # lip-sync events in the stream (tts/timing.py)
    design: VoiceDesign | None = None  # a designed voice's shaping, applied around the engine
    # The same line without the early cut (text.split `early`): what a busy server speaks,
    # and its cache key. Equal to chunks/key where the line has no early cut to make.
    steady_chunks: tuple[TextChunk, ...] = ()
    steady_key: str = ""

    def cut(self, early: bool) -> tuple[tuple[TextChunk, ...], str]:
        """The chunks to speak and the cache key they make, with or without the early cut."""
        return (self.chunks, self.key) if early or not self.steady_chunks else (self.steady_chunks, self.steady_key)

    @property
    def input_tokens(self) -> int:
        # OpenAI bills TTS input in tokens; ~4 characters a token is its rule of thumb.
        return max(1, math.ceil(len(self.text) / 4))


@dataclass
class FirstChunkTiming:
    """Where the first audio byte's time went (seconds), measured on the worker.
    Sent as a Server-Timing header: a client sees what the network and HTTP add."""

    opened: float = 0.0  # open() called
    started: float = 0.0  # the engine asked for its first chunk (left the queue)
    synthesised: float = 0.0  # the engine handed over its first PCM
    encoded: float = 0.0  # its first bytes were encoded

    def header(self) -> str:
        def ms(a: float, b: float) -> float:
            return max(0.0, (b - a) * 1000) if a and b else 0.0

        return (f"queue;dur={ms(self.opened, self.started):.2f}, "
                f"engine;dur={ms(self.started, self.synthesised):.2f}, "
                f"encode;dur={ms(self.synthesised, self.encoded):.2f}")


@dataclass
class SpeechStream:
    cache: str  # "hit" | "miss"
    chunks: AsyncGenerator[bytes | Marks, None]
    data: bytes | None = None  # the whole audio, on a hit
    timing: FirstChunkTiming | None = None  # on a miss


class _Renderer:
    """Stitch (fades, pauses) and encode, on the synthesis worker. Hands the
    complete bytes to `on_complete` before the last piece leaves, so a repeat
    request that follows the response at once is already a hit."""

    def __init__(self, chunks: Sequence[TextChunk], fmt: str, rate: int,
                 on_complete: Callable[[bytes], None] | None, timing: FirstChunkTiming | None = None,
                 shaper: Shaper | None = None):
        self._chunks = chunks
        self._timeline = Timeline()
        self._position = 0  # samples rendered so far: where the next chunk's words start
        self._shaper = shaper
        self.timing = timing or FirstChunkTiming()
        self._rate = rate
        self._encoder = StreamEncoder(fmt, rate)
        self._index = 0
        self._spoken = False
        self._parts: list[bytes] = []
        self._on_complete = on_complete

    def feed(self, chunk_audio: np.ndarray | TimedAudio) -> Iterator[bytes | Marks]:
        words: tuple[SpokenWord, ...] = ()
        if isinstance(chunk_audio, TimedAudio):
            pcm, words = chunk_audio.audio, chunk_audio.words
        else:
            pcm = chunk_audio
        if not self.timing.synthesised:
            self.timing.synthesised = time.perf_counter()
        chunk = self._chunks[min(self._index, len(self._chunks) - 1)]
        self._index += 1
        if pcm.size == 0:
            return  # nothing pronounceable in this piece; no pause for it either
        if not np.isfinite(pcm).all():
            # An engine fault (a degenerate style vector, say): silence rather than
            # noise on the wire, and never into the phrase cache, where it would stay.
            log.error("TTS engine produced non-finite audio; this line is not cached")
            pcm = np.nan_to_num(pcm, nan=0.0, posinf=0.0, neginf=0.0)
            self._on_complete = None
        # A designed voice's first chunk comes from the shaper in two pieces (shaping.py,
        # voice_pieces): the head's bytes leave before the rest of the chunk is shaped.
        pieces = self._shaper.voice_pieces(pcm, early=not self._spoken) if self._shaper is not None \
            else iter([(pcm, True)])
        for n, (piece, last) in enumerate(pieces):
            audio = shape(piece, self._rate, fade_in=n == 0, fade_out=last)
            if n == 0 and self._spoken and chunk.pause > 0:
                audio = np.concatenate([silence(chunk.pause, self._rate), audio])
            if self._shaper is not None:  # after the pause, so an echo rings on through it
                audio = self._shaper.effect(audio)
            if n == 0 and words:  # shaping keeps the length, so the engine's times hold after the pause
                start = self._position + (audio.size - piece.size)
                yield Marks(self._timeline.events(words, start / self._rate))
            yield from self._encode(audio)

    def _encode(self, audio: np.ndarray) -> Iterator[bytes]:
        self._position += audio.size
        # Encode the first sentence in short slices: its first bytes leave after
        # ~0.1 s of audio is encoded, not after the whole sentence is.
        first = int(FIRST_SLICE_SECONDS * self._rate) if not self._spoken else 0
        self._spoken = True
        step = int(SLICE_SECONDS * self._rate)
        bounds = [0, *range(first or step, audio.size, step), audio.size]
        for start, end in zip(bounds, bounds[1:]):
            data = self._encoder.encode(audio[start:end])
            if data and not self.timing.encoded:
                self.timing.encoded = time.perf_counter()
            if data:
                if self._on_complete is not None:
                    self._parts.append(data)
                yield data

    def close(self) -> bytes:
        if not self._spoken:
            self._encoder.abort()
            raise Unpronounceable("The engine found nothing it could pronounce in 'input'.", param="input")
        ring = self._shaper.flush() if self._shaper is not None else None
        tail = (self._encoder.encode(ring) if ring is not None and ring.size else b"") + self._encoder.close()
        if self._on_complete is not None:
            self._on_complete(b"".join(self._parts) + tail)
        return tail

    def abort(self) -> None:
        self._encoder.abort()


class SpeechService:
    def __init__(self, voices: VoiceCatalog, scheduler: TtsScheduler, cache: PhraseCache | None,
                 *, max_input_chars: int = frontend.MAX_INPUT_CHARS,
                 first_chunk_words: int = frontend.FIRST_CHUNK_WORDS):
        self.voices = voices
        self.scheduler = scheduler
        self.cache = cache
        self.max_input_chars = max_input_chars
        self.first_chunk_words = first_chunk_words

    def load(self) -> None:
        """Language identification's model now: every line is read by it, so the first line
        should not be the one to wait for it."""
        language_id.load()

    def prepare(self, *, model: str | None, voice: str | VoiceDesign, text: str, speed: float = 1.0,
                fmt: str = "mp3", timestamps: bool = False, language: str | None = None) -> SpeechJob:
        """Validate everything a request can get wrong, before any work is queued.
        `voice` is a name (or blend), or an unsaved design being auditioned; `language`
        forces the language of the whole text (else each sentence's is detected)."""
        check_format(fmt)
        if not isinstance(speed, (int, float)) or not math.isfinite(speed) or not MIN_SPEED <= speed <= MAX_SPEED:
            raise InvalidRequest(f"'speed' must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}.",
                                 param="speed", code="invalid_value")
        forced = language_id.spoken_language(language)
        resolved = self.voices.resolve(model, voice)  # a bad voice is a 400 before the text is read
        spoken, chunks, steady = self._chunks(text, forced)
        languages = frozenset(c.language for c in chunks)
        if languages != {"en"}:  # the voice for each language, on an engine that reads them all
            resolved = self.voices.resolve(model, voice, languages)
        engine, selection, design = resolved.engine, resolved.selection, resolved.design
        if timestamps and not engine.timed:
            engine.synthesize_timed("", selection)  # raises its 400: this engine has no timings
        if design is not None:  # a designed voice's pace multiplies the request's
            speed = min(MAX_SPEED, max(MIN_SPEED, speed * design.speed))
        # Keyed on the chunks, not just the text: where the line is cut changes the audio.
        def key(cut: tuple[TextChunk, ...]) -> str:
            return phrase_key(text="\x1f".join(c.text for c in cut), voice_fingerprint=selection.fingerprint,
                              engine_version=engine.model_version, speed=speed, fmt=fmt,
                              languages=[c.language for c in cut])

        return SpeechJob(engine, selection, spoken, chunks, float(speed), fmt, key(chunks), timestamps, design,
                         steady_chunks=steady, steady_key=key(steady))

    def _chunks(self, text: str, forced: str | None
                ) -> tuple[str, tuple[TextChunk, ...], tuple[TextChunk, ...]]:
        """The spoken text and its chunks, each in its language: the text's runs of sentences in
        one language (tts/language_id.py), each normalised and split the way its language is;
        cut with the early first chunk and without it (SpeechService.open picks)."""
        frontend.validate(text, self.max_input_chars)
        chunks: list[TextChunk] = []
        steady: list[TextChunk] = []
        spoken: list[str] = []
        for code, run in language_id.runs(unicodedata.normalize("NFKC", text), forced):
            normalised = frontend.normalize(run, code)
            if not frontend.speakable(normalised):
                continue
            spoken.append(normalised)
            for cut, early in ((chunks, True), (steady, False)):
                cut += frontend.split(normalised, first_word_limit=self.first_chunk_words, language=code,
                                      leading=not cut, early=early)
        if not chunks:
            raise Unpronounceable("'input' has nothing to pronounce (only emoji, symbols or punctuation).",
                                  param="input")
        return " ".join(spoken), tuple(chunks), tuple(steady)

    def cached(self, job: SpeechJob) -> bytes | None:
        """The line's audio if the cache has it, cut either way (both are the same line)."""
        if self.cache is None:
            return None
        for key in dict.fromkeys((job.key, job.steady_key or job.key)):
            data = self.cache.get(key)
            if data is not None:
                return data
        return None

    async def open(self, job: SpeechJob, *, lane: Lane = Lane.INTERACTIVE, early: bool | None = None) -> SpeechStream:
        """Start the audio. Returns once the first bytes exist, so a request that
        fails (queue full, nothing pronounceable) fails before any byte is sent.

        `early`: cut the first chunk short for a sooner first byte (None: only when no other
        synthesis runs or waits). Each cut costs the engine a call's lead-in and ending again
        (Kokoro: 1.16-1.34x the frames of the line). Alone, the line spends idle cores on it;
        beside other lines, the cores are shared and the cut's cost comes out of every line's
        time, so a busy server speaks whole clauses (docs/benchmarks.md, "Kokoro against
        kokoro-onnx")."""
        data = self.cached(job) if not job.timestamps else None  # the cache keeps audio, not timings
        context.note_cache(data is not None)
        if data is not None:
            return SpeechStream("hit", _once(data), data)
        context.note_characters(len(job.text))
        chunks, key = job.cut(self.scheduler.idle if early is None else early)
        timing = FirstChunkTiming(opened=time.perf_counter())
        cache = self.cache
        on_complete = (lambda blob: cache.put(key, blob)) if cache is not None else None
        renderer = _Renderer(chunks, job.format, job.engine.sample_rate, on_complete, timing,
                             Shaper.for_design(job.design, job.engine.sample_rate))
        engine: Synthesis = _TimedEngine(job.engine) if job.timestamps else job.engine
        stream = self.scheduler.stream(engine, _timed(chunks, timing), job.voice, job.speed, renderer,
                                       lane=lane, characters=len(job.text))
        try:
            first = await stream.__anext__()
        except StopAsyncIteration:  # pragma: no cover - the renderer raises first
            raise Unpronounceable("The engine produced no audio for 'input'.", param="input") from None
        except BaseException:
            await stream.aclose()
            raise
        return SpeechStream("miss", _chain(first, stream), timing=timing)

    async def synthesize(self, job: SpeechJob, *, lane: Lane = Lane.INTERACTIVE) -> tuple[bytes, str]:
        """The whole line as bytes (CLI, cache warming); fills the cache on a miss. Cut as
        an idle server cuts it (`job.key`), whatever the load: the key is then known."""
        result = await self.open(job, lane=lane, early=True)
        parts = [piece async for piece in result.chunks if isinstance(piece, bytes)]  # no timings asked
        return b"".join(parts), result.cache


def _timed(chunks: Sequence[TextChunk], timing: FirstChunkTiming) -> Iterator[TextChunk]:
    """The chunks, noting when the engine (on its worker) asks for the first."""
    for i, chunk in enumerate(chunks):
        if i == 0:
            timing.started = time.perf_counter()
        yield chunk


class _TimedEngine:
    """The engine as the scheduler sees it when timings are asked for: each
    chunk's PCM comes with its words, for the renderer to place on the line."""

    def __init__(self, engine: TtsEngine):
        self._engine = engine
        self.name = engine.name  # the scheduler's estimates are per engine

    def stream(self, chunks: Iterable[TextChunk], voice: VoiceSelection, speed: float) -> Iterator[TimedAudio]:
        for chunk in chunks:
            yield self._engine.synthesize_timed(chunk.text, voice, speed, chunk.language)


async def _once(data: bytes) -> AsyncGenerator[bytes | Marks, None]:
    yield data


async def _chain(first: bytes | Marks, rest: AsyncGenerator[bytes | Marks, None]
                 ) -> AsyncGenerator[bytes | Marks, None]:
    try:
        yield first
        async for piece in rest:
            yield piece
    finally:
        await rest.aclose()
