"""Silero VAD over long audio in windows (engines/stt/vad.py): what it finds
against one pass over the whole file, with short windows so the edges show."""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.vad import speech_only, speech_regions


def _mask(regions, n):
    mask = np.zeros(n, bool)
    for region in regions:
        mask[region["start"]:region["end"]] = True
    return mask


def test_speech_across_a_window_edge_is_one_region_and_nothing_is_lost(english):
    speech = np.concatenate([decode_audio(u.audio.read_bytes()) for u in english[:3]])
    silence = np.zeros(7 * 16000, np.float32)
    audio = np.concatenate([silence, speech, silence, speech[: 3 * 16000], silence])  # the edge at 10 s is in speech
    whole = get_speech_timestamps(audio, VadOptions())
    windowed = speech_regions(audio, VadOptions(), window_s=10, warm_s=3)
    edge = 10 * 16000 // 512 * 512  # windows are whole 512-sample frames
    assert any(r["start"] < edge < r["end"] for r in windowed)  # joined across the edge
    missed = _mask(whole, len(audio)) & ~_mask(windowed, len(audio))
    assert not missed.any()
    assert np.array_equal(speech_only(audio, windowed), np.concatenate(collect_chunks(audio, windowed)[0]))
    assert speech_regions(np.zeros(40 * 16000, np.float32), VadOptions(), window_s=10, warm_s=3) == []
