"""Session logic that needs no model: VAD streaming, turn boundaries, partial
agreement, ordering and cancellation (with a fake decoder, in addition to the
real-model tests under tests/api)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from faster_whisper.vad import get_vad_model

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import Segment, Transcript, TranscriptionInfo, Word
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
    n_mels = None  # no live-session optimisations (engines/stt/base.py SpeechToText)
    gate_threshold = None


class FakeDecoder:
    """Decodes instantly-but-later: finals take `delays` in turn, text = turn number."""

    def __init__(self, delays=(0.0,)):
        self.delays = list(delays)
        self.started = 0
        self.cancelled = 0
        self.running = 0

    def engine(self, model):
        return FakeEngine()

    def busy(self, engine):
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


def _session(decoder, language=None, **limits):
    sent: list = []

    async def emit(event):
        sent.append(event)

    config = SessionConfig(input_rate=16_000, turn_detection=None, language=language)
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
        # A set language: both finals decode at once (unset, the second waits for the first's
        # language, test_a_continuing_turn_is_told_its_contexts_language).
        session, sent = _session(decoder, language="en")
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


def test_finish_commits_the_open_turn_and_waits_for_every_final():
    """Drain: the turn in progress is committed and every final is sent before
    the session closes; a turn under the minimum commit is not a turn."""
    async def run(tail_seconds):
        decoder = FakeDecoder(delays=[0.3, 0.1])
        session, sent = _session(decoder)
        await session.append(_pcm(0.5))
        await session.commit()  # still decoding when the drain starts
        await session.append(_pcm(tail_seconds))  # push-to-talk still held
        await session.finish()
        await session.close()
        return sent

    sent = asyncio.run(run(0.5))
    committed = [e.item_id for e in sent if isinstance(e, ev.Committed)]
    assert len(committed) == 2
    assert [e.item_id for e in sent if isinstance(e, ev.TranscriptCompleted)] == committed
    sent = asyncio.run(run(0.05))  # 50 ms: under the minimum, nothing to transcribe
    assert len([e for e in sent if isinstance(e, ev.Committed)]) == 1
    assert len([e for e in sent if isinstance(e, ev.TranscriptCompleted)]) == 1


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


class RecordingDecoder(FakeDecoder):
    """FakeDecoder that also records each decode's audio length (seconds)."""

    def __init__(self, delays=(0.2,)):
        super().__init__(delays)
        self.lengths: list[float] = []

    async def transcribe(self, engine, audio, options):
        self.lengths.append(audio.size / 16_000)
        return await super().transcribe(engine, audio, options)


async def _stream_vad(session, audio: np.ndarray, chunk_s: float = 0.1):
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    step = int(chunk_s * 16_000) * 2
    for offset in range(0, len(pcm), step):
        await session.append(pcm[offset:offset + step])
        await asyncio.sleep(0)  # let a speculative decode start, as the event loop would


def _vad_session(decoder, **limits):
    sent: list = []

    async def emit(event):
        if isinstance(event, ev.Committed):
            sent.append(("decodes_at_commit", decoder.started))
        sent.append(event)

    config = SessionConfig(input_rate=16_000, turn_detection=TurnDetection(silence_duration_ms=500))
    limits = SessionLimits(partial_interval_ms=0, speculative_final_ms=200, **limits)
    return TranscriptionSession(config, limits, decoder, emit), sent


def test_speculative_final_started_in_the_pause_becomes_the_final(speech):
    silence = np.zeros(16_000, dtype=np.float32)

    async def run():
        decoder = RecordingDecoder()
        session, sent = _vad_session(decoder)
        await _stream_vad(session, np.concatenate([silence[:8000], speech, silence]))
        await asyncio.sleep(0.5)
        await session.close()
        return decoder, session, sent

    decoder, session, sent = asyncio.run(run())
    completed = [e for e in sent if isinstance(e, ev.TranscriptCompleted)]
    assert len(completed) == 1 and session.speculative_used == 1
    at_commit = next(n for kind, n in (x for x in sent if isinstance(x, tuple)))
    # The final is the decode that started before the commit: no decode after it.
    assert decoder.started == at_commit
    assert completed[0].transcript == f"turn {at_commit - 1}"
    # It heard the whole turn: speech plus the 200 ms of pause it waited for.
    assert decoder.lengths[-1] >= speech.size / 16_000


def test_speculation_is_dropped_when_speech_resumes(speech):
    half = speech.size // 2
    pause = np.zeros(int(0.4 * 16_000), dtype=np.float32)  # > 200 ms, < the 500 ms that ends a turn
    silence = np.zeros(16_000, dtype=np.float32)

    async def run():
        decoder = RecordingDecoder(delays=(0.05,))
        session, sent = _vad_session(decoder)
        await _stream_vad(session, np.concatenate([silence[:8000], speech[:half], pause, speech[half:], silence]))
        await asyncio.sleep(0.5)
        await session.close()
        return decoder, session, sent

    decoder, session, sent = asyncio.run(run())
    completed = [e for e in sent if isinstance(e, ev.TranscriptCompleted)]
    assert len(completed) == 1 and session.speculative_dropped >= 1
    # The final covers both halves: either a fresh decode after the commit, or a
    # speculation made in the turn's final pause, never the mid-turn one.
    assert decoder.lengths[int(completed[0].transcript.split()[1])] >= speech.size / 16_000


