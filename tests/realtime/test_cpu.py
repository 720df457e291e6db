"""The live path's CPU moves give the same decisions and features as the work they replace."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.vad import VadOptions, get_speech_timestamps

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import Segment, Transcript, TranscriptionInfo
from voxhost.engines.stt.features import IncrementalMel, after_context, features_for, tail, with_features
from voxhost.engines.stt.simulated import SimulatedGpuEngine
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
    gate_threshold = 0.5
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


async def _play(audio: np.ndarray, turn_detection, decoder=None, rng: np.random.Generator | None = None):
    """Play `audio` into a session in 100 ms appends (irregular ones, 2 ms to 600 ms, with `rng`)."""
    decoder = decoder or Recorder()

    async def emit(event):
        pass

    config = SessionConfig(input_rate=16_000, turn_detection=turn_detection)
    session = TranscriptionSession(config, SessionLimits(partial_interval_ms=500), decoder, emit)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    offset = 0
    while offset < len(pcm):
        step = 3200 if rng is None else 2 * int(rng.integers(32, 9600))
        await session.append(pcm[offset:offset + step])
        offset += step
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
    gate = VadOptions(threshold=GatedEngine.gate_threshold)
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


def test_features_after_context_equal_full_recomputation(clips):
    """Turns decoded after the last turn's tail: the turn alone and context + turn, after
    irregular appends (shorter prefixes too), each equal to faster-whisper's features of that array."""
    extractor, rng = FeatureExtractor(), np.random.default_rng(1)
    context = None
    for clip in clips + clips[:1]:
        mel, end = IncrementalMel(context=context), 0
        assert (mel.context is None) == (context is None)
        while end < clip.size:
            end = min(clip.size, end + int(rng.integers(50, 9000)))
            for n in (end, max(1, end - int(rng.integers(0, 3000)))):
                turn = with_features(clip[:n].copy(), mel, mel.turn_offset)
                arrays = [turn] if context is None else [turn, after_context(context, turn)]
                for audio in arrays:
                    np.testing.assert_allclose(features_for(audio, 80), extractor(np.asarray(audio)),
                                               atol=1e-5, rtol=0)
        turn = with_features(clip.copy(), mel, mel.turn_offset)
        context = tail(turn if context is None else after_context(context, turn), 64_000)


def test_features_after_context_from_two_threads(clips):
    """A partial (the turn alone) and a final (context + turn) of one turn decode at once
    on two workers: each still gets exactly its own array's features."""
    extractor = FeatureExtractor()
    context = tail(with_features(clips[0], IncrementalMel()), 64_000)
    mel, clip = IncrementalMel(context=context), clips[1]
    ends = list(range(4_000, clip.size, 1_700)) + [clip.size]
    turns = [with_features(clip[:n].copy(), mel, mel.turn_offset) for n in ends]
    arrays = [a for turn in turns for a in (turn, after_context(context, turn))]
    with ThreadPoolExecutor(2) as pool:
        computed = list(pool.map(lambda a: features_for(a, 80), arrays))
    for audio, features in zip(arrays, computed):
        np.testing.assert_allclose(features, extractor(np.asarray(audio)), atol=1e-5, rtol=0)


def _turns(clips: list[np.ndarray]) -> np.ndarray:
    """The clips with 1 s pauses: each turn after the first is decoded after the last one's tail."""
    silence = np.zeros(16_000, dtype=np.float32)
    return np.concatenate([x for clip in clips for x in (silence, clip)] + [silence, silence])


def test_every_decode_carries_its_own_features(clips):
    """Every decode a session sends, partials and finals (after the previous turn's
    context too), carries features equal to the engine's own over exactly its audio,
    with appends of irregular sizes."""
    decoder = asyncio.run(_play(_turns(clips), TurnDetection(), rng=np.random.default_rng(0)))
    extractor = FeatureExtractor()
    after_context = [a for a, options in decoder.decodes if options.word_timestamps]  # decoding.py's context path
    assert len(after_context) >= len(clips) - 1 and len(decoder.decodes) >= len(clips) + 3
    for a, _ in decoder.decodes:
        features = features_for(a, 80)
        assert features is not None, f"a decode of {a.size} samples carries no features"
        np.testing.assert_allclose(features, extractor(np.asarray(a)), atol=1e-5, rtol=0)


class CountingDecoder(Recorder):
    """simulated-gpu decodes at once: features as WhisperEngine computes them, no model."""

    engine_ = SimulatedGpuEngine(call_seconds=0.0, item_seconds=0.0)

    def engine(self, model):
        return self.engine_

    async def transcribe(self, engine, audio, options):
        self.decodes.append((audio, options))
        return engine.transcribe(audio, options)


def test_no_decode_recomputes_features_in_full(clips, monkeypatch):
    """No decode falls back to faster-whisper's whole-clip features, and the session's
    STFT frames add up to its audio about once (each frame computed once, even across
    the context a final is decoded after) plus a few edge frames per decode."""
    frames, full = [0], [0]
    stft, extract = FeatureExtractor.stft, FeatureExtractor.__call__

    def counting_stft(*args, **kwargs):
        out = stft(*args, **kwargs)
        frames[0] += out.shape[-1]
        return out

    def counting_call(self, *args, **kwargs):
        full[0] += 1
        return extract(self, *args, **kwargs)

    monkeypatch.setattr(FeatureExtractor, "stft", staticmethod(counting_stft))
    monkeypatch.setattr(FeatureExtractor, "__call__", counting_call)
    audio = _turns(clips)
    decoder = asyncio.run(_play(audio, TurnDetection(), CountingDecoder()))
    assert any(options.word_timestamps for _, options in decoder.decodes)  # finals after context ran
    assert full[0] == 0
    # Edge frames per decode: 2 over the turn's start, <= 4 over the end padding, 3 across the join.
    assert frames[0] <= audio.size // 160 + 9 * len(decoder.decodes)
