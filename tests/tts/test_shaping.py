"""Designed-voice shaping on real speech: streaming in pieces gives the same
samples as the whole line (no seam, the reverb tail carries over), and the
pitch moves by the semitones asked for."""

from __future__ import annotations

import numpy as np
import pytest

from voxhost.audio.decode import decode_audio
from voxhost.tts.designs import EFFECTS, VoiceDesign
from voxhost.tts.shaping import Shaper
from voxhost_testing import median_f0

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


@pytest.fixture(scope="module")
def bark(server) -> tuple[np.ndarray, int]:
    """A first chunk as the server synthesises it: Kokoro's "Halt, Aldric!" (24 kHz)."""
    kokoro = server.app.state.voxhost.services.tts_engines.engines["kokoro"]
    return kokoro.synthesize("Halt, Aldric!", kokoro.resolve_voice("am_onyx")), kokoro.sample_rate


def test_a_first_chunk_is_shaped_head_first_without_a_seam(bark):
    pcm, rate = bark
    shaper = Shaper(VoiceDesign(name="x", base="am_onyx", pitch_semitones=-3, formant_shift=-0.1), rate)
    pieces = list(shaper.voice_pieces(pcm, early=True))
    # The head leaves on its own (the first byte waits for WORLD on it alone), the rest after.
    assert [last for _, last in pieces] == [False, True] and pieces[0][0].size < 0.5 * rate
    split = np.concatenate([p for p, _ in pieces])
    whole = shaper.voice(pcm)
    assert split.shape == pcm.shape and np.isfinite(split).all()
    # No seam: around the join the signal steps no more sharply than the speech itself does.
    join = pieces[0][0].size
    steps = np.abs(np.diff(split))
    assert steps[join - rate // 200:join + rate // 200].max() <= np.percentile(steps, 99)
    # The same voice: it follows the speech's loudness contour (10 ms) as closely as one
    # WORLD pass over the chunk does (WORLD's resynthesis itself moves it a little), at that pass's
    # pitch (test_pitch_moves_by_the_semitones_asked checks the pass's shift).
    def envelope(x):
        return np.sqrt(np.mean(x[:x.size // 240 * 240].reshape(-1, 240) ** 2, axis=1))

    def fidelity(x):
        return np.corrcoef(envelope(x), envelope(pcm))[0, 1]

    assert fidelity(split) > fidelity(whole) - 0.02 and fidelity(split) > 0.9
    assert abs(np.log2(median_f0(split, rate) / median_f0(whole, rate)) * 12) < 0.3
    # Later chunks, and lines with no quiet moment near the start, stay one pass.
    assert [last for _, last in shaper.voice_pieces(pcm)] == [True]


def test_the_first_bytes_leave_before_the_rest_of_the_first_chunk_is_shaped(bark):
    from voxhost.engines.tts.text import TextChunk
    from voxhost.tts.service import _Renderer

    pcm, rate = bark
    shaper = Shaper(VoiceDesign(name="x", base="am_onyx", pitch_semitones=-3), rate)
    shaped: list[int] = []
    voice = shaper.voice
    shaper.voice = lambda x, f0=None: shaped.append(x.size) or voice(x, f0)
    renderer = _Renderer([TextChunk("Halt, Aldric!", 0.0)], "pcm", rate, None, shaper=shaper)
    stream = renderer.feed(pcm)
    first = next(stream)
    assert first and len(shaped) == 1 and shaped[0] < 0.5 * rate  # only the head was shaped
    rest = b"".join(stream) + renderer.close()
    assert len(shaped) == 2 and len(first) + len(rest) == pcm.size * 2  # s16 at 24 kHz: every sample, once
