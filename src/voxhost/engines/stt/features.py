"""Whisper's log-mel features of a growing live turn, each STFT frame computed once.

faster-whisper computes features over the whole clip on every call, so a live
turn's partials (every 500 ms) recompute every earlier frame: 24-33% of a live
player's CPU outside the model (docs/benchmarks.md, capacity). A frame of
Whisper's STFT (400-sample window, 160 hop, centred with reflect padding, after
160 samples of zero padding at the end) depends only on the samples under it, so
once the turn has grown past a frame's window that frame never changes. Only the
normalisation is global (log-mel clamped to the clip's max - 8, then scaled), so
the log mel power is cached and the clamp and scaling are applied per decode,
over the whole clip, exactly as `FeatureExtractor.__call__` does.

A final decoded after the previous turn's tail (realtime/decoding.py) is one
clip, context + turn, whose frames are the context's (taken from the previous
turn's cache) and the turn's, except the few that straddle the join.

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
    # costs orders of magnitude more per call (faster-whisper multiplies the transposed STFT).
    return filters @ np.ascontiguousarray(np.abs(stft) ** 2)


def _log10(power: np.ndarray) -> np.ndarray:
    """FeatureExtractor's log of the mel power: per element, so a settled frame's never changes."""
    return np.log10(np.clip(power, a_min=1e-10, a_max=None))


def _normalise(log_spec: np.ndarray, peak: float) -> np.ndarray:
    """FeatureExtractor's clamp to the clip's largest value - 8 and its scaling, in place."""
    np.maximum(log_spec, np.float32(peak) - np.float32(8.0), out=log_spec)
    log_spec += np.float32(4.0)
    log_spec /= np.float32(4.0)
    return log_spec


def log_mel(power: np.ndarray) -> np.ndarray:
    """FeatureExtractor's normalisation, over the whole clip."""
    log_spec = _log10(power)
    return _normalise(log_spec, log_spec.max())


