"""The one audio module: Whisper's rate written once, one resampler (PyAV)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import voxhost
from voxhost.audio.pcm import WHISPER_RATE, MonoResampler, from_pcm16, resample_pcm16, to_pcm16

SRC = Path(voxhost.__file__).parent


def _tone(hz: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return to_pcm16(0.5 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate))


def _peak_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(from_pcm16(pcm)))
    return float(np.argmax(spectrum) * rate / pcm.size)


def test_resampling_keeps_pitch_and_length():
    out = resample_pcm16(_tone(440, 24_000), 24_000, WHISPER_RATE)
    assert abs(out.size - WHISPER_RATE) <= 64
    assert abs(_peak_hz(out, WHISPER_RATE) - 440) < 2
    # 9 kHz is above 16 kHz's 8 kHz Nyquist: filtered out, not folded to 7 kHz as interpolation would.
    aliased = resample_pcm16(_tone(9_000, 24_000), 24_000, WHISPER_RATE)
    assert np.sqrt(np.mean(from_pcm16(aliased) ** 2)) < 0.05


def test_streamed_pieces_equal_one_piece():
    tone = _tone(300, 24_000)
    streamer = MonoResampler(WHISPER_RATE)
    pieces = [out for i in range(0, tone.size, 1_000) for out in streamer.pcm16(tone[i:i + 1_000], 24_000)]
    streamed = np.concatenate(pieces + streamer.flush())
    np.testing.assert_array_equal(streamed, resample_pcm16(tone, 24_000, WHISPER_RATE))


def test_the_rate_and_the_resampler_live_only_here():
    """Other modules import WHISPER_RATE and MonoResampler instead of writing their own
    (audio/encode.py resamples into an output codec's format: a different job)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel in ("audio/pcm.py", "audio/encode.py"):
            continue
        text = path.read_text()
        if re.search(r"^\w+\s*=\s*16_?000\b", text, re.M) or "AudioResampler(" in text or "np.interp(" in text:
            offenders.append(rel)
    assert offenders == []
