"""`simulated-gpu`: a capacity-testing tool that stands in for a GPU Whisper. Not a model.

Everything on the CPU runs for real, as WhisperEngine runs it: the Silero VAD
gate, and log-mel features over the padded encoder window, computed by
faster-whisper's own FeatureExtractor (or taken from a live turn's incremental
features, engines/stt/features.py, as WhisperEngine takes them). Only the model call is replaced: the
engine sleeps for a GPU decode time (per call, plus per item in a batch) and
returns a fixed text. `time.sleep` releases the GIL and uses no CPU, as a
CTranslate2 call on a GPU does, so a server running it shows what its CPU
carries per player without a GPU (vLLM's dummy weights, Triton's identity
models). Selected with VOXHOST_STT_MODELS=simulated-gpu; never a default.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from faster_whisper.audio import pad_or_trim
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.vad import VadOptions, get_speech_timestamps

from voxhost.audio.pcm import WHISPER_RATE
from voxhost.engines.stt.base import (
    Segment,
    SpeechToText,
    Transcript,
    TranscriptionInfo,
    TranscriptionOptions,
    clip_options,
    each_clip,
    window_batch_key,
)
from voxhost.engines.stt.features import features_for
from voxhost.engines.stt.windows import FRAMES_PER_SECOND, WHISPER_WINDOW_S


@dataclass
class _Prepared:
    """One clip after the CPU work: its encoder windows, or none (silence)."""

    duration: float
    windows: list[np.ndarray]  # (n_mels, window frames) each, as the encoder would get them


class SimulatedGpuEngine(SpeechToText):
    multilingual = True
    device = "cuda"  # what it stands in for: batching is on by default, as on a GPU
    compute_type = "simulated"
    n_mels: int = 80  # whisper-base's features
    description = "benchmark tool: real VAD and mel features, sleeps for a GPU decode, fixed text (not a model)"

    def __init__(self, name: str = "simulated-gpu", *, call_seconds: float = 0.03, item_seconds: float = 0.01,
                 text: str = "simulated transcript", vad_gate_threshold: float = 0.5):
        self.name = name
        self.call_seconds = call_seconds
        self.item_seconds = item_seconds
        self.text = text
        self.gate_threshold = vad_gate_threshold
        self._extractors: dict[int, FeatureExtractor] = {}
        self._lock = threading.Lock()
        # What the "GPU" was asked to do (tests and benchmarks read these).
        self.calls = 0
        self.batch_sizes: list[int] = []
        self.last_window_s: int | None = None

    def warm_up(self) -> None:
        tone = 0.1 * np.sin(2 * np.pi * 220 * np.arange(WHISPER_RATE) / WHISPER_RATE).astype(np.float32)
        self.transcribe(tone, TranscriptionOptions(vad_filter=False, beam_size=1, language="en"))

    # ---- the CPU side, as WhisperEngine does it --------------------------------------------
    def _window_seconds(self, options: TranscriptionOptions) -> int:
        return min(options.chunk_length or WHISPER_WINDOW_S, WHISPER_WINDOW_S)

    def _extractor(self, window_s: int) -> FeatureExtractor:
        with self._lock:
            if window_s not in self._extractors:
                self._extractors[window_s] = FeatureExtractor(chunk_length=window_s)
            return self._extractors[window_s]

    def _prepare(self, audio: np.ndarray, options: TranscriptionOptions) -> _Prepared:
        duration = len(audio) / WHISPER_RATE
        if options.vad_filter and not get_speech_timestamps(audio, VadOptions(threshold=self.gate_threshold)):
            return _Prepared(duration, [])  # Whisper skips the model on no speech; so do we
        window_s = self.last_window_s = self._window_seconds(options)
        features = features_for(audio, self.n_mels)  # carried by a live turn (engines/stt/features.py)
        if features is None:
            features = self._extractor(window_s)(audio)  # faster-whisper: features of the whole clip once
        frames = window_s * FRAMES_PER_SECOND
        content = max(1, features.shape[-1] - 1)  # its last frame is padding
        windows = [pad_or_trim(features[:, start:start + frames], frames) for start in range(0, content, frames)]
        return _Prepared(duration, windows)

    # ---- the "GPU" --------------------------------------------------------------------------
    def _decode(self, items: int) -> None:
        """One model call for `items` encoder windows. Sleeping releases the GIL."""
        with self._lock:
            self.calls += 1
            self.batch_sizes.append(items)
        time.sleep(self.call_seconds + self.item_seconds * items)

    def _transcript(self, prepared: _Prepared, options: TranscriptionOptions) -> Transcript:
        info = TranscriptionInfo(options.language or "en", 1.0 if prepared.windows else 0.0,
                                 prepared.duration, prepared.duration if prepared.windows else 0.0)
        if not prepared.windows:
            return Transcript(info, [])
        segment = Segment(id=0, seek=0, start=0.0, end=round(prepared.duration, 2), text=" " + self.text,
                          tokens=[], temperature=0.0, avg_logprob=0.0, compression_ratio=1.0, no_speech_prob=0.0)
        return Transcript(info, [segment])

    # ---- the engine contract (base.SpeechToText) ------------------------------------------
    def transcribe_stream(
        self, audio: np.ndarray, options: TranscriptionOptions
    ) -> tuple[TranscriptionInfo, Iterator[Segment]]:
        prepared = self._prepare(audio, options)
        transcript = self._transcript(prepared, options)

        def segments() -> Iterator[Segment]:
            for _ in prepared.windows:  # one model call per window, as Whisper seeks
                self._decode(1)
            yield from transcript.segments

        return transcript.info, segments()

    def batch_key(self, audio: np.ndarray, options: TranscriptionOptions) -> tuple | None:
        """WhisperEngine's rule (base.window_batch_key), so batches form as on a GPU."""
        return window_batch_key(self.name, audio, options, self._window_seconds(options))

    def transcribe_batch(
        self, audios: list[np.ndarray], options: list[TranscriptionOptions] | TranscriptionOptions
    ) -> list[Transcript | Exception]:
        per_clip = clip_options(audios, options)
        prepared = each_clip(self._prepare, audios, per_clip)  # a bad clip fails alone
        windows = sum(len(p.windows) for p in prepared if isinstance(p, _Prepared))
        if windows:
            self._decode(windows)
        return [p if isinstance(p, Exception) else self._transcript(p, o) for p, o in zip(prepared, per_clip)]
