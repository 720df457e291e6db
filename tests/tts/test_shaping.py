"""Designed-voice shaping on real speech: streaming in pieces gives the same
samples as the whole line (no seam, the reverb tail carries over), and the
pitch moves by the semitones asked for."""

from __future__ import annotations

import numpy as np
import pytest
from voxhost_testing import median_f0

from voxhost.audio.decode import decode_audio
from voxhost.tts.designs import EFFECTS, VoiceDesign
from voxhost.tts.shaping import Shaper

RATE = 16_000


@pytest.fixture(scope="module")
def speech(short_clip) -> np.ndarray:
    return decode_audio(short_clip.read_bytes())


@pytest.mark.parametrize("effect", EFFECTS)
def test_effects_stream_seamlessly(speech, effect):
    design = VoiceDesign(name="x", base="am_onyx", effect=effect)
    whole = Shaper(design, RATE)
    expected = np.concatenate([whole.effect(speech), whole.flush()])
    pieces = Shaper(design, RATE)
    cuts = [0, 1, 777, speech.size // 3, speech.size // 2, speech.size]
    streamed = np.concatenate([pieces.effect(speech[a:b]) for a, b in zip(cuts, cuts[1:])] + [pieces.flush()])
    assert streamed.shape == expected.shape and np.isfinite(streamed).all()
    assert np.abs(streamed - expected).max() < 1e-5
    if effect in ("cave", "ghost", "helmet", "giant"):  # a room: the echo rings on after the last word
        assert np.abs(pieces.flush()).size and np.abs(expected[speech.size:]).max() > 1e-3


@pytest.mark.parametrize("semitones", [-4, 3])
def test_pitch_moves_by_the_semitones_asked(speech, semitones):
    shaper = Shaper(VoiceDesign(name="x", base="am_onyx", pitch_semitones=semitones), RATE)
    ratio = median_f0(shaper.voice(speech), RATE) / median_f0(speech, RATE)
    assert abs(np.log2(ratio) * 12 - semitones) < 0.7, ratio
