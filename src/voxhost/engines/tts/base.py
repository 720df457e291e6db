"""The text-to-speech engine interface.

An engine loads its weights, lists its voices, resolves a voice definition
and turns one chunk of normalised text into float32 PCM at its own sample
rate. Splitting, joining, resampling, encoding, caching and scheduling are
done around it, so a studio adds an engine (bigger weights, a GPU) by
subclassing `TtsEngine` and registering it (see registry.py): the API, the
scheduler and the cache do not change. Which voice a request's name means is
the voice catalog's business (tts/voices.py), not the engine's.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxhost.engines.tts.text import TextChunk
from voxhost.errors import InvalidRequest


class EngineUnavailable(RuntimeError):
    """The engine's package or weights are not installed (e.g. the optional piper extra)."""


class UnknownVoice(InvalidRequest):
    code = "voice_not_found"

    def __init__(self, message: str):
        super().__init__(message, param="voice")


@dataclass(frozen=True)
class Voice:
    id: str
    engine: str
    language: str
    gender: str | None
    sample_rate: int
    description: str = ""
    accent: str = ""  # "American", "British", "Spanish", ...


@dataclass(frozen=True)
class VoiceSelection:
    """A resolved voice. `definition` is canonical text (e.g. a normalised blend);
    `fingerprint` hashes what the engine will actually use (weights, style
    vectors), so the phrase cache never serves audio of an older definition."""

    engine: str
    definition: str
    fingerprint: str
    data: Any = field(default=None, compare=False, repr=False)  # engine-private (style vector, ...)


@dataclass(frozen=True)
class SpokenWord:
    """A word as the engine spoke it: its phonemes, each with its start and end
    (seconds from the start of the chunk's audio), from the engine's own durations."""

    text: str
    phonemes: tuple[tuple[str, float, float], ...]

    @property
    def start(self) -> float:
        return self.phonemes[0][1]

    @property
    def end(self) -> float:
        return self.phonemes[-1][2]


@dataclass(frozen=True)
class TimedAudio:
    """One chunk's PCM and when each of its words is spoken (lip-sync)."""

    audio: np.ndarray
    words: tuple[SpokenWord, ...]


class TimingsUnavailable(InvalidRequest):
    code = "timestamps_unsupported"

    def __init__(self, message: str):
        super().__init__(message, param="timestamps")


class LanguageUnavailable(InvalidRequest):
    """The engine could read the language with a package this install lacks: a 400 that names
    the extra adding it."""

    code = "language_unavailable"

    def __init__(self, message: str):
        super().__init__(message, param="language")


def _language_argument(language: str) -> dict:
    """`language=` for a non-English chunk only: an English-only engine's synthesize() has no such argument."""
    return {} if language == "en" else {"language": language}


