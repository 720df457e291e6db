"""What a game's players and NPCs send. Each scenario is one kind of traffic;
a scenario whose route the server lacks (404, refused handshake) switches
itself off and is reported as skipped, so the same load test runs on any
build of voxhost."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

import httpx

from voxhost.audio.decode import decode_audio
from voxhost.audio.pcm import WHISPER_RATE
from voxhost.errors import CloseCode
from voxhost.loadtest.realtime_client import pcm16, session_update, stream

log = logging.getLogger("voxhost.loadtest")


@dataclass
class Sample:
    route: str
    start: float  # time.monotonic()
    latency: float  # seconds
    status: int  # HTTP status, or 1000 ok / 1013 refused / 0 transport error for live turns


@dataclass
class Clip:
    name: str
    wav: bytes  # the file as recorded (16 kHz wav)
    pcm24k: bytes  # pcm16 mono 24 kHz: what OpenAI's realtime API takes
    seconds: float


def load_clips(utterances) -> list[Clip]:
    clips = []
    for u in utterances:
        data = u.audio.read_bytes()
        audio16 = decode_audio(data)
        clips.append(Clip(u.audio.name, data, pcm16(audio16, 24_000), len(audio16) / WHISPER_RATE))
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
class RestTranscription(Scenario):
    clips: list[Clip] = field(default_factory=list)
    model: str = "whisper-1"

    async def turn(self, client, rng):
        clip = rng.choice(self.clips)
        start = time.monotonic()
        r = await client.post("/v1/audio/transcriptions", files={"file": (clip.name, clip.wav, "audio/wav")},
                              data={"model": self.model, "language": "en"})
        if r.status_code == 404 and "model" not in r.text:
            self.skip("route absent (404)")
        return Sample(self.route, start, time.monotonic() - start, r.status_code)


@dataclass
class NpcSpeech(Scenario):
    """NPC lines through TTS; `cache_hit_share` of them repeat a small set of
    stock lines (barks), which a TTS cache would serve."""

    lines: list[str] = field(default_factory=list)
    cache_hit_share: float = 0.5
    stock: int = 8

    async def turn(self, client, rng):
        if rng.random() < self.cache_hit_share:
            text = self.lines[rng.randrange(min(self.stock, len(self.lines)))]
        else:
            text = f"{rng.choice(self.lines)} ({rng.randrange(10**6)})"  # unique: a cache miss
        start = time.monotonic()
        r = await client.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": text,
                                                       "response_format": "wav"})
        if r.status_code in (404, 405):
            self.skip(f"route absent ({r.status_code})")
            return None
        return Sample(self.route, start, time.monotonic() - start, r.status_code)


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
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        clip = rng.choice(self.clips)
        url = self.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        update = session_update(turn_detection=None, beta=True)
        start = time.monotonic()
        try:
            result = await stream(url, clip.pcm24k, update=update, headers=headers, chunk_ms=self.chunk_ms,
                                  realtime=False, commit_at_end=True, settle_timeout=120)
            start = result.commit_times[-1] if result.commit_times else start
            for at, event in result.events:
                kind = event.get("type", "")
                if kind == "conversation.item.input_audio_transcription.completed":
                    return Sample(self.route, start, at - start, CloseCode.NORMAL)
                if kind == "conversation.item.input_audio_transcription.failed":
                    # A turn the server shed because it was behind real time is a
                    # rejection (like 429), anything else an error.
                    overloaded = (event.get("error") or {}).get("code") == "server_overloaded"
                    return Sample(self.route, start, at - start, CloseCode.TRY_AGAIN if overloaded else 4000)
                if kind == "error":
                    log.warning("live turn error: %s", (event.get("error") or {}).get("message"))
                    return Sample(self.route, start, at - start, 4000)
            if result.close_code is not None:
                return Sample(self.route, start, time.monotonic() - start, result.close_code)
            return Sample(self.route, start, time.monotonic() - start, 0)  # no answer in time
        except InvalidStatus as exc:
            if exc.response.status_code in (403, 404):
                self.skip(f"route absent ({exc.response.status_code})")
                return None
            return Sample(self.route, start, time.monotonic() - start, exc.response.status_code)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            return Sample(self.route, start, time.monotonic() - start, code)
        except (OSError, asyncio.TimeoutError):
            return Sample(self.route, start, time.monotonic() - start, 0)

