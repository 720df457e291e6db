"""PyAV decoding: any rate/channels to 16 kHz mono float32; clear errors."""

from __future__ import annotations

import gc
import io
import wave
from unittest import mock

import numpy as np
import pytest

from voxhost.audio.decode import decode_audio
from voxhost.errors import AudioTooLong, InvalidAudio


def _wav(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.repeat(samples, channels) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("rate,channels", [(8000, 1), (16000, 1), (44100, 2), (48000, 2)])
def test_resamples_to_16k_mono(rate, channels):
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate * 2) / rate)
    audio = decode_audio(_wav(tone, rate, channels))
    assert audio.dtype == np.float32
    assert abs(len(audio) - 32000) <= 64
    assert 0.3 < np.abs(audio).max() <= 1.0


def test_matches_eval_file_length(short_clip):
    audio = decode_audio(short_clip.read_bytes())
    assert len(audio) == pytest.approx(1.9 * 16000, abs=160)


def test_does_not_call_gc_collect(short_clip):
    with mock.patch.object(gc, "collect") as collect:
        decode_audio(short_clip.read_bytes())
    collect.assert_not_called()


@pytest.mark.parametrize("payload", [b"", b"RIFF", b"not audio at all" * 100])
def test_invalid(payload):
    with pytest.raises(InvalidAudio):
        decode_audio(payload)


def test_duration_limit_stops_early():
    with pytest.raises(AudioTooLong):
        decode_audio(_wav(np.zeros(16000 * 10), 16000), max_seconds=5)