def fingerprint(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


class TtsEngine(ABC):
    name: str = ""
    sample_rate: int = 24_000
    license: str = ""
    description: str = ""
    uses_instructions: bool = False  # OpenAI's `instructions`: accepted and ignored unless True
    # ISO 639-1 codes the engine reads. An engine that speaks only English keeps the three-argument
    # synthesize(); one that lists more is also called with `language=` for the other languages.
    languages: frozenset[str] = frozenset({"en"})
    timed: bool = False  # synthesize_timed gives the phonemes' times (lip-sync); set by load()
    # The device VOXHOST_TTS_DEVICE asks for (auto|cpu|cuda), given to the constructor; an
    # engine that honours it sets what it got ("cpu" or "cuda") at load(). Others ignore it.
    device: str = "cpu"
    # onnxruntime's CPU arena for engines that make their own session (onnx_device.session_options:
    # on, shrunk after every run so a long synthesis's buffers are not kept for good). Set before
    # load(); benchmarks only. `arena_shrinkage` False keeps them (the arena's own default).
    cpu_mem_arena: bool = True
    arena_shrinkage: bool = True
    # How long the engine's onnxruntime pool spins within a run (VOXHOST_TTS_SPIN_US; set by the
    # registry before load()). engines/threads.py tts_threads.
    spin_us: int = 0
    # Engines whose graphs have ops voxhost's own kernels run faster (Kokoro's Snake and Sin: engines/onnx_ops)
    # use them (VOXHOST_TTS_NATIVE_OPS; set by the registry before load()); whether they did is
    # the engine's to say (KokoroEngine.native_sin).
    native_ops: bool = True

    def __init__(self, *, threads: int = 0, models_dir: Path | None = None, device: str = "cpu"):
        self.threads = threads  # onnxruntime intra-op threads; 0: the thread policy's (engines/threads.py)
        self.models_dir = models_dir
        self.device = device
        self.loaded = False

    @abstractmethod
    def load(self) -> None:
        """Load weights (once, at server start). Raise EngineUnavailable if not installed."""

    @property
    @abstractmethod
    def model_version(self) -> str:
        """Identity of the weights and code that shape the audio (part of the cache key)."""

    @abstractmethod
    def voices(self) -> list[Voice]: ...

    @property
    def default_voice(self) -> str:
        return self.voices()[0].id

    def resolve_voice(self, spec: str) -> VoiceSelection:
        """A single voice id; engines with blendable voices override this."""
        for voice in self.voices():
            if voice.id == spec:
                return VoiceSelection(self.name, spec, fingerprint(self.model_version, spec))
        raise UnknownVoice(f"Voice '{spec}' is not a voice of engine '{self.name}'.")

    @abstractmethod
    def synthesize(self, text: str, voice: VoiceSelection, speed: float = 1.0) -> np.ndarray:
        """One chunk of normalised text -> mono float32 in [-1, 1] at `sample_rate`.
        An empty array means "nothing to say here" (e.g. a word the G2P can't read)."""

    def synthesize_timed(self, text: str, voice: VoiceSelection, speed: float = 1.0,
                         language: str = "en") -> TimedAudio:
        """Like synthesize, with each word's phonemes and their times, for engines whose model
        reports its phoneme durations (`timed`). Others cannot say when a word is spoken."""
        raise TimingsUnavailable(f"Engine '{self.name}' cannot report word or phoneme timings; "
                                 "use a Kokoro model (tts-1-hd) for 'timestamps'.")

    def stream(self, chunks: Iterable[TextChunk], voice: VoiceSelection, speed: float = 1.0) -> Iterator[np.ndarray]:
        """PCM per chunk, each as soon as it is ready. Engines that stream below
        the sentence (token by token) override this."""
        for chunk in chunks:
            yield self.synthesize(chunk.text, voice, speed, **_language_argument(chunk.language))

    def load_language(self, language: str) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Load what reading `language` (one of `languages`) needs now rather than on its first
        line (VOXHOST_TTS_LANGUAGES). Engines with nothing to load per language keep this."""

    def missing_reader(self, language: str) -> str | None:
        """Why this engine cannot read `language` here although another install could (the
        extra that adds its reader), or None when it cannot read it at all."""
        return None

    def with_languages(self, voice: VoiceSelection, per_language: dict[str, VoiceSelection]) -> VoiceSelection:
        """`voice` for every language but those in `per_language`, which speak with their own
        voice (a design's `bases`). An engine whose selection holds one voice cannot."""
        if per_language:
            raise InvalidRequest(f"Engine '{self.name}' speaks every language with one voice; "
                                 "it has no voice per language.", param="voice", code="invalid_value")
        return voice

    def warm_up(self) -> None:
        """One synthesis so the first request doesn't pay for lazy initialisation."""
        self.synthesize("Warm up, traveler.", self.resolve_voice(self.default_voice))

    def describe(self) -> dict:
        return {"engine": self.name, "model_version": self.model_version, "sample_rate": self.sample_rate,
                "license": self.license, "description": self.description}
