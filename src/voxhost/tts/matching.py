"""The nearest designed voice to an audio sample (OpenAI's custom-voice flow, without cloning).

No zero-shot cloning weights can be obtained for this server, so POST /v1/audio/voices
with an `audio_sample` does not clone: it measures the sample and picks the bundled
Kokoro voice whose measurements are nearest, then shifts its pitch to the sample's.
The stored voice says so (`"method": "matched"`).

What is measured, on 16 kHz audio, over voiced frames only (WORLD's DIO + StoneMask,
pyworld, decide which frames are voiced):
- median F0 (Hz): pitch; it decides the gender of the base (below GENDER_SPLIT_HZ, male);
- spectral centroid (Hz) and tilt (dB per octave, a least-squares line through the
  long-term spectrum, 100 Hz-7 kHz): brightness and breathiness, a coarse view of timbre.

The 28 bases' measurements are a table (tts/kokoro_profiles.py) made once by
scripts/kokoro_profiles.py from the bundled voices reading evaluation sentences,
so a request costs one analysis of the sample, not 28 syntheses. These statistics see
pitch and brightness, not identity: the result sounds like the sample's kind of voice,
not like its speaker (docs/architecture.md, "Custom voices").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from voxhost.audio.pcm import WHISPER_RATE as RATE  # samples arrive decoded for Whisper
from voxhost.errors import InvalidRequest

FRAME_MS = 10.0
# Midway (geometric mean) between typical adult male (~120 Hz) and female (~210 Hz) speaking pitch.
GENDER_SPLIT_HZ = 160.0
# WORLD resynthesis stays natural within about half an octave; past that, pick a nearer base
# rather than bend a far one (the base's own pitch is part of the distance below).
MAX_SHIFT_SEMITONES = 6.0
MIN_VOICED_SECONDS = 1.0
BAND_HZ = (100.0, 7000.0)


class SampleUnusable(InvalidRequest):
    code = "audio_sample_unusable"


@dataclass(frozen=True)
class VoiceStats:
    f0_hz: float
    centroid_hz: float
    tilt_db_per_octave: float
    voiced_seconds: float

    def as_dict(self) -> dict:
        return {k: round(v, 1) for k, v in asdict(self).items()}


def measure(audio: np.ndarray, rate: int = RATE) -> VoiceStats:
    """Pitch and spectral statistics of mono float audio at `rate` (16 kHz expected)."""
    import pyworld
    from scipy.signal import stft

    x = np.asarray(audio, np.float64)
    f0, times = pyworld.dio(x, rate, f0_floor=60.0, f0_ceil=500.0, frame_period=FRAME_MS)
    f0 = pyworld.stonemask(x, f0, times, rate)
    voiced = f0 > 0
    voiced_seconds = voiced.sum() * FRAME_MS / 1000
    if voiced_seconds < MIN_VOICED_SECONDS:
        raise SampleUnusable(f"The audio has {voiced_seconds:.1f} s of voiced speech; at least "
                             f"{MIN_VOICED_SECONDS:g} s is needed to measure a voice.", param="audio_sample")
    hop = int(rate * FRAME_MS / 1000)
    freqs, _, spec = stft(x, rate, nperseg=4 * hop, noverlap=3 * hop, boundary=None, padded=False)
    frames = min(spec.shape[1], voiced.size)
    power = (np.abs(spec[:, :frames]) ** 2)[:, voiced[:frames]].mean(axis=1)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    f, p = freqs[band], power[band] + 1e-12
    centroid = float((f * p).sum() / p.sum())
    tilt = float(np.polyfit(np.log2(f), 10 * np.log10(p), 1)[0])
    return VoiceStats(float(np.median(f0[voiced])), centroid, tilt, float(voiced_seconds))


@dataclass(frozen=True)
class Match:
    base: str
    gender: str
    pitch_semitones: float
    distance: float
    sample: VoiceStats
    base_stats: VoiceStats


def _coordinates(stats: VoiceStats) -> np.ndarray:
    return np.array([12 * math.log2(stats.f0_hz), stats.centroid_hz, stats.tilt_db_per_octave])


def nearest(sample: VoiceStats, profiles: dict[str, tuple[str, VoiceStats]]) -> Match:
    """The base of the sample's gender nearest in (pitch in semitones, centroid, tilt), each
    scaled by its spread over all bases so no unit dominates; then the pitch shift to the sample."""
    gender = "male" if sample.f0_hz < GENDER_SPLIT_HZ else "female"
    table = np.array([_coordinates(s) for _, s in profiles.values()])
    scale = table.std(axis=0) + 1e-9
    here = _coordinates(sample)
    best = min(((float(np.linalg.norm((_coordinates(s) - here) / scale)), vid)
                for vid, (g, s) in profiles.items() if g == gender), default=None)
    if best is None:
        raise SampleUnusable(f"No bundled {gender} voice to match the sample to.", param="audio_sample")
    distance, vid = best
    base_stats = profiles[vid][1]
    shift = 12 * math.log2(sample.f0_hz / base_stats.f0_hz)
    shift = round(max(-MAX_SHIFT_SEMITONES, min(MAX_SHIFT_SEMITONES, shift)), 1)
    return Match(vid, gender, shift, round(distance, 2), sample, base_stats)


def kokoro_profiles() -> dict[str, tuple[str, VoiceStats]]:
    from voxhost.tts.kokoro_profiles import PROFILES

    return {vid: (gender, VoiceStats(*values)) for vid, (gender, values) in PROFILES.items()}
