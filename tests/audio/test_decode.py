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


def _through_pyav(data: bytes, **kwargs) -> np.ndarray:
    with mock.patch("voxhost.audio.decode._pcm16_wav", return_value=None):
        return decode_audio(data, **kwargs)


def test_plain_wav_is_read_without_opening_a_container(short_clip):
    """PyAV's stream probe cost ~4 ms of CPU per upload, half a push-to-talk clip's CPU outside
    the model; a PCM16 WAV (what most game clients send) is read by the stdlib instead."""
    data = short_clip.read_bytes()
    with mock.patch("av.open", side_effect=AssertionError("opened a container for a plain WAV")):
        audio = decode_audio(data)
    assert np.array_equal(audio, _through_pyav(data))  # 16 kHz mono: the very same samples


@pytest.mark.parametrize("rate,channels", [(8000, 1), (22050, 2), (48000, 2)])
def test_plain_wav_resampled_like_pyav(short_clip, rate, channels):
    """Other rates and stereo go through the same resampler: the same audio as PyAV's decode."""
    speech = _through_pyav(short_clip.read_bytes())
    mono = _through_pyav(_wav(speech, 16000), sample_rate=rate)
    data = _wav(mono * 0.9, rate, channels)
    fast, slow = decode_audio(data), _through_pyav(data)
    assert abs(len(fast) - len(slow)) <= 32
    n = min(len(fast), len(slow))
    assert np.abs(fast[:n] - slow[:n]).max() < 2e-3


def test_plain_wav_over_the_limit_is_refused():
    tone = 0.1 * np.ones(16000 * 3)
    with pytest.raises(AudioTooLong):
        decode_audio(_wav(tone, 16000), max_seconds=2)


def test_wav_the_stdlib_does_not_read_goes_to_pyav():
    """A float32 WAV (format 3) is not PCM16: PyAV decodes it."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as out:
        stream = out.add_stream("pcm_f32le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray((0.25 * np.ones((1, 16000))).astype(np.float32), format="flt",
                                           layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    audio = decode_audio(buf.getvalue())
    assert len(audio) == 16000 and abs(float(audio.mean()) - 0.25) < 1e-3