def test_final_windows_and_repetition_check():
    from voxhost.realtime.decoding import final_window_seconds, repeats

    assert final_window_seconds(1.0) == 15 and final_window_seconds(12.0) == 20 and final_window_seconds(29) == 30
    assert repeats("The narrative would be tedious. The narrative would be tedious to him.")
    assert not repeats("word, another word. Here's some more word")
    assert not repeats("And so my fellow Americans, ask not what your country can do for you")


def test_a_final_that_repeats_itself_is_decoded_again_in_the_full_window():
    class LoopingInShortWindows(FakeDecoder):
        def __init__(self):
            super().__init__()
            self.windows = []

        async def transcribe(self, engine, audio, options):
            self.windows.append(options.chunk_length)
            said = "the narrative would be tedious to him"
            text = f"{said}. {said}." if options.chunk_length else f"{said}."
            info = TranscriptionInfo("en", 1.0, audio.size / 16000, audio.size / 16000)
            return Transcript(info, [Segment(0, 0, 0.0, 1.0, text, [], 0.0, 0.0, 1.0, 0.0)])

    async def run():
        decoder = LoopingInShortWindows()
        session, sent = _session(decoder)
        await session.append(_pcm(2.0))
        await session.commit()
        await asyncio.sleep(0.1)
        await session.close()
        return decoder, sent

    decoder, sent = asyncio.run(run())
    assert decoder.windows == [15, None]
    assert [e.transcript for e in sent if isinstance(e, ev.TranscriptCompleted)] == \
        ["the narrative would be tedious to him."]


def test_a_continuing_turn_is_told_its_contexts_language():
    """No session language: a turn committed right after another is decoded after its tail,
    with that turn's language as the hint and detection after the context, so that a player
    answering in another language neither takes the context's language nor loses the turn
    (the engine then leaves the context out, tests/api/test_stt_languages.py). A later turn
    with no context gets the session's last language as its hint."""
    class Languages(FakeDecoder):
        def __init__(self):
            super().__init__(delays=[0.2, 0.0, 0.0])
            self.options = []

        async def transcribe(self, engine, audio, options):
            self.options.append(options)
            transcript = await super().transcribe(engine, audio, options)
            transcript.info.language = ["ko", "zh", "zh"][len(self.options) - 1]
            end = audio.size / 16_000  # the words of a turn decoded after context are at its end
            transcript.segments[0].words = [Word(end - 0.5, end, transcript.segments[0].text, 1.0)]
            return transcript

    async def run():
        decoder = Languages()
        session, sent = _session(decoder)
        await session.append(_pcm(1.0))
        await session.commit()
        await session.append(_pcm(1.0))  # right after: decoded after the first turn's tail
        await session.commit()
        await asyncio.sleep(0.5)
        session._tail = None  # as after a long pause: no context
        await session.append(_pcm(1.0))
        await session.commit()
        await asyncio.sleep(0.3)
        await session.close()
        return decoder, sent

    decoder, sent = asyncio.run(run())
    first, second, third = decoder.options
    assert first.language_hint is None and first.detect_language_from == 0
    assert second.language_hint == "ko" and second.detect_language_from > 0  # waited for the first
    assert third.language_hint == "zh" and third.detect_language_from == 0
    assert [e.language for e in sent if isinstance(e, ev.TranscriptCompleted)] == ["ko", "zh", "zh"]


def test_the_next_speaker_is_heard_from_their_first_words(eval_audio):
    """Silero's state after one speaker kept it deaf to the next for seconds: a French line
    2 s after a Spanish one was heard 6 s into it (its first 3.5 s lost), against 2.4 s
    (0.3 s before the words) when it starts a session. After a second idle the VAD starts afresh."""
    first, second = (decode_audio((eval_audio / name).read_bytes()) for name in
                     ("fleurs_es_002.wav", "fleurs_fr_000.wav"))
    gap = lambda seconds: np.zeros(int(seconds * 16_000), np.float32)  # noqa: E731

    async def speech_starts(audio):
        starts = []

        async def emit(event):
            if isinstance(event, ev.SpeechStarted):
                starts.append(event.audio_start_ms)

        session = TranscriptionSession(SessionConfig(input_rate=16_000, turn_detection=TurnDetection()),
                                       SessionLimits(partial_interval_ms=0, speculative_final_ms=0),
                                       FakeDecoder(), emit)
        pcm = (np.concatenate([gap(0.5), audio, gap(1.5)]) * 32767).astype("<i2").tobytes()
        for offset in range(0, len(pcm), 3200):
            await session.append(pcm[offset:offset + 3200])
        await session.close()
        return starts

    alone = asyncio.run(speech_starts(second))[0]
    starts = asyncio.run(speech_starts(np.concatenate([first, gap(2.0), second])))
    second_begins = int((first.size / 16_000 + 2.0) * 1000)
    assert len(starts) == 2 and starts[1] - second_begins <= alone + 300, (starts, second_begins, alone)
