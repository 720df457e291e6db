"""The speech-to-text engine interface: plain data in, plain data out.

Engines know nothing of HTTP or scheduling; the API and scheduler layers
only see these types.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Hashable, Iterable, Iterator, Literal, Protocol

import numpy as np

from voxhost.audio.pcm import WHISPER_RATE


@dataclass(frozen=True)
class TranscriptionOptions:
    task: Literal["transcribe", "translate"] = "transcribe"
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
    # False when the caller shows no timestamps (REST json/text): the engine may
    # then decode text-only where that is faster (WhisperEngine.text_only).
    timestamps_needed: bool = True


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


class SpeechToText(Protocol):
    """What every STT engine provides (Whisper, `simulated-gpu`, or a plugin from
    the `voxhost.stt_engines` entry-point group). The scheduler queues, batches,
    cancels and expires jobs; an engine only decodes, synchronously, in a worker
    thread, and says which requests may share a batch."""

    name: str
    multilingual: bool
    device: str  # "cpu" or "cuda": decides whether batching is on by default
    # Optional, read with getattr(..., None) by live sessions (an engine without them loses
    # only an optimisation): `n_mels`, set by engines that compute Whisper's log-mel features
    # and so accept the features a live turn carries (engines/stt/features.py); `gate_options`,
    # the faster-whisper VadOptions of the engine's no-speech gate, which a session that already
    # heard speech at that threshold turns off (realtime/session.py `_speech_heard`).

    def warm_up(self) -> None:
        """One decode at load, so the first request does not pay for lazy init."""
        ...

    def transcribe_stream(
        self, audio: np.ndarray, options: TranscriptionOptions
    ) -> tuple[TranscriptionInfo, Iterator[Segment]]:
        """Start decoding; segments are produced lazily as they are decoded."""
        ...

    def transcribe(self, audio: np.ndarray, options: TranscriptionOptions,
                   stop: threading.Event | None = None) -> Transcript:
        """The whole transcript; if `stop` is set meanwhile (the caller went away),
        stop decoding at the next segment and raise DecodeStopped (see `collect`)."""
        ...

    def batch_key(self, audio: np.ndarray, options: TranscriptionOptions) -> Hashable | None:
        """Requests with equal keys may share one `transcribe_batch` call; None: decode alone."""
        ...

    def transcribe_batch(
        self, audios: list[np.ndarray], options: list[TranscriptionOptions] | TranscriptionOptions
    ) -> list[Transcript | Exception]:
        """One result per clip, in order; an exception instance fails only its clip."""
        ...


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
    return (name, options.task, options.beam_size, options.vad_filter, options.without_timestamps,
            window_s, options.max_new_tokens, options.temperature_fallback)
