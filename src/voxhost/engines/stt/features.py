"""Whisper's log-mel features of a growing live turn, each STFT frame computed once.

faster-whisper computes features over the whole clip on every call, so a live
turn's partials (every 500 ms) recompute every earlier frame: 24-33% of a live
player's CPU outside the model (docs/benchmarks.md, capacity). A frame of
Whisper's STFT (400-sample window, 160 hop, centred with reflect padding, after
160 samples of zero padding at the end) depends only on the samples under it, so
once the turn has grown past a frame's window that frame never changes. Only the
normalisation is global (log-mel clamped to the clip's max - 8, then scaled), so
the mel *power* is cached and the log and clamp are applied per decode, over the
whole clip, exactly as `FeatureExtractor.__call__` does.

The live session hands the cache to the engine with the audio (`with_features`);
engines that compute Whisper features take them from it (`features_for`) and
fall back to computing them when the audio is not the one the cache was built for.
"""

from __future__ import annotations

import threading

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

N_FFT, HOP, END_PADDING = 400, 160, 160  # FeatureExtractor's defaults, as every Whisper uses them
_HALF = N_FFT // 2
_WINDOW = np.hanning(N_FFT + 1)[:-1].astype("float32")
_FILTERS: dict[int, np.ndarray] = {}


def _mel_filters(n_mels: int) -> np.ndarray:
    if n_mels not in _FILTERS:
        _FILTERS[n_mels] = FeatureExtractor(feature_size=n_mels).mel_filters
    return _FILTERS[n_mels]


def _mel_power(segment: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Mel power of every full frame of `segment` (already padded), as faster-whisper computes it."""
    stft = FeatureExtractor.stft(segment, N_FFT, HOP, window=_WINDOW, center=False,
                                 return_complex=True).astype("complex64")
    # Contiguous: OpenBLAS threads a matmul with a transposed operand, which on a busy host
    # cost 4 ms instead of 0.03 ms per call (measured; faster-whisper multiplies the transposed STFT).
    return filters @ np.ascontiguousarray(np.abs(stft) ** 2)


def log_mel(power: np.ndarray) -> np.ndarray:
    """FeatureExtractor's normalisation, over the whole clip."""
    log_spec = np.log10(np.clip(power, a_min=1e-10, a_max=None))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


class IncrementalMel:
    """Log-mel features of one clip that only grows at its end (a live turn).

    `features(audio)` equals `FeatureExtractor(feature_size=n_mels)(audio)` (tests:
    tests/realtime/test_cpu.py) for every `audio` that is a prefix of one clip,
    in any order; frames whose window lies wholly inside audio already seen are
    reused. Thread-safe: a partial and a final of one turn may decode at once."""

    def __init__(self, n_mels: int = 80):
        self.n_mels = n_mels
        self._filters = _mel_filters(n_mels)
        self._stable: list[np.ndarray] = []  # mel power of frames that can no longer change
        self._frames = 0
        self._lock = threading.Lock()

    def features(self, audio: np.ndarray) -> np.ndarray:
        audio = audio.astype(np.float32, copy=False)
        length = audio.size
        if length <= 3 * N_FFT:  # too short to have settled frames: as faster-whisper
            return log_mel(_mel_power(np.pad(np.pad(audio, (0, END_PADDING)), _HALF, mode="reflect"),
                                      self._filters)[:, :-1])
        with self._lock:
            # Frame j covers samples [j*HOP - 200, j*HOP + 200): settled once j*HOP + 200 <= length.
            settled = (length - _HALF) // HOP + 1
            if settled > self._frames:
                first = self._frames
                # In "centred" coordinates (the clip after its 200-sample left reflection).
                centred = np.concatenate([audio[_HALF:0:-1], audio[: (settled - 1) * HOP + _HALF]]) if first < 2 \
                    else audio[first * HOP - _HALF: (settled - 1) * HOP + _HALF]
                start = first * HOP if first < 2 else 0
                self._stable.append(_mel_power(centred[start:], self._filters))
                self._frames = settled
            stable = np.concatenate(self._stable, axis=1) if len(self._stable) > 1 else self._stable[0]
            self._stable = [stable]
        # A shorter prefix than the longest seen (a speculative final cut at the VAD's
        # position after a partial that heard more): its last frames are still open.
        stable = stable[:, :settled]
        # The frames still open: over the end padding and its reflection.
        tail = np.pad(np.pad(audio[settled * HOP - _HALF:], (0, END_PADDING)), (0, _HALF), mode="reflect")
        power = np.concatenate([stable, _mel_power(tail, self._filters)], axis=1)[:, :-1]
        return log_mel(power)


class AudioWithFeatures(np.ndarray):
    """Audio that carries the incremental features of the turn it is a prefix of.

    An ndarray subclass so that it travels unchanged through the scheduler and
    any engine that only sees an array; anything derived from it (a slice, a
    concatenation with context) is a plain array and gets no features."""

    features_cache: IncrementalMel


def with_features(audio: np.ndarray, cache: IncrementalMel) -> np.ndarray:
    carried = audio.view(AudioWithFeatures)
    carried.features_cache = cache
    return carried


def features_for(audio: np.ndarray, n_mels: int) -> np.ndarray | None:
    """The carried features of exactly `audio`, or None (compute them as usual)."""
    cache = getattr(audio, "features_cache", None) if type(audio) is AudioWithFeatures else None
    if cache is None or cache.n_mels != n_mels:
        return None
    return cache.features(np.asarray(audio))


class CarriedFeatureExtractor:
    """A WhisperModel's FeatureExtractor that answers for one clip with features
    computed before (a live turn's), and computes as usual for anything else."""

    def __init__(self, inner: FeatureExtractor, audio: np.ndarray, features: np.ndarray):
        self._inner, self._audio, self._features = inner, audio, features

    def __call__(self, waveform: np.ndarray, padding: int = END_PADDING, chunk_length: int | None = None):
        if waveform is self._audio and padding == END_PADDING and chunk_length is None:
            return self._features
        return self._inner(waveform, padding=padding, chunk_length=chunk_length)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)
