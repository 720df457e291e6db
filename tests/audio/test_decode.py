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


# --- any WAV header: decoded, or a clear 400 (never OverflowError, MemoryError, ValueError) ---

def _raw_wav(*, fmt: int, channels: int, rate: int, bits: int, frames: int, data_size: int | None = None,
             block_align: int | None = None) -> bytes:
    """A RIFF/WAVE file with exactly these header fields (any 16/32-bit value), and `frames` of noise."""
    import struct

    width = max(1, bits // 8)
    data = np.random.default_rng(frames).integers(0, 256, frames * channels * width, dtype=np.uint8).tobytes()
    align = (channels * width) & 0xFFFF if block_align is None else block_align
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, (rate * channels * width) & 0xFFFFFFFF, align, bits)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("frames", [1, 2, 5, 30, 60])
@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_a_few_samples_are_a_clear_400_or_audio(frames, rate):
    data = _raw_wav(fmt=1, channels=1, rate=rate, bits=16, frames=frames)
    try:
        audio = decode_audio(data)
    except InvalidAudio as exc:
        assert exc.code == "audio_too_short" and "too short" in exc.message
    else:
        assert audio.size > 0


@pytest.mark.parametrize("rate", [0, 1, 999, 768_001, 2**31 - 1, 2**31, 2**32 - 1])
def test_absurd_sample_rates_are_refused_before_resampling(rate):
    for data in (_raw_wav(fmt=1, channels=1, rate=rate, bits=16, frames=1600),
                 _raw_wav(fmt=3, channels=1, rate=rate, bits=32, frames=1600)):  # float: PyAV's path
        with pytest.raises(InvalidAudio) as err:
            decode_audio(data, max_seconds=600)
        assert err.value.param == "file"


def test_any_wav_header_decodes_or_is_invalid_audio():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    u32 = st.one_of(st.sampled_from([0, 1, 8000, 16000, 44100, 48000, 768_000, 2**31 - 1, 2**31, 2**32 - 1]),
                    st.integers(0, 2**32 - 1))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(fmt=st.sampled_from([1, 3, 6, 7, 0xFFFE, 0, 2, 0x55]), channels=st.integers(0, 9), rate=u32,
           bits=st.sampled_from([0, 8, 16, 24, 32, 64, 7]), frames=st.integers(0, 400),
           data_size=st.one_of(st.none(), u32), block_align=st.one_of(st.none(), st.integers(0, 0xFFFF)))
    def check(fmt, channels, rate, bits, frames, data_size, block_align):
        data = _raw_wav(fmt=fmt, channels=channels, rate=rate, bits=bits, frames=frames, data_size=data_size,
                        block_align=block_align)
        try:
            audio = decode_audio(data, max_seconds=600)
        except (InvalidAudio, AudioTooLong):
            return
        assert audio.dtype == np.float32 and audio.size > 0 and np.isfinite(audio).all()

    check()


# ---- the bytes a decode holds, told before it holds them (the decoded-audio budget) ----

class _Refused(Exception):
    pass


def _flac(audio: np.ndarray, rate: int = 16000) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray((np.clip(audio, -1, 1) * 32767).astype(np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


def test_a_declared_length_is_held_before_any_sample_is_decoded():
    from voxhost_testing import silent_flac

    asked = []

    def hold(nbytes):
        asked.append(nbytes)
        raise _Refused

    with mock.patch("voxhost.audio.decode.MonoResampler.frame") as resample, pytest.raises(_Refused):
        decode_audio(silent_flac(600), hold=hold)
    resample.assert_not_called()
    assert asked[0] == pytest.approx(600 * 16000 * 4, rel=0.02)  # the float32 audio it would be
    with mock.patch("wave.Wave_read.readframes") as read, pytest.raises(_Refused):
        decode_audio(_wav(np.zeros(16000 * 30), 16000), hold=hold)
    read.assert_not_called()
    assert asked[-1] >= 30 * 16000 * 4


def test_declared_or_not_the_samples_are_the_same_and_the_holds_cover_them(short_clip):
    """One float32 array filled as the decode goes (declared length), or int16 pieces
    joined at the end (none declared): the same samples as before either way."""
    data = _flac(_through_pyav(short_clip.read_bytes()))
    asked: list[int] = []
    declared = decode_audio(data, hold=asked.append)
    assert len(asked) == 1 and asked[0] >= declared.nbytes
    with mock.patch("voxhost.audio.decode._declared_seconds", return_value=None):
        growing: list[int] = []
        undeclared = decode_audio(data, hold=growing.append)
    assert np.array_equal(declared, undeclared)
    assert growing == sorted(growing) and growing[-1] >= undeclared.size * 6  # int16 pieces + the float copy
    import av

    from voxhost.audio.pcm import MonoResampler, from_pcm16

    with av.open(io.BytesIO(data)) as container:  # the whole file's pieces, joined, then converted
        resampler = MonoResampler()
        pieces = [p for frame in container.decode(audio=0) for p in resampler.frame(frame)] + resampler.flush()
    assert np.array_equal(declared, from_pcm16(np.concatenate(pieces)))
