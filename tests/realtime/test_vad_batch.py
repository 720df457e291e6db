"""Live sessions scored together (realtime/vad_batch.py) decide exactly as each would alone.

Real eval speech through the real bundled Silero graph, rewritten with sessions on
its batch axis; the reference is `StreamingSilero`, one session scored alone by the
graph as shipped. The decoder is a stand-in: only the VAD's decisions are under test.
"""

from __future__ import annotations

import asyncio

import numpy as np
import onnx
import pytest

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import Segment, Transcript, TranscriptionInfo
from voxhost.realtime import events as ev
from voxhost.realtime.config import SessionConfig, SessionLimits
from voxhost.realtime.session import TranscriptionSession
from voxhost.realtime.silero_batch import batched_graph, bundled_model_path
from voxhost.realtime.vad import StreamingSilero, TurnDetection
from voxhost.realtime.vad_batch import SileroStream, VadBatcher

CLIPS = ["lj_LJ001-0002.wav", "lj_LJ001-0004.wav", "cathy_arctic_a0001.wav", "arctic_aew_arctic_a0002.wav",
         "ami_ES2011a_40-46s.wav"]
TOLERANCE = 1e-6  # measured: 0.0 (the same weights, the same onnxruntime kernels)


@pytest.fixture(scope="module")
def players(eval_audio) -> list[np.ndarray]:
    """Each player's 16 kHz PCM16: two different clips, each after a second of silence."""
    silence = np.zeros(16_000, dtype=np.float32)
    clips = [decode_audio((eval_audio / name).read_bytes()) for name in CLIPS]
    audio = [np.concatenate([silence, clips[i], silence, clips[(i + 1) % len(clips)], silence])
             for i in range(len(clips))]
    return [(np.clip(a, -1, 1) * 32767).astype("<i2") for a in audio]


def _appends(pcm: np.ndarray, seed: int) -> list[bytes]:
    """Irregular append sizes, 5 ms to 0.6 s (more than one ingest slice), different per player."""
    rng, out, offset = np.random.default_rng(seed), [], 0
    while offset < pcm.size:
        step = int(rng.integers(80, 9_600))
        out.append(pcm[offset:offset + step].tobytes())
        offset += step
    return out


class InstantDecoder:
    class Engine:
        name = "instant"
        multilingual = True
        n_mels = None
        gate_threshold = None

    def engine(self, model):
        return self.Engine()

    def busy(self, engine):
        return False

    async def transcribe(self, engine, audio, options):
        info = TranscriptionInfo("en", 1.0, audio.size / 16000, audio.size / 16000)
        return Transcript(info, [Segment(0, 0, 0.0, 1.0, "words", [], 0.0, 0.0, 1.0, 0.0)])


class RecordedBatched(SileroStream):
    """The session's own batched stream, keeping what it was given."""

    def __init__(self):
        super().__init__()
        self.probs: list[np.ndarray] = []

    async def feed(self, audio):
        probs = await super().feed(audio)
        self.probs.append(probs)
        return probs


class Alone:
    """The reference: this session scored alone by the graph as shipped."""

    def __init__(self):
        self.reference = StreamingSilero()
        self.probs: list[np.ndarray] = []

    def reset(self):
        self.reference.reset()

    def forget(self):
        self.reference.forget()

    async def feed(self, audio):
        probs = self.reference.feed(audio)
        self.probs.append(probs)
        return probs


def _session(vad):
    sent: list = []

    async def emit(event):
        sent.append(event)

    # No partials or speculative finals: their timing depends on the decoder, not the VAD.
    limits = SessionLimits(partial_interval_ms=0, speculative_final_ms=0)
    session = TranscriptionSession(SessionConfig(input_rate=16_000), limits, InstantDecoder(), emit)
    session._vad = vad
    return session, sent


def _decisions(sent: list) -> list[tuple]:
    """The VAD's decisions as a client sees them (item ids are random per run)."""
    out = []
    for event in sent:
        if isinstance(event, ev.SpeechStarted):
            out.append(("started", event.audio_start_ms))
        elif isinstance(event, ev.SpeechStopped):
            out.append(("stopped", event.audio_end_ms))
        elif isinstance(event, ev.Committed):
            out.append(("committed",))
    return out


async def _alone(appends: list[bytes], stop_after: int | None = None) -> tuple[list, np.ndarray]:
    vad = Alone()
    session, sent = _session(vad)
    for data in appends[:stop_after]:
        await session.append(data)
    await session.finish()
    await session.close()
    return _decisions(sent), np.concatenate(vad.probs)


