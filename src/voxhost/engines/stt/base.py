"""The speech-to-text engine contract: plain data in, plain data out.

Engines know nothing of HTTP, scheduling or policy; the API and scheduler layers
only see these types. An engine obeys its options: which window, whether to
decode timestamps, how many tokens, are decided by the services that call it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np

from voxhost.audio.pcm import WHISPER_RATE

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class TranscriptionOptions:
    task: Task = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    beam_size: int = 5
    word_timestamps: bool = False
    vad_filter: bool = True
    hotwords: str | None = None
    # Short-turn speed-ups (live finals and partials): skip timestamp tokens,
    # and encode a window of `chunk_length` seconds instead of Whisper's 30 s.
    without_timestamps: bool = False
    chunk_length: int | None = None
    # Bounds for live decodes: a short window can send Whisper into a
    # repetition loop ("printing printing ..."); cap its tokens, and let
    # partials skip the temperature-fallback retries.
    max_new_tokens: int | None = None
    temperature_fallback: bool = True
    # With `language` unset, two things a live session knows (realtime/session.py):
    # - the speaker's language so far: kept unless Whisper hears another one in this audio
    #   with at least LANGUAGE_SWITCH_CONFIDENCE (short turns are detected poorly alone);
    language_hint: str | None = None
    # - how many seconds at the start are context (the previous turn's tail): the language is
    #   detected after them, and if it is another than the hint, they are not decoded (Whisper
    #   spent its tokens on a Korean context heard as Chinese, and lost the Chinese turn).
    detect_language_from: float = 0.0
    # The speed-ups above (`chunk_length`, `without_timestamps`) only where the language, given
    # or detected first, is one of these; any other decodes as Whisper does. None: any language.
    shortcut_languages: frozenset[str] | None = None


# How sure Whisper must be of another language than `language_hint` for a decode to switch to it:
# above faster-whisper's own 0.5 ("detected"), where continuing live turns heard alone went wrong
# on the eval set while new speakers' first turns were mostly far above it (docs/benchmarks.md
# "Speech-to-text per language").
LANGUAGE_SWITCH_CONFIDENCE = 0.6


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)


@dataclass
class TranscriptionInfo:
    language: str
    language_probability: float
    duration: float  # seconds of input audio
    speech_duration: float  # seconds left after VAD


@dataclass
class Transcript:
    info: TranscriptionInfo
    segments: list[Segment]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()


class SpeechToText(ABC):
    """What every STT engine provides (Whisper, `simulated-gpu`, or a plugin from the
    `voxhost.stt_engines` entry-point group, whose factory is called with (name, settings)
    and returns an instance of a subclass). The scheduler queues, batches, cancels and
    expires jobs; an engine only decodes, synchronously, in a worker thread, and says
    which requests may share a batch. Everything but `transcribe_stream` has a default."""

    name: str = ""
    description: str = ""
    multilingual: bool = True  # False: English only (translate and other languages are refused)
    device: str = "cpu"  # "cpu" or "cuda": decides whether batching is on by default
    compute_type: str = "-"  # the precision the weights run at (int8, float16, ...): logged at load
    num_workers: int = 1  # decodes it runs in parallel: the scheduler runs this many jobs at once
    # Live-session optimisations; None where the engine has none (it then loses only the saving):
    n_mels: int | None = None  # computes Whisper's log-mel features, so takes a live turn's (features.py)
    gate_threshold: float | None = None  # its no-speech gate's VAD threshold: a session that heard speech
    # at this threshold turns the gate off (realtime/session.py)

    def warm_up(self) -> None:  # noqa: B027 - optional: an engine without lazy init needs none
        """One decode at load, so the first request does not pay for lazy init."""

    @abstractmethod
    def transcribe_stream(
        self, audio: np.ndarray, options: TranscriptionOptions
    ) -> tuple[TranscriptionInfo, Iterator[Segment]]:
        """Start decoding; segments are produced lazily as they are decoded."""

    def transcribe(self, audio: np.ndarray, options: TranscriptionOptions,
                   stop: threading.Event | None = None) -> Transcript:
        """The whole transcript; if `stop` is set meanwhile (the caller went away),
        stop decoding at the next segment and raise DecodeStopped (see `collect`)."""
        info, segments = self.transcribe_stream(audio, options)
        return Transcript(info, collect(segments, stop))

    def batch_key(self, audio: np.ndarray, options: TranscriptionOptions) -> Hashable | None:
        """Requests with equal keys may share one `transcribe_batch` call; None: decode alone."""
        return None

    def transcribe_batch(
        self, audios: list[np.ndarray], options: list[TranscriptionOptions] | TranscriptionOptions
    ) -> list[Transcript | Exception]:
        """One result per clip, in order; an exception instance fails only its clip."""
        return each_clip(self.transcribe, audios, options)


T = TypeVar("T")


def clip_options(audios: list[np.ndarray], options: list[TranscriptionOptions] | TranscriptionOptions
                 ) -> list[TranscriptionOptions]:
    """A batch's options, one per clip (one options object may serve them all)."""
    return [options] * len(audios) if isinstance(options, TranscriptionOptions) else options


def each_clip(fn: Callable[[np.ndarray, TranscriptionOptions], T], audios: list[np.ndarray],
              options: list[TranscriptionOptions] | TranscriptionOptions) -> list[T | Exception]:
    """`fn` on each clip of a batch with its options; an exception instance in place of a
    clip's result fails that clip alone."""
    results: list[T | Exception] = []
    for audio, opts in zip(audios, clip_options(audios, options)):
        try:
            results.append(fn(audio, opts))
        except Exception as exc:
            results.append(exc)
    return results


class DecodeStopped(Exception):
    """A decode was stopped part-way because its caller went away; nobody reads its result."""


def collect(segments: Iterable[Segment], stop: threading.Event | None) -> list[Segment]:
    """All of a lazy decode's segments, unless `stop` is set first.

    Whisper decodes a long file one 30 s window at a time, each window when its
    segments are asked for; checking `stop` between them ends the decode of a
    client that hung up within a window's work instead of at the end of the file.
    """
    out: list[Segment] = []
    iterator = iter(segments)
    try:
        while stop is None or not stop.is_set():
            segment = next(iterator, None)
            if segment is None:
                return out
            out.append(segment)
        raise DecodeStopped()
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:  # a generator: let go of what the decode holds now
            close()


def window_batch_key(name: str, audio: np.ndarray, options: TranscriptionOptions, window_s: float) -> tuple | None:
    """The batching rule every Whisper-shaped engine shares (the real engine and the
    simulated one): one encoder window of audio at temperature 0, nothing that changes
    the prompt or needs the alignment pass; equal keys can share one batch."""
    if len(audio) > window_s * WHISPER_RATE:
        return None
    if options.temperature > 0 or options.prompt or options.hotwords or options.word_timestamps:
        return None
    if options.detect_language_from or (options.shortcut_languages is not None
                                        and options.language not in options.shortcut_languages):
        return None  # the language is settled before the decode: the sequential path does that
    return (name, options.task, options.beam_size, options.vad_filter, options.without_timestamps,
            window_s, options.max_new_tokens, options.temperature_fallback)
