"""Decode any container/codec PyAV knows into 16 kHz mono float32.

We do not use faster_whisper.decode_audio: it calls gc.collect() on every
call, which in a server process with many live objects stalls every request.
"""

from __future__ import annotations

import io
import re
import wave
from collections.abc import Callable

import av
import numpy as np

from voxhost.audio.pcm import WHISPER_RATE, MonoResampler, from_pcm16
from voxhost.errors import AudioTooLong, InvalidAudio

__all__ = ["WHISPER_RATE", "declared_seconds", "decode_audio"]

# Sample rates a recording can have (telephony's 8 kHz to studio 768 kHz, with margin below).
# A header may declare any 32-bit number; FFmpeg's resampler takes a C int and allocates
# per its rates, so 1 Hz, 2^31 or 2^32 - 1 ended in OverflowError or MemoryError (a 500).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000


Hold = Callable[[int], None]
"""Called with the bytes a decode is about to hold (a running total, growing), before it
holds them; it raises to refuse the decode (scheduler/audio_memory.py's Reservation.hold)."""

FLOAT32 = 4
INT16 = 2


def decode_audio(
    data: bytes,
    *,
    sample_rate: int = WHISPER_RATE,
    max_seconds: float | None = None,
    hold: Hold | None = None,
) -> np.ndarray:
    """Return mono float32 samples in [-1, 1] at `sample_rate`.

    Raises InvalidAudio for anything that is not decodable audio with at least
    one sample, and AudioTooLong as soon as the decoded length passes
    `max_seconds` (without decoding the rest). `hold`, if given, is told the
    bytes the decode will hold before it holds them: from the declared length
    before the first sample where the container declares one, then as it grows.
    """
    if not data:
        raise InvalidAudio("The audio file is empty.", param="file")
    hold = hold or _hold_nothing
    max_samples = int(max_seconds * sample_rate) if max_seconds else None
    pcm = _pcm16_wav(data, sample_rate, max_seconds, hold)
    if pcm is not None:
        return from_pcm16(pcm)
    samples: _Samples | None = None
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidAudio("The file contains no audio stream.", param="file")
            stream = container.streams.audio[0]
            # A stream of a codec FFmpeg lacks has no codec context, and so no rate.
            _check_rate(getattr(stream.codec_context, "sample_rate", None) if stream.codec_context else None)
            declared = _declared_seconds(container, stream)
            if max_seconds and declared is not None and declared > max_seconds:
                raise _declared_too_long(declared, max_seconds)
            samples = _Samples(None if declared is None else _with_slack(declared * sample_rate), hold)
            resampler = MonoResampler(sample_rate)
            for frame in _frames(container, stream):
                for out in resampler.frame(frame):
                    samples.add(out)
                if max_samples is not None and samples.count > max_samples:
                    raise AudioTooLong(
                        f"Audio is longer than the limit of {max_seconds:g} seconds.", param="file"
                    )
            for out in resampler.flush():
                samples.add(out)
    except (InvalidAudio, AudioTooLong):
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError, OSError, OverflowError) as exc:
        raise InvalidAudio(f"Could not decode the audio file: {_reason(exc)}", param="file") from exc
    if samples is None or samples.count == 0:
        raise InvalidAudio("The audio file contains no samples, or too few to decode.", param="file")
    if max_samples is not None and samples.count > max_samples:
        raise AudioTooLong(f"Audio is longer than the limit of {max_seconds:g} seconds.", param="file")
    return samples.result()


def _hold_nothing(nbytes: int) -> None:
    pass


def _with_slack(samples: float) -> int:
    """Room for what the resampler adds past a declared length (its filter's tail, a
    header's rounding), so the common case never takes the slower join. Pages never
    written are never resident: the slack costs budget, not memory."""
    return int(samples * 1.01) + 1024


class _Samples:
    """Resampled int16 pieces gathered into one float32 array.

    With a declared length the array is allocated once, from it, and each piece
    is converted into it as it comes: the decode holds 4 bytes a sample, not the
    int16 pieces plus their concatenation plus the float copy (12). Samples past
    the declared length (or all of them, when none is declared) are kept as
    int16 pieces and joined at the end (6 bytes a sample at that moment)."""

    def __init__(self, declared: int | None, hold: Hold):
        self._hold = hold
        self._out: np.ndarray | None = None
        if declared:
            hold(declared * FLOAT32)
            self._out = np.empty(declared, dtype=np.float32)
        self._filled = 0
        self._extra: list[np.ndarray] = []
        self._extra_count = 0

    @property
    def count(self) -> int:
        return self._filled + self._extra_count

    def _capacity_bytes(self) -> int:
        return 0 if self._out is None else self._out.nbytes

    def add(self, pcm: np.ndarray) -> None:
        if not pcm.size:
            return
        out = self._out
        if out is not None and self._filled < out.size:
            take = min(pcm.size, out.size - self._filled)
            np.multiply(pcm[:take], np.float32(1 / 32768.0), out=out[self._filled:self._filled + take],
                        casting="unsafe")
            self._filled += take
            pcm = pcm[take:]
        if pcm.size:
            self._hold(self._capacity_bytes() + (self._extra_count + pcm.size) * INT16)
            self._extra.append(pcm)
            self._extra_count += pcm.size

    def result(self) -> np.ndarray:
        out = self._out
        if not self._extra:
            assert out is not None
            # A header that declared much more than it held: don't keep the unused tail.
            return out[: self._filled] if self._filled * 10 >= out.size * 9 else out[: self._filled].copy()
        total = self.count
        self._hold(self._capacity_bytes() + self._extra_count * INT16 + total * FLOAT32)
        joined = np.empty(total, dtype=np.float32)
        if out is not None:
            joined[: self._filled] = out[: self._filled]
        self._out = None
        position = self._filled
        for piece in self._extra:
            np.multiply(piece, np.float32(1 / 32768.0), out=joined[position:position + piece.size], casting="unsafe")
            position += piece.size
        self._extra = []
        return joined


