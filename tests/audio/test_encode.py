"""Streaming encoders and chunk stitching, on real speech."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from voxhost.audio.decode import decode_audio
from voxhost.audio.encode import FORMATS, OUTPUT_RATE, StreamEncoder, wav_header
from voxhost.engines.tts.text import TextChunk
from voxhost.tts.service import _Renderer


@pytest.fixture(scope="module")
def speech(short_clip) -> np.ndarray:
    return decode_audio(short_clip.read_bytes())  # 16 kHz real read speech


def _loud_cuts(audio: np.ndarray, count: int) -> list[int]:
    """Cut points inside words, where the waveform is far from zero."""
    loud = np.flatnonzero(np.abs(audio) > 0.5 * np.abs(audio).max())
    picks = loud[np.linspace(0, loud.size - 1, count + 2).astype(int)[1:-1]]
    return sorted(set(int(p) for p in picks))


def test_joins_between_chunks_pass_through_zero(speech):
    """Chunks cut mid-word (the worst an engine can hand over) still join without a step."""
    cuts = _loud_cuts(speech, 3)
    pieces = np.split(speech, cuts)
    assert all(abs(p[0]) > 0.1 for p in pieces[1:])  # raw joins would click
    chunks = [TextChunk(f"piece {i}", 0.0 if i == 0 else 0.12) for i in range(len(pieces))]
    renderer = _Renderer(chunks, "pcm", 16_000, None)
    out = b"".join(b for p in pieces for b in renderer.feed(p)) + renderer.close()
    pcm = np.frombuffer(out, "<i2").astype(np.float32) / 32768
    rate_ratio = OUTPUT_RATE / 16_000
    expected = (speech.size + (len(pieces) - 1) * 0.12 * 16_000) * rate_ratio
    assert abs(pcm.size - expected) < 64  # every sample once: speech plus the pauses, nothing more
    for i, cut in enumerate(cuts, start=1):
        # Position of the i-th join in the 24 kHz output: after i pauses of 0.12 s.
        start = int(round((cut + i * 0.12 * 16_000) * rate_ratio))
        window = pcm[start - 12:start + 12]  # the half-millisecond either side of the join
        assert np.max(np.abs(window)) < 0.05, (i, np.max(np.abs(window)))
    assert np.max(np.abs(pcm)) > 0.3  # the speech itself is untouched


def test_renderer_passes_every_sample_once_at_24khz(speech):
    """The first chunk goes out in slices, the rest whole: nothing lost, nothing repeated."""
    audio24 = np.repeat(speech, 3)[::2]  # any 24 kHz signal will do
    chunks = [TextChunk("one", 0.0), TextChunk("two", 0.12)]
    renderer = _Renderer(chunks, "pcm", OUTPUT_RATE, None)
    pieces = [list(renderer.feed(audio24)), list(renderer.feed(audio24))]
    assert len(pieces[0][0]) == 2 * int(0.1 * OUTPUT_RATE)  # the first sentence leaves 0.1 s at a time first
    out = np.frombuffer(b"".join(b for p in pieces for b in p) + renderer.close(), "<i2")
    assert out.size == 2 * audio24.size + int(0.12 * OUTPUT_RATE)
    expected = (np.clip(audio24[5000:6000], -1, 1) * 32767).astype("<i2")
    assert np.array_equal(out[5000:6000], expected)  # the middle is the input, untouched


def test_pcm_resamples_to_24khz():
    rate = 22_050
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    encoder = StreamEncoder("pcm", rate)
    out = encoder.encode(tone[: rate // 2]) + encoder.encode(tone[rate // 2:]) + encoder.close()
    pcm = np.frombuffer(out, "<i2").astype(np.float32) / 32768
    assert abs(pcm.size - OUTPUT_RATE) <= 64
    spectrum = np.abs(np.fft.rfft(pcm[:OUTPUT_RATE]))
    peak_hz = np.argmax(spectrum) * OUTPUT_RATE / min(pcm.size, OUTPUT_RATE)
    assert abs(peak_hz - 440) < 3


def test_streamed_wav_has_one_header_with_max_sizes(speech):
    encoder = StreamEncoder("wav", 16_000)
    first, second, tail = encoder.encode(speech[:8000]), encoder.encode(speech[8000:]), encoder.close()
    data = first + second + tail
    assert first.startswith(wav_header()) and data.count(b"RIFF") == 1
    assert data[4:8] == b"\xff\xff\xff\xff" and data[40:44] == b"\xff\xff\xff\xff"
    assert not second.startswith(b"RIFF")
    seconds = decode_audio(data).size / 16_000
    assert abs(seconds - speech.size / 16_000) < 0.01


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pcm"])
def test_every_encoder_emits_bytes_before_close(fmt, speech):
    """Each chunk's audio leaves before the next arrives: that is what makes streaming stream."""
    encoder = StreamEncoder(fmt, 16_000)
    parts = [encoder.encode(piece) for piece in np.array_split(speech, 4)]
    tail = encoder.close()
    assert all(len(p) > 200 for p in parts[1:]), [len(p) for p in parts]
    assert sum(len(p) for p in parts) > len(tail)
    with av.open(io.BytesIO(b"".join(parts) + tail)) as container:
        seconds = sum(f.samples / f.sample_rate for f in container.decode(audio=0))
    assert abs(seconds - speech.size / 16_000) < 0.1
