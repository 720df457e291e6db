"""A reference client: stream audio into /v1/realtime paced like a live microphone.

Used by the tests and bench/realtime_latency.py, and a readable example of
the protocol for game-engine integrators. Audio chunk [a, a+chunk) is sent
at t0 + a + chunk, as a microphone would deliver it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field

import numpy as np
import websockets

from voxhost.audio.decode import decode_audio
from voxhost.audio.pcm import WHISPER_RATE, resample_pcm16, to_pcm16

TERMINAL = ("conversation.item.input_audio_transcription.completed",
            "conversation.item.input_audio_transcription.failed")


@dataclass
class Turn:
    item_id: str
    events: list[tuple[float, dict]] = field(default_factory=list)  # (monotonic time, event)

    def first(self, kind: str) -> tuple[float, dict] | None:
        return next(((t, e) for t, e in self.events if e["type"] == kind), None)

    @property
    def types(self) -> list[str]:
        return [e["type"] for _, e in self.events]

    @property
    def transcript(self) -> str | None:
        done = self.first(TERMINAL[0])
        return done[1]["transcript"] if done else None

    @property
    def deltas(self) -> list[tuple[float, str]]:
        return [(t, e["delta"]) for t, e in self.events if e["type"].endswith("transcription.delta")]


@dataclass
class StreamResult:
    t0: float = 0.0  # monotonic time at which audio position 0 "happened"
    turns: dict[str, Turn] = field(default_factory=dict)
    events: list[tuple[float, dict]] = field(default_factory=list)
    commit_times: list[float] = field(default_factory=list)  # manual commits, monotonic
    close_code: int | None = None

    @property
    def errors(self) -> list[dict]:
        return [e for _, e in self.events if e["type"] == "error"]

    @property
    def ordered_turns(self) -> list[Turn]:
        committed = [e["item_id"] for _, e in self.events if e["type"] == "input_audio_buffer.committed"]
        return [self.turns[i] for i in committed]

    @property
    def text(self) -> str:
        return " ".join(t.transcript or "" for t in self.ordered_turns).strip()


def pcm16(audio16k: np.ndarray, rate: int) -> bytes:
    """16 kHz float32 -> PCM16 LE bytes at `rate`."""
    return resample_pcm16(to_pcm16(audio16k), WHISPER_RATE, rate).astype("<i2").tobytes()


def load_pcm(path, rate: int = 24_000, *, lead_silence: float = 0.5, tail_silence: float = 1.5) -> bytes:
    audio = decode_audio(open(path, "rb").read())
    pad = lambda s: np.zeros(int(s * WHISPER_RATE), dtype=np.float32)  # noqa: E731
    return pcm16(np.concatenate([pad(lead_silence), audio, pad(tail_silence)]), rate)


def session_update(*, rate: int = 24_000, model: str | None = None, language: str | None = "en",
                   turn_detection: dict | None | str = "server_vad", beta: bool = False) -> dict:
    if turn_detection == "server_vad":
        turn_detection = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                          "silence_duration_ms": 500}
    transcription = {"model": model or "whisper-1", "language": language}
    fmt = "pcm16" if rate == 24_000 else {"type": "audio/pcm", "rate": rate}
    if beta:
        return {"type": "transcription_session.update", "session": {
            "input_audio_format": fmt, "input_audio_transcription": transcription,
            "turn_detection": turn_detection}}
    return {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "format": fmt if isinstance(fmt, dict) else {"type": "audio/pcm", "rate": 24_000},
        "transcription": transcription, "turn_detection": turn_detection}}}}


async def stream(url: str, pcm: bytes, *, rate: int = 24_000, update: dict | None = None,
                 chunk_ms: int = 100, realtime: bool = True, commit_every: list[int] | None = None,
                 commit_at_end: bool = False, binary: bool = False, headers: dict | None = None,
                 settle_timeout: float = 120.0) -> StreamResult:
    """Stream `pcm` (PCM16 at `rate`); wait until every committed turn has its final.

    commit_every: byte offsets after which to send input_audio_buffer.commit (push-to-talk).
    """
    result = StreamResult()
    update = update or session_update(rate=rate)
    bytes_per_chunk = rate * 2 * chunk_ms // 1000
    commits = sorted(commit_every or [])
    beta = update.get("type", "").startswith("transcription_session")
    headers = {**({"OpenAI-Beta": "realtime=v1"} if beta else {}), **(headers or {})}
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        def record(event: dict) -> None:
            now = time.monotonic()
            result.events.append((now, event))
            if item := event.get("item_id"):
                result.turns.setdefault(item, Turn(item)).events.append((now, event))

        async def expect(kind: str) -> dict:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                record(event)
                if event["type"] in (kind, "error"):
                    return event

        await expect("transcription_session.created" if beta else "session.created")
        await ws.send(json.dumps(update))
        await expect(update["type"].replace(".update", ".updated"))

        async def receive() -> None:
            try:
                async for message in ws:
                    record(json.loads(message))
            except websockets.ConnectionClosed as closed:
                result.close_code = closed.rcvd.code if closed.rcvd else None

        receiver = asyncio.create_task(receive())
        result.t0 = time.monotonic()
        for offset in range(0, len(pcm), bytes_per_chunk):
            chunk = pcm[offset: offset + bytes_per_chunk]
            if realtime:
                due = result.t0 + (offset + len(chunk)) / (rate * 2)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            if binary:
                await ws.send(chunk)
            else:
                await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": base64.b64encode(chunk).decode()}))
            while commits and commits[0] <= offset + len(chunk):
                commits.pop(0)
                result.commit_times.append(time.monotonic())
                await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        if commit_at_end:
            result.commit_times.append(time.monotonic())
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))

        deadline = time.monotonic() + settle_timeout
        while time.monotonic() < deadline and not receiver.done():
            await asyncio.sleep(0.05)
            pending = [t for t in result.turns.values()
                       if t.first("input_audio_buffer.committed") and not any(x in t.types for x in TERMINAL)]
            open_turns = [t for t in result.turns.values() if not t.first("input_audio_buffer.committed")]
            if not pending and not open_turns and (not commit_at_end or result.commit_times and any(
                    e["type"] in ("input_audio_buffer.committed", "error") for t, e in result.events
                    if t >= result.commit_times[-1])):
                break
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    return result
