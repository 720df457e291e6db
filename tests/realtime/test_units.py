"""Session logic that needs no model: VAD streaming, turn boundaries, partial
agreement, ordering and cancellation (with a fake decoder, in addition to the
real-model tests under tests/api)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from faster_whisper.vad import get_vad_model

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import Transcript, TranscriptionInfo, Segment
from voxhost.ops.auth import extract_api_key
from voxhost.realtime import events as ev
from voxhost.realtime.config import SessionConfig, SessionLimits
from voxhost.realtime.partials import LocalAgreement
from voxhost.realtime.session import TranscriptionSession
from voxhost.realtime.vad import WINDOW, StreamingSilero, TurnDetection, TurnDetector


@pytest.fixture(scope="module")
def speech(eval_audio) -> np.ndarray:
    return decode_audio((eval_audio / "lj_LJ001-0004.wav").read_bytes())


def test_streaming_vad_equals_whole_buffer(speech):
    whole = get_vad_model()(speech[: speech.size // WINDOW * WINDOW]).reshape(-1)
    vad, probs, rng = StreamingSilero(), [], np.random.default_rng(0)
    offset = 0
    while offset < speech.size:  # irregular appends, like a network would deliver
        step = int(rng.integers(100, 5000))
        probs.append(vad.feed(speech[offset: offset + step]))
        offset += step
    streamed = np.concatenate(probs)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_turn_detector_finds_one_turn_in_padded_speech(speech):
    audio = np.concatenate([np.zeros(16_000), speech, np.zeros(16_000)]).astype(np.float32)
    detector, vad, changes, pos = TurnDetector(TurnDetection()), StreamingSilero(), [], 0
    for prob in vad.feed(audio):
        pos += WINDOW
        if change := detector.push(float(prob), pos):
            changes.append(change)
    assert [c[0] for c in changes] == ["start", "stop"]
    start, stop = changes[0][1], changes[1][1]
    assert 14_000 <= start <= 20_000  # speech begins ~1 s in
    speech_end = 16_000 + speech.size
    assert speech_end - 8_000 <= stop <= speech_end + 16_000  # speech end + 500 ms of silence


def test_local_agreement_sends_only_agreed_words():
    la = LocalAgreement()
    assert la.update("the north") is None  # nothing to agree with yet
    assert la.update("the north gate") == "the north"
    assert la.update("the north gate opens") == " gate"
    assert la.update("The north gate, opens at") == " opens"  # case and punctuation don't matter
    assert la.update("the nerf gate opens at dawn") is None  # a revision never unsends
    assert la.text == "the north gate opens"


def test_extract_api_key_everywhere_clients_put_it():
    assert extract_api_key({"Authorization": "Bearer sk-1"}, {}) == "sk-1"
    assert extract_api_key({"x-api-key": "sk-2"}, {}) == "sk-2"
    assert extract_api_key({}, {"api_key": "sk-3"}) == "sk-3"
    assert extract_api_key({"sec-websocket-protocol": "realtime, openai-insecure-api-key.sk-4"}, {}) == "sk-4"
    assert extract_api_key({"Authorization": "Basic abc"}, {}) is None


class FakeEngine:
    name = "fake"
    multilingual = True


class FakeDecoder:
    """Decodes instantly-but-later: finals take `delays` in turn, text = turn number."""

    def __init__(self, delays=(0.0,)):
        self.delays = list(delays)
        self.started = 0
        self.cancelled = 0
        self.running = 0

    def engine(self, model):
        return FakeEngine()

    def busy(self):
        return self.running > 0

    async def transcribe(self, engine, audio, options):
        index = self.started
        self.started += 1
        self.running += 1
        try:
            await asyncio.sleep(self.delays[min(index, len(self.delays) - 1)])
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        info = TranscriptionInfo("en", 1.0, audio.size / 16000, audio.size / 16000)
        return Transcript(info, [Segment(0, 0, 0.0, 1.0, f"turn {index}", [], 0.0, 0.0, 1.0, 0.0)])


def _pcm(seconds: float) -> bytes:
    rng = np.random.default_rng(1)
    return (rng.standard_normal(int(seconds * 16_000)) * 3000).astype("<i2").tobytes()


def _session(decoder, **limits):
    sent: list = []

    async def emit(event):
        sent.append(event)

    config = SessionConfig(input_rate=16_000, turn_detection=None)
    return TranscriptionSession(config, SessionLimits(partial_interval_ms=0, **limits), decoder, emit), sent


def test_finals_arrive_in_commit_order():
    async def run():
        decoder = FakeDecoder(delays=[0.3, 0.0, 0.1])  # the first turn decodes slowest
        session, sent = _session(decoder)
        for _ in range(3):
            await session.append(_pcm(0.5))
            await session.commit()
        await asyncio.sleep(0.6)
        await session.close()
        return sent

    sent = asyncio.run(run())
    committed = [e.item_id for e in sent if isinstance(e, ev.Committed)]
    completed = [e.item_id for e in sent if isinstance(e, ev.TranscriptCompleted)]
    assert completed == committed and len(committed) == 3


def test_close_cancels_pending_decodes():
    async def run():
        decoder = FakeDecoder(delays=[10.0])
        session, sent = _session(decoder)
        await session.append(_pcm(1.0))
        await session.commit()
        await session.append(_pcm(1.0))
        await session.commit()
        await asyncio.sleep(0.05)
        assert session.pending_tasks == 2
        await session.close()
        return decoder, session, sent

    decoder, session, sent = asyncio.run(run())
    assert decoder.cancelled == 2 and session.pending_tasks == 0
    assert not [e for e in sent if isinstance(e, ev.TranscriptCompleted)]


def test_too_many_waiting_turns_fail_fast():
    async def run():
        decoder = FakeDecoder(delays=[0.2])
        session, sent = _session(decoder, max_pending_turns=1)
        for _ in range(3):
            await session.append(_pcm(0.5))
            await session.commit()
        await asyncio.sleep(0.5)
        await session.close()
        return sent

    sent = asyncio.run(run())
    failed = [e for e in sent if isinstance(e, ev.TranscriptFailed)]
    assert len(failed) == 2 and all(e.error.code == "server_overloaded" for e in failed)
    assert len([e for e in sent if isinstance(e, ev.TranscriptCompleted)]) == 1


def test_partials_skip_when_the_engine_is_busy():
    async def run():
        decoder = FakeDecoder(delays=[0.05])
        session, sent = _session(decoder)
        session.limits = SessionLimits(partial_interval_ms=500)
        decoder.running = 1  # someone else's decode occupies the worker
        await session.append(_pcm(2.0))
        skipped = decoder.started
        decoder.running = 0
        await session.append(_pcm(0.6))
        await asyncio.sleep(0.1)
        await session.close()
        return skipped, decoder.started

    skipped, started = asyncio.run(run())
    assert skipped == 0 and started == 1


def test_manual_turn_is_force_committed_at_the_limit():
    async def run():
        session, sent = _session(FakeDecoder(), max_turn_seconds=1.0)
        await session.append(_pcm(2.6))
        await asyncio.sleep(0.05)
        await session.close()
        return sent

    sent = asyncio.run(run())
    assert len([e for e in sent if isinstance(e, ev.Committed)]) == 2
    # Memory stays bounded: what remains is under one turn.
