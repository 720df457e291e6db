"""Decode any container/codec PyAV knows into 16 kHz mono float32.

We do not use faster_whisper.decode_audio: it calls gc.collect() on every
call, which in a server process with many live objects stalls every request.
"""

from __future__ import annotations

import io
import re
import wave

import av
import numpy as np

from voxhost.audio.pcm import WHISPER_RATE, MonoResampler, from_pcm16
from voxhost.errors import AudioTooLong, InvalidAudio

__all__ = ["WHISPER_RATE", "decode_audio"]


def decode_audio(
    data: bytes,
    *,
    sample_rate: int = WHISPER_RATE,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Return mono float32 samples in [-1, 1] at `sample_rate`.

    Raises InvalidAudio for anything that is not decodable audio with at least
    one sample, and AudioTooLong as soon as the decoded length passes
    `max_seconds` (without decoding the rest).
    """
    if not data:
        raise InvalidAudio("The audio file is empty.", param="file")
    max_samples = int(max_seconds * sample_rate) if max_seconds else None
    pcm = _pcm16_wav(data, sample_rate, max_seconds)
    if pcm is not None:
        return from_pcm16(pcm)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidAudio("The file contains no audio stream.", param="file")
            stream = container.streams.audio[0]
            if max_seconds:
                _refuse_declared_length(container, stream, max_seconds)
            resampler = MonoResampler(sample_rate)
            for frame in _frames(container, stream):
                for out in resampler.frame(frame):
                    total += _append(chunks, out)
                if max_samples is not None and total > max_samples:
                    raise AudioTooLong(
                        f"Audio is longer than the limit of {max_seconds:g} seconds.", param="file"
                    )
            for out in resampler.flush():
                total += _append(chunks, out)
    except (InvalidAudio, AudioTooLong):
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError, OSError) as exc:
        raise InvalidAudio(f"Could not decode the audio file: {_reason(exc)}", param="file") from exc
    if total == 0:
        raise InvalidAudio("The audio file contains no samples.", param="file")
    if max_samples is not None and total > max_samples:
        raise AudioTooLong(f"Audio is longer than the limit of {max_seconds:g} seconds.", param="file")
    return from_pcm16(np.concatenate(chunks))


def _pcm16_wav(data: bytes, sample_rate: int, max_seconds: float | None) -> np.ndarray | None:
    """Mono int16 at `sample_rate` from a plain PCM16 WAV (mono or stereo), or None for
    anything else (PyAV decodes that).

    Why: opening a container in PyAV probes its streams, about 4 ms of CPU per request
    whatever its length, half of a short push-to-talk clip's CPU outside the model
    (docs/benchmarks.md, issue 12); the stdlib's `wave` reads the same header in
    microseconds. Resampling and down-mixing still go through the one resampler."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    try:
        with wave.open(io.BytesIO(data)) as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            if width != 2 or channels not in (1, 2) or rate <= 0:
                return None
            frames = wav.readframes(wav.getnframes())
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
    return np.concatenate([*resampler.frame(frame), *resampler.flush()]).astype(np.int16)


def _refuse_declared_length(container, stream, max_seconds: float) -> None:
    """Refuse on the length the container declares, before decoding a sample.

    A few MB of FLAC can declare hours of (silent) audio; decoding it to the
    cap cost ~115 MB and seconds of CPU per request. Files that declare no
    length are still stopped at the cap while decoding."""
    declared = None
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        declared = container.duration / av.time_base
    if declared is not None and declared > max_seconds:
        raise AudioTooLong(
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


def _append(chunks: list[np.ndarray], array: np.ndarray) -> int:
    if array.size:
        chunks.append(array)
    return int(array.size)


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    # FFmpeg errors carry an errno and the in-memory file name; keep the gist.
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text.split(": '<")[0][:200]
