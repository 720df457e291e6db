"""Silero VAD over long audio in windows, and the speech it finds, in one copy.

faster-whisper's `get_speech_timestamps` runs the model over the whole
array at once: it pads a copy of it, then builds a second, 1.125x one (each
512-sample frame with its 64 samples of context) before the first frame is
scored, besides the model's own buffers for each 10,000 frames. On an hour
of audio (230 MB as float32) that peaked 646 MB over the audio itself; in
windows of 120 s it peaks about 100 MB over it, whatever the length
(docs/benchmarks.md, "Decoded audio under a memory budget").

An approximation, and named so: each window starts the model afresh (its
recurrent state), so each first hears the WARM_SECONDS before it, whose
regions the window before has already decided; a region across an edge comes
back in two pieces that meet there, which are joined. On 9.5 minutes of the
eval set's speech with gaps (30 s windows and no warm-up lose 2 s of speech
at the edges) it finds every sample of speech one pass finds, and 1.9 s more
(0.5%: a region's end near an edge runs on to it), so a little more audio is
decoded, never less.
"""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from voxhost.audio.pcm import WHISPER_RATE

WINDOW_SECONDS = 120  # 1,875 frames a model call: ~100 MB at the peak (300 s: ~170; 30 s: ~30 but less exact)
WARM_SECONDS = 10  # heard again at each window's start (8% more model work at 120 s)


def speech_regions(audio: np.ndarray, options: VadOptions, window_s: float = WINDOW_SECONDS,
                   warm_s: float = WARM_SECONDS) -> list[dict]:
    """`get_speech_timestamps(audio, options)` ({"start", "end"} in samples), window by window."""
    window = max(512, int(window_s * WHISPER_RATE) // 512 * 512)  # whole frames
    warm = int(warm_s * WHISPER_RATE) // 512 * 512
    if len(audio) <= window + warm:
        return get_speech_timestamps(audio, options)
    regions: list[dict] = []
    for offset in range(0, len(audio), window):
        begin = max(0, offset - warm)
        for region in get_speech_timestamps(audio[begin:offset + window], options):
            start, end = max(offset, region["start"] + begin), region["end"] + begin
            if end <= start:
                continue  # heard only in the warm-up, where the previous window decided
            if regions and regions[-1]["end"] >= start:  # one region across the edge
                regions[-1]["end"] = max(regions[-1]["end"], end)
            else:
                regions.append({"start": start, "end": end})
    return regions


def speech_only(audio: np.ndarray, regions: list[dict]) -> np.ndarray:
    """The speech regions end to end, copied once (faster-whisper's `collect_chunks`
    grows its result one region at a time, a copy of everything so far per region)."""
    return np.concatenate([audio[region["start"]:region["end"]] for region in regions])