def _pcm16_wav(data: bytes, sample_rate: int, max_seconds: float | None,
               hold: Hold = _hold_nothing) -> np.ndarray | None:
    """Mono int16 at `sample_rate` from a plain PCM16 WAV (mono or stereo), or None for
    anything else (PyAV decodes that).

    Why: opening a container in PyAV probes its streams, a fixed CPU cost per request
    whatever its length, a large part of a short push-to-talk clip's CPU outside the model
    (docs/benchmarks.md, "REST CPU per request outside the model"); the stdlib's `wave`
    reads the same header in microseconds. Resampling and down-mixing still go through the one resampler."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    try:
        with wave.open(io.BytesIO(data)) as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            if width != 2 or channels not in (1, 2):
                return None
            _check_rate(rate)
            # A header can declare more than the file holds (a streamed WAV's 0xFFFFFFFF): the
            # bytes there bound it.
            declared = min(wav.getnframes(), len(data) // (channels * width))
            if max_seconds and declared / rate > max_seconds:  # before reading or holding any of it
                raise AudioTooLong(f"Audio is longer than the limit of {max_seconds:g} seconds.", param="file")
            # What this path holds at its peak: the frames, the resampled int16, the float copy.
            resampled = int(declared * sample_rate / rate) + 1
            hold(declared * channels * INT16 + resampled * (INT16 + FLOAT32))
            frames = wav.readframes(declared)
    except (wave.Error, EOFError, ValueError):
        return None  # not what `wave` reads (float, extensible, odd headers): PyAV decides
    pcm = np.frombuffer(frames[: len(frames) // (2 * channels) * 2 * channels], dtype="<i2")
    if pcm.size == 0:
        return None  # PyAV gives the "no samples" error
    if max_seconds and pcm.size / channels / rate > max_seconds:  # before any resampling work
        raise AudioTooLong(f"Audio is longer than the limit of {max_seconds:g} seconds.", param="file")
    if channels == 1 and rate == sample_rate:
        return pcm.astype(np.int16)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono" if channels == 1 else "stereo")
    frame.sample_rate = rate
    resampler = MonoResampler(sample_rate)
    out = [*resampler.frame(frame), *resampler.flush()]
    if not any(piece.size for piece in out):
        frames = pcm.size // channels
        raise InvalidAudio(f"The audio is too short to decode: {frames} samples ({frames / rate * 1000:.1f} ms) "
                           f"at {rate} Hz.", param="file", code="audio_too_short")
    return np.concatenate(out).astype(np.int16)


def _check_rate(rate: int | None) -> None:
    if rate is not None and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidAudio(f"The audio's sample rate of {rate} Hz is outside {MIN_SAMPLE_RATE:,} to "
                           f"{MAX_SAMPLE_RATE:,} Hz.", param="file", code="unsupported_sample_rate")


def declared_length(container, stream) -> float | None:
    """Seconds of audio the file says it holds, without decoding: the audio stream's own
    length, else the container's; None when it declares neither."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def declared_seconds(data: bytes) -> float:
    """The length an upload declares (`declared_length`), 0 when it declares none or is not audio."""
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            return declared_length(container, container.streams.audio[0]) or 0.0
    except Exception:
        return 0.0


def _declared_seconds(container, stream) -> float | None:
    """`declared_length`, or None unless it is a positive, finite number (a header can say anything)."""
    declared = declared_length(container, stream)
    return declared if declared is not None and 0 < declared < float("inf") else None


def _declared_too_long(declared: float, max_seconds: float) -> AudioTooLong:
    """The refusal on the length the container declares, before decoding a sample.

    A few MB of FLAC can declare hours of (silent) audio; decoding all of it to the
    cap costs memory and seconds of CPU per request. Files that declare no
    length are still stopped at the cap while decoding."""
    return AudioTooLong(
        f"The audio declares {declared:.0f} seconds, longer than the limit of {max_seconds:g} seconds.",
        param="file",
    )


def _frames(container, stream):
    """Yield frames, tolerating a truncated tail after some audio decoded."""
    decoded_any = False
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                decoded_any = True
                yield frame
    except av.FFmpegError:
        # A truncated upload still yields the audio before the cut; only a
        # file with nothing decodable is an error.
        if not decoded_any:
            raise


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    # FFmpeg errors carry an errno and the in-memory file name; keep the gist.
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text.split(": '<")[0][:200]
