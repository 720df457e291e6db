"""The live path's CPU moves give the same decisions and features as the work they replace."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.vad import VadOptions, get_speech_timestamps

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import Segment, Transcript, TranscriptionInfo
from voxhost.engines.stt.features import IncrementalMel, features_for
from voxhost.realtime.config import SessionConfig, SessionLimits
from voxhost.realtime.session import TranscriptionSession
from voxhost.realtime.vad import TurnDetection

CLIPS = ["lj_LJ001-0002.wav", "lj_LJ001-0004.wav", "cathy_arctic_a0001.wav"]


@pytest.fixture(scope="module")
def clips(eval_audio) -> list[np.ndarray]:
    return [decode_audio((eval_audio / name).read_bytes()) for name in CLIPS]


class GatedEngine:
    """Whisper's gate and feature size, as WhisperEngine and simulated-gpu carry them."""

    name = "gated"
    multilingual = True
    gate_options = VadOptions(threshold=0.5)
    n_mels = 80


class Recorder:
    """Decodes at once; records each decode's audio and options."""

    def __init__(self):
        self.decodes: list[tuple[np.ndarray, object]] = []

    def engine(self, model):
        return GatedEngine()

    def busy(self, engine):
        return False

    async def transcribe(self, engine, audio, options):
        self.decodes.append((audio, options))
        await asyncio.sleep(0)
        info = TranscriptionInfo("en", 1.0, audio.size / 16000, audio.size / 16000)
        return Transcript(info, [Segment(0, 0, 0.0, 1.0, "words", [], 0.0, 0.0, 1.0, 0.0)])


async def _play(audio: np.ndarray, turn_detection) -> Recorder:
    decoder = Recorder()

    async def emit(event):
        pass

    config = SessionConfig(input_rate=16_000, turn_detection=turn_detection)
    session = TranscriptionSession(config, SessionLimits(partial_interval_ms=500), decoder, emit)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    for offset in range(0, len(pcm), 3200):  # 100 ms appends
        await session.append(pcm[offset:offset + 3200])
        await asyncio.sleep(0)
    if turn_detection is None:
        await session.commit()
    await session.finish()
    await session.close()
    return decoder


def test_session_vad_skips_the_engine_gate_only_where_the_gate_would_pass(clips):
    """Each decode the session sends without the gate (vad_filter=False) is one the
    gate itself would have let through: the decision is the same, Silero runs once."""
    silence = np.zeros(16_000, dtype=np.float32)
    audio = np.concatenate([x for clip in clips for x in (silence, clip)] + [silence, silence])
    decoder = asyncio.run(_play(audio, TurnDetection()))
    ungated = [a for a, options in decoder.decodes if not options.vad_filter]
    assert len(ungated) >= len(clips) + 3  # every final and most partials skip the second Silero pass
    gate = GatedEngine.gate_options
    assert all(get_speech_timestamps(a, gate) for a in ungated)


def test_push_to_talk_keeps_the_engine_gate():
    """No session VAD (turn_detection null): only the engine can tell noise from speech."""
    noise = (np.random.default_rng(0).standard_normal(32_000) * 0.01).astype(np.float32)
    decoder = asyncio.run(_play(noise, None))
    assert decoder.decodes and all(options.vad_filter for _, options in decoder.decodes)


def test_incremental_features_equal_full_recomputation(clips):
    """Real speech appended in irregular pieces, features asked for after each (and for
    a shorter prefix after a longer one, as a speculative final after a partial)."""
    extractor, rng = FeatureExtractor(), np.random.default_rng(0)
    for clip in clips:
        mel, end = IncrementalMel(), 0
        while end < clip.size:
            end = min(clip.size, end + int(rng.integers(50, 9000)))
            for n in (end, max(1, end - int(rng.integers(0, 3000)))):
                np.testing.assert_allclose(mel.features(clip[:n]), extractor(clip[:n]), atol=1e-5, rtol=0)


def test_every_turn_decode_carries_its_own_features(clips):
    """The session's decodes of a turn all start at the turn's first sample, so the
    features they carry are exactly the ones the engine would compute."""
    silence = np.zeros(16_000, dtype=np.float32)
    audio = np.concatenate([x for clip in clips for x in (silence, clip)] + [silence, silence])
    decoder = asyncio.run(_play(audio, TurnDetection()))
    extractor = FeatureExtractor()
    carried = [(a, f) for a, _ in decoder.decodes if (f := features_for(a, 80)) is not None]
    assert len(carried) >= len(clips) + 3  # finals (without context) and partials
    for a, features in carried:
        np.testing.assert_allclose(features, extractor(np.asarray(a)), atol=1e-5, rtol=0)
