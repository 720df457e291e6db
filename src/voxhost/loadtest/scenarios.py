"""What a game's players and NPCs send. Each scenario is one kind of traffic;
a scenario whose route the server lacks (404, refused handshake) switches
itself off and is reported as skipped, so the same load test runs on any
build of voxhost.

REST goes through the official `openai` SDK with its default retries, as a
game's would: a request counts as failed only if it failed after them. Live
sessions use the resumable reference client: a lost server costs a reconnect
and a replay, not a turn."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

import httpx
import httpx2  # the openai SDK's HTTP client (its dependency)

from voxhost.audio.decode import decode_audio
from voxhost.audio.pcm import WHISPER_RATE
from voxhost.errors import CloseCode
from voxhost.loadtest.realtime_client import pcm16, session_update, stream_resumable

log = logging.getLogger("voxhost.loadtest")


@dataclass
class Sample:
    route: str
    start: float  # time.monotonic()
    latency: float  # seconds
    status: int  # HTTP status, or 1000 ok / 1013 refused / 0 transport error for live turns
    retries: int = 0  # SDK retries (REST) or reconnects (live) it took


@dataclass
class Clip:
    name: str
    wav: bytes  # the file as recorded (16 kHz wav)
    pcm24k: bytes  # pcm16 mono 24 kHz: what OpenAI's realtime API takes
    seconds: float
    text: str = ""  # what is said (the eval set's reference)


def load_clips(utterances) -> list[Clip]:
    clips = []
    for u in utterances:
        data = u.audio.read_bytes()
        audio16 = decode_audio(data)
        clips.append(Clip(u.audio.name, data, pcm16(audio16, 24_000), len(audio16) / WHISPER_RATE,
                          getattr(u, "text", "")))
    return clips


@dataclass
class Scenario:
    name: str
    route: str
    enabled: bool = True
    skipped_reason: str | None = None

    def skip(self, reason: str) -> None:
        self.enabled = False
        self.skipped_reason = reason

    async def turn(self, client: httpx.AsyncClient, rng: random.Random) -> Sample | None:
        raise NotImplementedError


@dataclass
class SdkScenario(Scenario):
    """A REST scenario speaking through `openai.AsyncOpenAI` (made on first use, for
    the load test's server and key) with the SDK's own retry policy."""

    max_retries: int = 2  # the openai SDKs' default
    # Attempts that failed, (monotonic time, why): the status of an answered attempt that
    # was not a 2xx, or the transport error's name for one that got no answer.
    failed_attempts: list[tuple[float, str]] = field(default_factory=list)
    _sdk: object = field(default=None, repr=False)

    def sdk(self, client: httpx.AsyncClient):
        if self._sdk is None:
            from openai import AsyncOpenAI, DefaultAsyncHttpxClient

            failed = self.failed_attempts

            async def note_status(response) -> None:
                if response.status_code >= 300:
                    failed.append((time.monotonic(), str(response.status_code)))

            key = (client.headers.get("authorization") or "").removeprefix("Bearer ") or "unused"
            self._sdk = AsyncOpenAI(base_url=str(client.base_url).rstrip("/") + "/v1", api_key=key,
                                    max_retries=self.max_retries, timeout=300,
                                    http_client=DefaultAsyncHttpxClient(event_hooks={"response": [note_status]},
                                                                        transport=_NotingTransport(failed)))
        return self._sdk

    async def call(self, client: httpx.AsyncClient, request) -> tuple[int, int, str]:
        """(status, retries taken, error text) of `request(sdk)`: a with_raw_response call.
        0: no HTTP answer even after the retries (connection refused, reset, timed out)."""
        import openai

        try:
            raw = await request(self.sdk(client))  # not streamed: the SDK read the whole body, retries included
            return raw.http_response.status_code, raw.retries_taken, ""
        except openai.APIStatusError as exc:
            return exc.status_code, self.max_retries, exc.response.text
        except openai.APIConnectionError:
            return 0, self.max_retries, ""


class _NotingTransport(httpx2.AsyncBaseTransport):
    """The SDK's default transport, counting the transport errors its retries see."""

    def __init__(self, failed: list[tuple[float, str]]):
        self._inner = httpx2.AsyncHTTPTransport()
        self._failed = failed

    async def handle_async_request(self, request):
        try:
            return await self._inner.handle_async_request(request)
        except Exception as exc:
            self._failed.append((time.monotonic(), type(exc).__name__))
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class RestTranscription(SdkScenario):
    clips: list[Clip] = field(default_factory=list)
    model: str = "whisper-1"

    async def turn(self, client, rng, headers: dict | None = None):
        clip = rng.choice(self.clips)
        start = time.monotonic()
        status, retries, text = await self.call(client, lambda sdk: sdk.audio.transcriptions.with_raw_response.create(
            model=self.model, file=(clip.name, clip.wav, "audio/wav"), language="en", extra_headers=headers))
        if status == 404 and "model" not in text:
            self.skip("route absent (404)")
        return Sample(self.route, start, time.monotonic() - start, status, retries)


@dataclass
class NpcSpeech(SdkScenario):
    """NPC lines through TTS; `cache_hit_share` of them repeat a small set of
    stock lines (barks), which a TTS cache would serve."""

    lines: list[str] = field(default_factory=list)
    cache_hit_share: float = 0.5
    stock: int = 8
    voice: str = "alloy"

    async def turn(self, client, rng):
        if rng.random() < self.cache_hit_share:
            text = self.lines[rng.randrange(min(self.stock, len(self.lines)))]
        else:
            text = f"{rng.choice(self.lines)} ({rng.randrange(10**6)})"  # unique: a cache miss
        start = time.monotonic()
        status, retries, _ = await self.call(client, lambda sdk: sdk.audio.speech.with_raw_response.create(
            model="tts-1", voice=self.voice, input=text, response_format="wav"))
        if status in (404, 405):
            self.skip(f"route absent ({status})")
            return None
        return Sample(self.route, start, time.monotonic() - start, status, retries)


@dataclass
class LiveTranscription(Scenario):
    """Push-to-talk over OpenAI's realtime transcription protocol: one
    session per turn (update, append base64 pcm16 24 kHz, commit, wait for
    `conversation.item.input_audio_transcription.completed`). Latency is
    commit -> transcript, what the player feels."""

    clips: list[Clip] = field(default_factory=list)
    base_url: str = ""
    api_key: str | None = None
    chunk_ms: int = 100

    async def turn(self, client, rng):
        clip = rng.choice(self.clips)
        url = self.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        update = session_update(turn_detection=None, beta=True)
        start = time.monotonic()
        try:
            result = await stream_resumable(url, clip.pcm24k, update=update, headers=headers,
                                            chunk_ms=self.chunk_ms, realtime=False, commit_at_end=True,
                                            settle_timeout=120)
        except (TimeoutError, OSError):
            return Sample(self.route, start, time.monotonic() - start, 0)
        if result.close_code in (403, 404):
            self.skip(f"route absent ({result.close_code})")
            return None
        start = result.commit_times[-1] if result.commit_times else start
        retries = len(result.outages)
        for at, event in result.events:
            kind = event.get("type", "")
            if kind == "conversation.item.input_audio_transcription.completed":
                return Sample(self.route, start, at - start, CloseCode.NORMAL, retries)
            if kind == "conversation.item.input_audio_transcription.failed":
                # A turn the server shed because it was behind real time is a
                # rejection (like 429), anything else an error.
                overloaded = (event.get("error") or {}).get("code") == "server_overloaded"
                return Sample(self.route, start, at - start, CloseCode.TRY_AGAIN if overloaded else 4000, retries)
        errors = [e for e in result.errors if (e.get("error") or {}).get("code") != "not_ready"]
        if errors:  # a drain's not_ready came with a handoff; anything else is the turn's error
            log.warning("live turn error: %s", (errors[0].get("error") or {}).get("message"))
            return Sample(self.route, start, time.monotonic() - start, 4000, retries)
        code = result.close_code if result.close_code is not None else 0  # 0: no answer in time
        return Sample(self.route, start, time.monotonic() - start, code, retries)


@dataclass(frozen=True)
class LiveTurn:
    """One utterance of an open-mic session, and what became of it."""

    spoken_at: float  # monotonic time the utterance ended
    latency: float | None  # until its (last) final arrived; None if lost
    lost: bool
    duplicated: bool
    # Why a lost one was lost: "failed" (the server answered with a failed final, e.g. shed as
    # overloaded), "empty" (a final with no words), "gave up" (the session gave up), "unanswered".
    why: str = ""


@dataclass
class LiveConversation(Scenario):
    """A player on an open mic (server VAD), speaking `utterances` clips in real time
    with pauses, in one resumable session. Each utterance is accounted for: answered,
    lost (no final covers it) or heard twice (`turns`). A session's Sample is ok
    (1000) only if none was lost or doubled."""

    clips: list[Clip] = field(default_factory=list)
    base_url: str = ""
    api_key: str | None = None
    utterances: int = 5
    gap_s: float = 1.4
    stop: asyncio.Event | None = None  # set: players end their sessions at once (what was said counts)
    turns: list[LiveTurn] = field(default_factory=list)
    outages: list = field(default_factory=list)

    async def turn(self, client, rng, headers: dict | None = None, utterances: int | None = None):
        from voxhost.loadtest.conversation import account, build_script

        picked = [rng.choice(self.clips) for _ in range(utterances or self.utterances)]
        script = build_script([(c.pcm24k, c.text) for c in picked], gap_s=self.gap_s)
        url = self.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
        headers = {**({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}), **(headers or {})}
        start = time.monotonic()
        result = await stream_resumable(url, script.pcm, update=session_update(), headers=headers,
                                        settle_timeout=120, stop=self.stop)
        self.outages.extend(result.outages)
        if result.spoken_ms is not None:  # left early: only what was said counts
            script.utterances = [u for u in script.utterances if u.end_ms <= result.spoken_ms]
        tally = account(script, result.finals)
        arrivals = {item: turn.first("conversation.item.input_audio_transcription.completed")
                    for item, turn in result.turns.items()}
        for outcome in tally.outcomes:
            spoken_at = result.t0 + outcome.utterance.end_ms / 1000
            times = [arrived[0] for arrived in (arrivals.get(i) for i in outcome.items) if arrived]
            why = _why_lost(outcome.utterance, result) if outcome.lost else ""
            self.turns.append(LiveTurn(spoken_at, max(times) - spoken_at if times and not outcome.lost else None,
                                       outcome.lost, outcome.duplicated, why))
        ok = tally.lost == 0 and tally.duplicated == 0 and not result.gave_up
        return Sample(self.route, start, time.monotonic() - start, CloseCode.NORMAL if ok else 4000,
                      len(result.outages))



def _why_lost(utterance, result) -> str:
    over = [f for f in result.finals if f.start_ms is not None and f.end_ms is not None
            and min(utterance.end_ms, f.end_ms) > max(utterance.start_ms, f.start_ms)]
    if any(f.transcript is None for f in over):
        return "failed"
    if over:
        return "empty"
    return "gave up" if result.gave_up else "unanswered"