def _head(audio: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Mel power of the first two frames of `audio` alone: their windows reach into its left reflection."""
    return _mel_power(np.concatenate([audio[_HALF:0:-1], audio[: HOP + _HALF]]), filters)


_END_ZEROS = np.zeros(END_PADDING, np.float32)


def _open_end(audio: np.ndarray, first: int, filters: np.ndarray) -> np.ndarray:
    """Mel power of the frames of `audio` alone from `first` on: over its end padding and
    that padding's reflection, so they change while the clip grows."""
    padded = np.concatenate([audio[first * HOP - _HALF:], _END_ZEROS])
    # np.pad(..., mode="reflect") by hand: it cost more than the FFT of these 2-3 frames.
    return _mel_power(np.concatenate([padded, padded[-2:-_HALF - 2:-1]]), filters)


class IncrementalMel:
    """Log-mel features of a live turn, decoded alone or after the previous turn's tail (context).

    The cache's clip is `context + turn`, where the turn only grows at its end.
    `features(audio, offset)` equals `FeatureExtractor(feature_size=n_mels)(audio)`
    (tests: tests/realtime/test_cpu.py) for `audio = clip[offset:offset + len(audio)]`,
    `offset` 0 (a final decoded after its context) or `turn_offset` (the turn alone:
    partials, finals without context), for any length, in any order. A frame whose
    window lies wholly inside audio already seen is reused; only the frames that see
    a clip's edge (two at its start, the few over its end padding) are computed per call.

    A context that is the tail of an earlier turn's clip, cut on that clip's frame
    grid (`tail`), brings that turn's frames with it, so the context's frames are not
    computed again; its length is a multiple of the hop, so the turn's frames are the
    same in the turn alone as after its context.
    Thread-safe: a partial and a final of one turn may decode at once."""

    def __init__(self, n_mels: int = 80, context: np.ndarray | None = None):
        self.n_mels = n_mels
        self._filters = _mel_filters(n_mels)
        if context is not None and (context.size < 3 * N_FFT or context.size % HOP):
            context = None  # not on the turn's frame grid: finals after it compute their own features
        self.context = context
        self.turn_offset = 0 if context is None else context.size
        # The frames inside the context, from the turn it was cut from (`tail`).
        seed = getattr(context, "frames", None) if type(context) is ContextTail else None
        self._seed = seed if seed is not None and seed.shape[0] == n_mels else None
        # Log mel power of the clip frames that can no longer change ([:, :_frames]), in a buffer
        # grown by doubling (concatenating per decode copied the whole turn each time), and each
        # frame's largest value, for the clamp to the clip's max - 8.
        self._log = np.empty((n_mels, 0), np.float32)
        self._peak = np.empty(0, np.float32)
        self._frames = 0
        self._turn_head: np.ndarray | None = None  # the turn alone's first two frames, once it is long enough
        self._lock = threading.Lock()

    def features(self, audio: np.ndarray, offset: int = 0, heard: int | None = None) -> np.ndarray:
        """`heard`: how many of `audio`'s samples are the clip's; the rest (silence a final is
        padded with) is computed for this call only and never settles into the cache, where
        the clip's real audio may later arrive."""
        audio = audio.astype(np.float32, copy=False)
        length = audio.size
        heard = length if heard is None else min(heard, length)
        if heard <= 3 * N_FFT:  # too short to have settled frames: as faster-whisper
            return log_mel(_mel_power(np.pad(np.pad(audio, (0, END_PADDING)), _HALF, mode="reflect"),
                                      self._filters)[:, :-1])
        settled, log, peak = self._settle(audio[:heard], offset)
        first = offset // HOP  # the clip frame where `audio`'s frame 0 sits
        own = settled - first  # frames of `audio` alone that no longer change
        # A shorter prefix than the longest seen (a speculative final cut at the VAD's
        # position after a partial that heard more) just stops earlier in the buffer.
        head = log[:, :2] if offset == 0 else self._head_of_turn(audio)
        end = _log10(_open_end(audio, own, self._filters))
        log_spec = np.concatenate([head, log[:, first + 2:settled], end], axis=1)[:, :-1]
        top = max(float(peak[first + 2:settled].max(initial=-np.inf)), float(head.max()), float(end[:, :-1].max()))
        return _normalise(log_spec, top)

    def _head_of_turn(self, audio: np.ndarray) -> np.ndarray:
        """Log mel power of the first two frames of the turn alone (`audio`, longer than their windows)."""
        if self._turn_head is None:
            self._turn_head = _log10(_head(audio, self._filters))
        return self._turn_head

    def _settle(self, audio: np.ndarray, offset: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Compute the clip frames that `audio` (at `offset` in the clip) settles, if not done yet."""
        # Clip frame j covers clip samples [j*HOP - 200, j*HOP + 200): settled once inside the clip seen.
        settled = (offset + audio.size - _HALF) // HOP + 1
        with self._lock:
            if self._frames == 0 and self.context is not None:
                self._take_context()
            if settled > self._frames:
                self._extend(audio, offset, settled)
            return settled, self._log, self._peak  # frames before `settled` are never written again

    def frames_within(self, audio: np.ndarray, offset: int, start: int) -> np.ndarray:
        """Log mel power of the frames whose windows lie inside `audio[start:]` (`audio` at
        `offset` in the clip, both multiples of HOP): the next turn's context's own."""
        settled, log, _ = self._settle(np.asarray(audio, dtype=np.float32), offset)
        return log[:, (offset + start) // HOP + 2:settled].copy()

    def _append(self, log: np.ndarray) -> None:
        frames = self._frames + log.shape[1]
        if frames > self._log.shape[1]:
            capacity = max(frames, 2 * self._log.shape[1], 256)
            grown, peak = np.empty((self.n_mels, capacity), np.float32), np.empty(capacity, np.float32)
            grown[:, :self._frames], peak[:self._frames] = self._log[:, :self._frames], self._peak[:self._frames]
            self._log, self._peak = grown, peak
        self._log[:, self._frames:frames] = log
        self._peak[self._frames:frames] = log.max(axis=0)
        self._frames = frames

    def _take_context(self) -> None:
        """The frames inside the context: from the turn it was cut from, the rest computed."""
        samples = np.asarray(self.context)
        inside = (samples.size - _HALF) // HOP + 1  # frames whose window lies in the context
        self._append(_log10(_head(samples, self._filters)))
        if self._seed is not None:
            self._append(self._seed[:, :inside - 2])
            self._seed = None
        if self._frames < inside:
            self._append(_log10(_mel_power(samples[self._frames * HOP - _HALF:(inside - 1) * HOP + _HALF],
                                           self._filters)))

    def _extend(self, audio: np.ndarray, offset: int, settled: int) -> None:
        """Compute clip frames [self._frames, settled) from `audio` (at `offset` in the clip) and the context."""
        if self._frames < 2:  # no context, and the clip's first frames: over its left reflection
            self._append(_log10(_head(audio, self._filters)))
        start, stop = self._frames * HOP - _HALF, (settled - 1) * HOP + _HALF  # clip samples
        if start >= offset:
            samples = audio[start - offset:stop - offset]
        else:  # the turn alone, frames across the join with its context
            samples = np.concatenate([np.asarray(self.context)[start:], audio[:stop - offset]])
        self._append(_log10(_mel_power(samples, self._filters)))


class AudioWithFeatures(np.ndarray):
    """Audio that carries the incremental features of the clip it is part of.

    An ndarray subclass so that it travels unchanged through the scheduler and
    any engine that only sees an array; anything derived from it (a slice, a
    concatenation) is a plain array and gets no features."""

    features_cache: IncrementalMel
    features_offset: int  # where this audio starts in the cache's clip
    features_heard: int | None  # its samples that are the clip's (the rest is padding); None: all


def with_features(audio: np.ndarray, cache: IncrementalMel, offset: int = 0, heard: int | None = None) -> np.ndarray:
    """`audio` carrying `cache`'s features; `heard`: its samples that are the clip's (the rest is
    padding, e.g. the silence a final runs into), None: all of them."""
    carried = audio.view(AudioWithFeatures)
    carried.features_cache = cache
    carried.features_offset = offset
    carried.features_heard = heard
    return carried


def features_for(audio: np.ndarray, n_mels: int) -> np.ndarray | None:
    """The carried features of exactly `audio`, or None (compute them as usual)."""
    if type(audio) is not AudioWithFeatures:
        return None
    cache = getattr(audio, "features_cache", None)  # a slice of carried audio is the same type, unset
    if cache is None or cache.n_mels != n_mels:
        return None
    return cache.features(np.asarray(audio), audio.features_offset, getattr(audio, "features_heard", None))


def after_context(context: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """`context + turn`, carrying the turn's features when its cache was built after this context."""
    joined = np.concatenate([np.asarray(context), np.asarray(turn)])
    if type(turn) is not AudioWithFeatures:
        return joined
    cache = getattr(turn, "features_cache", None)
    if cache is not None and cache.context is context and turn.features_offset == cache.turn_offset:
        heard = getattr(turn, "features_heard", None)
        return with_features(joined, cache, 0, None if heard is None else context.size + heard)
    return joined


class ContextTail(np.ndarray):
    """The next turn's context, with the log mel power of its inner frames (`frames`) from the turn it ends."""

    frames: np.ndarray | None


def tail(clip: np.ndarray, samples: int) -> np.ndarray:
    """About the last `samples` of `clip` as the next turn's context, cut on the clip's
    frame grid (at most HOP - 1 samples, 10 ms, short of its end: the trailing
    silence of a turn the VAD ended), so the next turn reuses its frames. The frames
    are settled and copied now (a few since the last partial), so the tail holds 4 s
    of frames rather than the whole turn's cache."""
    end = clip.size // HOP * HOP
    start = max(0, end - samples // HOP * HOP)
    cut = np.asarray(clip)[start:end].copy().view(ContextTail)  # a view would pin the whole turn
    cut.frames = None
    if type(clip) is AudioWithFeatures and cut.size >= 3 * N_FFT:
        cut.frames = clip.features_cache.frames_within(np.asarray(clip)[:end], clip.features_offset, start)
    return cut


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
