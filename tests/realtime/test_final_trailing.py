"""Live finals keep their last word when the speech starts at sample 0.

A speculative final started 200 ms into the pause decoded the turn with ~150 ms of
audio after its last word, and Whisper dropped the words before it ("in being
comparatively modern." -> "in being"), every time, for a clip streamed from its first
sample (with leading silence the same audio decoded whole). A final's audio now runs at
least `final_trailing_ms` into the pause, padded with silence where less was heard.

Real clips from shared/eval whose speech starts at their first sample, streamed as
24 kHz PCM16 resampled by linear interpolation (as some clients do; the case that lost
words), through the session with the real whisper-base engine and a decoder that is
always free (so the speculative final is the one used), and through the server in both
protocols.
"""

from __future__ import annotations

import asyncio
import time
import wave

import numpy as np
import pytest

from voxhost.realtime import events as ev
from voxhost.realtime.config import SessionConfig, SessionLimits
from voxhost.realtime.session import TranscriptionSession
from voxhost.stt.wer import normalize

# Speech from the first sample (Silero hears it in the first 32 ms window), 1.5-2.6 s each.
FROM_SAMPLE_ZERO = {
    "lj_LJ001-0002.wav": "in being comparatively modern.",
    "lj_LJ001-0008.wav": "has never been surpassed.",
    "lj_LJ001-0013.wav": "than in the same operations with ugly ones.",
    "lj_LJ002-0020.wav": "in 1813",
    "lj_LJ002-0035.wav": "8. The press yard",
}


def linear_24k(path) -> bytes:
    """The clip from its first sample, 16 -> 24 kHz by linear interpolation, then 1 s of silence."""
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
    n = pcm.size * 3 // 2
    up = np.interp(np.arange(n) / 1.5, np.arange(pcm.size), pcm).astype("<i2")
    return np.concatenate([up, np.zeros(24_000, "<i2")]).tobytes()


class FreeDecoder:
    """The real engine, always free: every pause gets its speculative final."""

    def __init__(self, engine):
        self._engine = engine

    def engine(self, model):
        return self._engine

    def busy(self, engine):
        return False

    async def transcribe(self, engine, audio, options):
        return await asyncio.to_thread(engine.transcribe, audio, options)


def last_word(text: str) -> str:
    words = normalize(text).split()
    return words[-1] if words else ""


@pytest.fixture(scope="module")
def whisper_base(server):
    return server.app.state.voxhost.services.stt_engines.get("whisper-base")


async def _stream(engine, pcm: bytes, limits: SessionLimits) -> tuple[list[str], TranscriptionSession]:
    finals: list[str] = []

    async def emit(event):
        if isinstance(event, ev.TranscriptCompleted):
            finals.append(event.transcript)

    session = TranscriptionSession(SessionConfig(language="en"), limits, FreeDecoder(engine), emit)
    for offset in range(0, len(pcm), 4800):  # 100 ms appends
        await session.append(pcm[offset:offset + 4800])
        await asyncio.sleep(0)  # let a speculation start, as between a client's messages
    await asyncio.gather(*session._finals)
    return finals, session


@pytest.mark.parametrize("clip", sorted(FROM_SAMPLE_ZERO))
def test_speculative_finals_keep_the_last_word_of_speech_from_sample_zero(whisper_base, eval_audio, clip):
    finals, session = asyncio.run(_stream(whisper_base, linear_24k(eval_audio / clip),
                                          SessionLimits(partial_interval_ms=0)))
    assert session.speculative_used == 1, "the speculative final must be the one tested"
    assert len(finals) == 1 and last_word(finals[0]) == last_word(FROM_SAMPLE_ZERO[clip]), finals


def test_a_final_runs_into_the_pause_however_short_the_clients_silence(whisper_base, eval_audio):
    """silence_duration_ms under final_trailing_ms (a client's choice) gets the same padding."""
    from voxhost.realtime.vad import TurnDetection

    decoded = []

    class Recording(FreeDecoder):
        async def transcribe(self, engine, audio, options):
            decoded.append(audio.size)
            return await super().transcribe(engine, audio, options)

    async def run():
        session = TranscriptionSession(
            SessionConfig(language="en", turn_detection=TurnDetection(silence_duration_ms=200)),
            SessionLimits(partial_interval_ms=0, speculative_final_ms=0), Recording(whisper_base), _ignore)
        pcm = linear_24k(eval_audio / "lj_LJ001-0002.wav")
        for offset in range(0, len(pcm), 4800):
            await session.append(pcm[offset:offset + 4800])
        await asyncio.gather(*session._finals)
        return session

    asyncio.run(run())
    # The turn ends 200 ms (+ a VAD window) into the pause; its final decodes 500 ms of it.
    assert decoded and decoded[0] >= (1.82 + 0.5) * 16_000, decoded


async def _ignore(event):
    pass


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_the_whole_sentence_through_the_server_in_both_protocols(base_url, eval_audio, beta):
    from voxhost.loadtest.realtime_client import session_update, stream

    url = base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    started = time.monotonic()
    result = asyncio.run(stream(url, linear_24k(eval_audio / "lj_LJ001-0002.wav"),
                                update=session_update(beta=beta), settle_timeout=60))
    assert not result.errors, result.errors
    turn = result.ordered_turns[0]
    assert turn.first("input_audio_buffer.speech_started")[1]["audio_start_ms"] == 0
    assert normalize(result.text) == "in being comparatively modern", (result.text, time.monotonic() - started)
