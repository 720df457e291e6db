"""Streaming audio encoders (PyAV): PCM chunks in, encoded bytes out, per response.

Every format leaves at 24 kHz mono, as OpenAI's do (pcm is raw 16-bit
little-endian at 24 kHz). An encoder is fed one sentence at a time and hands
back whatever bytes the muxer has ready, so the first sentence is on the wire
before the second is synthesised. A streamed WAV has one header whose sizes
are the maximum (the final length isn't known yet), as OpenAI sends it.
"""

from __future__ import annotations

import contextlib
import struct
from fractions import Fraction
from typing import cast

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer

from voxhost.errors import InvalidRequest

OUTPUT_RATE = 24_000
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
MEDIA_TYPES = {
    "mp3": "audio/mpeg", "opus": "audio/ogg; codecs=opus", "aac": "audio/aac", "flac": "audio/flac",
    "wav": "audio/wav", "pcm": "audio/pcm",
}
# container, codec, bit rate
_CODECS = {
    "mp3": ("mp3", "libmp3lame", 64_000),
    "opus": ("ogg", "libopus", 32_000),
    "aac": ("adts", "aac", 64_000),
    "flac": ("flac", "flac", None),
}

# Ogg holds packets until a page fills (1 s by default): short pages put each
# sentence on the wire as it is encoded (the last <=60 ms follow the next one).
_MUXER_OPTIONS = {"opus": {"page_duration": "60000"}}


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidRequest(
            f"'response_format' must be one of {', '.join(FORMATS)}, got {str(fmt)[:20]!r}.",
            param="response_format", code="unsupported_format",
        )
    return fmt


def wav_header(sample_rate: int = OUTPUT_RATE, channels: int = 1, bits: int = 16) -> bytes:
    """44-byte PCM WAV header with maximal RIFF/data sizes: decoders read to EOF."""
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, bits)
            + b"data" + struct.pack("<I", 0xFFFFFFFF))


class _Sink:
    """Write-only file object the muxer writes into; drained after each chunk.
    No seek: muxers then write streaming-friendly headers (no back-patching)."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class StreamEncoder:
    """One response's encoder. Not thread-safe; runs on the synthesis worker."""

    def __init__(self, fmt: str, input_rate: int):
        self.format = check_format(fmt)
        self.input_rate = input_rate
        self._pts = 0
        self._closed = False
        self._header_sent = False
        self._container: OutputContainer | None = None
        self._resampler: av.AudioResampler | None = None
        if fmt in ("wav", "pcm"):
            self._resampler = None if input_rate == OUTPUT_RATE else av.AudioResampler("s16", "mono", OUTPUT_RATE)
            return
        container_fmt, codec, bit_rate = _CODECS[fmt]
        self._sink = _Sink()
        self._container = av.open(self._sink, mode="w", format=container_fmt,
                                  options=_MUXER_OPTIONS.get(fmt, {}))
        self._stream = cast(AudioStream, self._container.add_stream(codec, rate=OUTPUT_RATE))
        ctx = self._stream.codec_context
        ctx.layout = "mono"
        ctx.format = _pick_format(codec)
        if bit_rate:
            ctx.bit_rate = bit_rate
        if fmt == "opus":
            ctx.options = {"application": "voip", "frame_duration": "20"}
        ctx.open()
        frame_size = ctx.frame_size or None
        self._resampler = av.AudioResampler(self._stream.codec_context.format.name, "mono", OUTPUT_RATE,
                                            frame_size=frame_size)

    # --- feeding ------------------------------------------------------------------------------

    def _frame(self, pcm: np.ndarray) -> av.AudioFrame:
        samples = np.ascontiguousarray(np.clip(pcm, -1.0, 1.0), dtype=np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = self.input_rate
        frame.pts = self._pts
        frame.time_base = Fraction(1, self.input_rate)
        self._pts += samples.shape[1]
        return frame

    def encode(self, pcm: np.ndarray) -> bytes:
        if pcm.size == 0:
            return self._raw_header()
        if self._container is None:
            return self._raw_header() + self._raw(pcm)
        assert self._resampler is not None  # made with the container
        for out in self._resampler.resample(self._frame(pcm)):
            self._mux(out)
        return self._sink.drain()

    def close(self) -> bytes:
        """Flush the codec and muxer trailer. Call once, after the last chunk."""
        if self._closed:
            return b""
        self._closed = True
        if self._container is None:
            tail = b""
            if self._resampler is not None:
                tail = b"".join(_s16_bytes(f) for f in self._resampler.resample(None))
            return self._raw_header() + tail
        assert self._resampler is not None
        for out in self._resampler.resample(None):
            self._mux(out)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.drain()

    def abort(self) -> None:
        """Release native resources when the response stops early."""
        if not self._closed and self._container is not None:
            self._closed = True
            # nothing to salvage from a half-written stream
            with contextlib.suppress(Exception):
                self._container.close()

    # --- internals ----------------------------------------------------------------------------

    def _mux(self, frame: av.AudioFrame) -> None:
        frame.pts = None  # let the encoder number frames on its own time base
        assert self._container is not None
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _raw_header(self) -> bytes:
        if self.format == "wav" and not self._header_sent:
            self._header_sent = True
            return wav_header()
        return b""

    def _raw(self, pcm: np.ndarray) -> bytes:
        if self._resampler is None:
            return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        return b"".join(_s16_bytes(f) for f in self._resampler.resample(self._frame(pcm)))


def _pick_format(codec: str) -> str:
    return {"libmp3lame": "s16p", "libopus": "s16", "aac": "fltp", "flac": "s16"}[codec]


def _s16_bytes(frame: av.AudioFrame) -> bytes:
    return frame.to_ndarray().astype("<i2").tobytes()


def encode_all(pcm: np.ndarray, fmt: str, input_rate: int) -> bytes:
    """Whole-buffer convenience (CLI, tests)."""
    encoder = StreamEncoder(fmt, input_rate)
    return encoder.encode(pcm) + encoder.close()
