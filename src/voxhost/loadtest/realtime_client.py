"""A reference client: stream audio into /v1/realtime paced like a live microphone.

Used by the tests, `voxhost loadtest` and bench/realtime_latency.py, and a
readable example of the protocol for game-engine integrators. Audio chunk
[a, a+chunk) is sent at t0 + a + chunk, as a microphone would deliver it.

`stream` is one connection. `stream_resumable` survives its server: on a close
that says the server went (1013 try again, 1006 gone, 1011 dead link or
internal error, 1001/1012 going away) it reconnects with jittered, capped
backoff and replays what no final answered (loadtest/resume.py holds the
bookkeeping), so no spoken turn is lost and none is transcribed twice.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import websockets

from voxhost.audio.decode import decode_audio
from voxhost.audio.pcm import WHISPER_RATE, resample_pcm16, to_pcm16
from voxhost.loadtest.resume import Final, ResumeLedger

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
    # stream_resumable only: every final delivered, with the span of audio it answers
    finals: list[Final] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    replayed_ms: float = 0.0
    duplicates_dropped: int = 0
    stale_dropped: int = 0
    dropped_ms: float = 0.0  # audio the replay buffer's cap let go (a possible loss)
    gave_up: bool = False
    spoken_ms: float | None = None  # where the microphone stopped early (stream_resumable's `stop`)

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
    audio = decode_audio(Path(path).read_bytes())
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


# Close codes that mean "this server went, another may serve you": 1013 try again
# later (full, draining, an upstream lost), 1006 no close frame (killed, reset),
# 1011 internal error or a dead link (websockets' keepalive timeout), 1001 and
# 1012 going away / restarting.
RECONNECT_CODES = frozenset({1001, 1006, 1011, 1012, 1013})


@dataclass
class ReconnectPolicy:
    base_s: float = 0.2  # first retry within this (full jitter), doubling per failed try
    cap_s: float = 4.0
    give_up_s: float = 60.0  # an outage longer than this ends the session
    ping_interval_s: float = 1.0  # pongs say how far the server has read (when a session is done)
    ping_timeout_s: float = 5.0  # no pong for this long: the link is dead (1011), reconnect
    max_buffer_ms: int = 60_000  # replay buffer cap: an idle open mic keeps this much

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: players cut off together do not come back together."""
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** attempt))


@dataclass
class Outage:
    at: float  # monotonic time the connection was lost
    code: int | None  # the close code received (None: none, the connection just died)
    resumed: float | None = None  # monotonic time a new connection was configured
    attempts: int = 0


class _Fatal(Exception):
    """The server rejected the session's configuration: reconnecting cannot help."""


class _Closed(Exception):
    def __init__(self, code: int):
        self.code = code