def test_sessions_scored_together_decide_as_each_alone(players):
    """Five players at once, each appending different sizes: every ONNX call holds
    sessions with different window counts, and each session's probabilities and
    turn events are the ones it gets alone."""
    streams = [_appends(pcm, seed) for seed, pcm in enumerate(players)]

    async def together():
        sessions = [_session(RecordedBatched()) for _ in streams]
        for n in range(max(len(s) for s in streams)):
            # As the server's connections do: each its own task.
            await asyncio.gather(*[s.append(appends[n]) for (s, _), appends in zip(sessions, streams)
                                   if n < len(appends)])
        for session, _ in sessions:
            await session.finish()
            await session.close()
        return sessions, VadBatcher.for_running_loop().calls

    sessions, calls = asyncio.run(together())
    feeds = sum(1 for session, _ in sessions for probs in session._vad.probs if probs.size)
    assert calls < feeds / 2, (calls, feeds)  # they really were scored together
    for (session, sent), appends in zip(sessions, streams):
        decisions, reference = asyncio.run(_alone(appends))
        probs = np.concatenate(session._vad.probs)
        assert probs.shape == reference.shape
        assert np.abs(probs - reference).max() <= TOLERANCE
        assert _decisions(sent) == decisions
        assert [d[0] for d in decisions].count("started") >= 2  # both clips heard


UPDATED = SessionConfig(input_rate=16_000, turn_detection=TurnDetection(threshold=0.6, silence_duration_ms=400))


def test_a_session_closing_or_reset_mid_stream_leaves_the_others_alone(players):
    """Mid-stream, while the others' appends wait in a batch: one player's connection
    drops with its own append in the batch (its task cancelled), one closes, and one
    sends a session.update that resets its VAD. The others decide as alone, and the
    updated one as it would alone with the same update at the same point."""
    streams = [_appends(pcm, 10 + seed) for seed, pcm in enumerate(players)]
    cut = 40  # appends before the disruption (several seconds in: mid-turn for most players)

    async def together():
        sessions = [_session(RecordedBatched()) for _ in streams]
        for n in range(max(len(s) for s in streams)):
            live = [i for i, ((s, _), a) in enumerate(zip(sessions, streams)) if n < len(a) and not s._closed]
            if n == cut:
                live.remove(2)  # player 2 sends its update instead of this append
            tasks = {i: asyncio.create_task(sessions[i][0].append(streams[i][n])) for i in live}
            if n == cut:
                await asyncio.sleep(0)  # every append is in the batch, not yet scored
                tasks.pop(0).cancel()  # player 0's connection drops
                await asyncio.gather(sessions[1][0].close(), sessions[2][0].update(UPDATED))
            await asyncio.gather(*tasks.values())
            if n == cut:
                await sessions[0][0].close()
        for session, _ in sessions[2:]:
            await session.finish()
            await session.close()
        return sessions

    async def alone_updated(appends):
        vad = Alone()
        session, sent = _session(vad)
        for n, data in enumerate(appends):
            await (session.update(UPDATED) if n == cut else session.append(data))
        await session.finish()
        return _decisions(sent), np.concatenate(vad.probs)

    sessions = asyncio.run(together())
    for i in (2, 3, 4):
        decisions, reference = asyncio.run(alone_updated(streams[i]) if i == 2 else _alone(streams[i]))
        probs = np.concatenate(sessions[i][0]._vad.probs)
        assert probs.shape == reference.shape
        assert np.abs(probs - reference).max() <= TOLERANCE
        assert _decisions(sessions[i][1]) == decisions


def test_a_stream_reset_with_windows_in_flight_starts_afresh(players):
    """The windows already in a batch are scored from the old state, but their
    state is not written back over the reset one."""
    a, b = (np.frombuffer(pcm, "<i2").astype(np.float32) / 32768 for pcm in players[:2])

    async def run():
        first, other = SileroStream(), SileroStream()
        head = asyncio.ensure_future(first.feed(a[:16_000]))
        side = asyncio.ensure_future(other.feed(b[:16_000]))
        await asyncio.sleep(0)
        first.reset()
        await head
        rest = a[16_000:48_000]
        after = [await first.feed(rest[o:o + 3000]) for o in range(0, rest.size, 3000)]
        return np.concatenate(after), np.concatenate([await side, await other.feed(b[16_000:48_000])])

    after, side = asyncio.run(run())
    fresh = StreamingSilero().feed(a[16_000:48_000])
    assert np.abs(after - fresh).max() <= TOLERANCE
    assert np.abs(side - StreamingSilero().feed(b[:48_000])).max() <= TOLERANCE


def test_the_rewritten_graph_is_valid_onnx():
    onnx.checker.check_model(batched_graph(onnx.load(bundled_model_path())), full_check=True)


def test_one_stream_feeds_one_append_at_a_time():
    async def run():
        stream = SileroStream()
        first = asyncio.ensure_future(stream.feed(np.zeros(2048, dtype=np.float32)))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            await stream.feed(np.zeros(2048, dtype=np.float32))
        return await first

    assert asyncio.run(run()).shape == (4,)
