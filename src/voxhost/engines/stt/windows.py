"""Whisper's encoder window: a fact about the model that every decode policy sizes against.

Whisper encodes a fixed window of audio (30 s) whatever the clip's length, so a short
clip pays for the whole window. An engine that can encode a shorter window
(engines/stt/fw_window.py) takes one as `TranscriptionOptions.chunk_length`; how much
audio, pad and floor a decode asks for is the policy of the service that decodes
(stt/service.py for REST, realtime/decoding.py for live turns), each next to the
measurements that chose its figures.
"""

from __future__ import annotations

import math

WHISPER_WINDOW_S = 30  # the encoder's trained window; nothing longer is ever encoded at once
WINDOW_STEP_S = 5  # windows come in steps, so a few sizes are reused (one feature extractor each)
FRAMES_PER_SECOND = 100  # mel frames


def encoder_window(seconds: float, *, pad_s: float, floor_s: int) -> int:
    """The window for `seconds` of audio: the audio plus `pad_s`, rounded up to a 5 s step,
    at least `floor_s`, at most Whisper's 30 s."""
    return int(min(WHISPER_WINDOW_S, max(floor_s, math.ceil((seconds + pad_s) / WINDOW_STEP_S) * WINDOW_STEP_S)))