async def stream_resumable(url: str, pcm: bytes, *, rate: int = 24_000, update: dict | None = None,
                           chunk_ms: int = 100, realtime: bool = True, commit_every: list[int] | None = None,
                           commit_at_end: bool = False, binary: bool = False, headers: dict | None = None,
                           settle_timeout: float = 120.0, policy: ReconnectPolicy | None = None,
                           rng: random.Random | None = None, stop: asyncio.Event | None = None) -> StreamResult:
    """`stream`, surviving the loss of its server (see the module docstring). `stop`: the
    player leaves early: the microphone ends with a second and a half of silence (so a
    sentence under way ends as a turn) and `result.spoken_ms` says how far it got."""
    policy = policy or ReconnectPolicy()
    rng = rng or random.Random()
    update = update or session_update(rate=rate)
    beta = update.get("type", "").startswith("transcription_session")
    headers = {**({"OpenAI-Beta": "realtime=v1"} if beta else {}), **(headers or {})}
    manual = _turn_detection(update) is None
    ledger = ResumeLedger(rate, manual=manual, max_buffer_ms=policy.max_buffer_ms)
    result = StreamResult()
    samples_per_chunk = rate * chunk_ms // 1000
    bytes_per_chunk = samples_per_chunk * 2
    commits = sorted(commit_every or [])
    audio = asyncio.Event()  # new audio or a commit for the sender
    mic_done = asyncio.Event()
    settled = asyncio.Event()

    def record(event: dict) -> None:
        now = time.monotonic()
        result.events.append((now, event))
        if item := event.get("item_id"):
            result.turns.setdefault(item, Turn(item)).events.append((now, event))

    async def microphone() -> None:
        result.t0 = time.monotonic()
        source = pcm
        offset = 0
        while offset < len(source):
            if stop is not None and stop.is_set() and source is pcm:
                result.spoken_ms = offset / 2 / rate * 1000
                source = pcm[:offset] + bytes(int(1.6 * rate) * 2)  # then silence, and the end
            chunk = source[offset: offset + bytes_per_chunk]
            if realtime:
                due = result.t0 + (offset + len(chunk)) / (rate * 2)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            ledger.append(chunk)
            while commits and commits[0] <= offset + len(chunk):
                commits.pop(0)
                result.commit_times.append(time.monotonic())
                ledger.commit()
            audio.set()
            offset += len(chunk)
        if commit_at_end:
            result.commit_times.append(time.monotonic())
            ledger.commit()
        mic_done.set()
        audio.set()

    def finished() -> bool:
        """Everything sent and answered. With server VAD also read by the server (a pong
        after the last audio) with no turn open: its trailing silence ended every turn."""
        if not (mic_done.is_set() and ledger.caught_up and ledger.open_turns == 0):
            return False
        return manual or ledger.acked >= ledger.end

    async def session(ws) -> None:
        """One connection: configure, replay, then live audio, until it closes or all is answered."""

        async def expect(kind: str) -> None:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                record(event)
                if event["type"] == kind:
                    return
                if event["type"] == "error":
                    # Refused (full, draining: a close follows at once) or a bad update (no close: fatal).
                    with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                        await asyncio.wait_for(ws.wait_closed(), 2)
                    if ws.close_code is None:
                        raise _Fatal()
                    raise _Closed(ws.close_code)

        await expect("transcription_session.created" if beta else "session.created")
        await ws.send(json.dumps(update))
        await expect(update["type"].replace(".update", ".updated"))
        ledger.start_connection()
        if result.outages and result.outages[-1].resumed is None:
            result.outages[-1].resumed = time.monotonic()

        async def sender() -> None:
            while True:
                data, commit = ledger.next_chunk(samples_per_chunk)
                if data:
                    if binary:
                        await ws.send(data)
                    else:
                        await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                                  "audio": base64.b64encode(data).decode()}))
                if commit:
                    await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                if not data and not commit:
                    audio.clear()
                    if ledger.caught_up:
                        await audio.wait()

        async def pinger() -> None:
            quiet = 0  # pongs in a row with everything answered (server VAD settles on two)
            while True:
                position = ledger.sent
                pong = await ws.ping()
                await asyncio.wait_for(pong, policy.ping_timeout_s)  # times out: a dead link
                ledger.on_pong(position)
                quiet = quiet + 1 if finished() else 0
                if quiet >= 2:
                    settled.set()
                await asyncio.sleep(policy.ping_interval_s)

        async def receiver() -> None:
            async for message in ws:
                event = ledger.on_event(json.loads(message))
                if event is not None:
                    record(event)
                if manual and finished():
                    settled.set()

        tasks = [asyncio.create_task(t()) for t in (sender, pinger, receiver)]
        waiter = asyncio.create_task(settled.wait())
        try:
            done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                failure = task.exception() if task is not waiter else None
                if failure is not None:
                    raise failure
        finally:
            for task in [*tasks, waiter]:
                task.cancel()
            await asyncio.gather(*tasks, waiter, return_exceptions=True)

    async def give_up_after_settle_timeout() -> None:
        await mic_done.wait()
        await asyncio.sleep(settle_timeout)
        result.gave_up = True
        settled.set()

    mic = asyncio.create_task(microphone())
    deadline = asyncio.create_task(give_up_after_settle_timeout())
    try:
        while not settled.is_set():
            try:
                async with websockets.connect(url, additional_headers=headers, max_size=None, open_timeout=10,
                                              ping_interval=None, close_timeout=1) as ws:
                    try:
                        await session(ws)
                    except TimeoutError:
                        code: int | None = 1011  # a pong or the session's first events never came: dead link
                    else:
                        code = None if settled.is_set() else (ws.close_code or 1006)
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
            except _Closed as closed:
                code = closed.code
            except _Fatal:
                break
            except websockets.InvalidStatus as exc:
                status = exc.response.status_code
                if status < 500 and status not in (408, 429):
                    result.close_code = status  # refused for the client's own reasons, not a lost server
                    break
                code = 1013  # the balancer has no server for us right now (502, 503, 504)
            except (OSError, TimeoutError, websockets.InvalidHandshake):
                code = 1006  # nothing answered: the balancer or the server is not there
            ledger.lost()
            if settled.is_set():
                break
            result.close_code = code
            if code not in RECONNECT_CODES:
                break
            now = time.monotonic()
            if not result.outages or result.outages[-1].resumed is not None:
                result.outages.append(Outage(now, code))
            outage = result.outages[-1]
            outage.attempts += 1
            if now - outage.at > policy.give_up_s:
                result.gave_up = True
                break
            await asyncio.sleep(policy.delay(outage.attempts - 1, rng))
    finally:
        for task in (mic, deadline):
            task.cancel()
        await asyncio.gather(mic, deadline, return_exceptions=True)
    result.finals = list(ledger.finals)
    result.replayed_ms = ledger.replayed * 1000 / rate
    result.duplicates_dropped = ledger.duplicates_dropped
    result.stale_dropped = ledger.stale_dropped
    result.dropped_ms = ledger.dropped * 1000 / rate
    return result


def _turn_detection(update: dict):
    session = update.get("session") or {}
    if update.get("type", "").startswith("transcription_session"):
        return session.get("turn_detection", "server_vad")
    return ((session.get("audio") or {}).get("input") or {}).get("turn_detection", "server_vad")
