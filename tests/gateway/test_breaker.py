"""The upstream as a server that can die: the gateway's circuit breaker, failover
of REST requests and live sessions to this server, and the documented `error` +
1013 when an upstream session dies mid-stream. Real gateways (the session's
loaded engines), the fault-injecting upstream behind a relay that can kill it,
real clients (httpx, the openai SDK, websockets)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import httpx
import pytest
from relay import Relay
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from voxhost.loadtest.realtime_client import load_pcm
from voxhost.stt.wer import wer
from voxhost_testing import free_port, metric_sum

pytestmark = pytest.mark.timeout(300)


async def _post(client: httpx.AsyncClient, clip, player: str) -> httpx.Response:
    return await client.post("/v1/audio/transcriptions", headers={"X-Player-Id": player},
                             files={"file": (clip.name, clip.read_bytes(), "audio/wav")},
                             data={"model": "whisper-1", "language": "en"})


def _relay_to(faulty) -> Relay:
    parts = urlsplit(faulty.base_url)
    return Relay((parts.hostname, parts.port))


def test_a_dead_upstreams_players_are_served_here_and_go_back_when_it_recovers(gateway, faulty, short_clip):
    faulty.mode = "ok"

    async def run():
        relay = await _relay_to(faulty).start()
        gw = await asyncio.to_thread(gateway, upstream_url=relay.url + "/v1", route_local_share=0.0,
                                     upstream_breaker_failures=2, upstream_breaker_cooldown_s=0.3,
                                     upstream_breaker_max_cooldown_s=1.0)
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=120) as client:
            before = await _post(client, short_clip, "player-7")
            relay.refusing = True  # the upstream process is gone: connections refused
            relay.cut()
            during = [await _post(client, short_clip, "player-7") for _ in range(4)]
            sent_upstream = len(faulty.received)
            state_open = metric_sum(gw.base_url, "voxhost_gateway_breaker_state")
            relay.refusing = False  # it is back
            for _ in range(200):
                if metric_sum(gw.base_url, "voxhost_gateway_breaker_state") == 0:
                    break
                await asyncio.sleep(0.05)
            after = await _post(client, short_clip, "player-7")
        await relay.close()
        return gw, before, during, sent_upstream, state_open, after

    gw, before, during, sent_upstream, state_open, after = asyncio.run(run())
    assert before.status_code == 200 and before.headers["x-voxhost-route"] == "upstream"
    # Not one 502: the two requests that met the dead upstream and the two after it opened were served here.
    assert [r.status_code for r in during] == [200] * 4, [r.text for r in during]
    assert {r.headers["x-voxhost-route"] for r in during} == {"failover"}
    assert all("comparatively modern" in r.json()["text"].lower() for r in during)
    assert state_open == 2
    fails = {reason: metric_sum(gw.base_url, "voxhost_gateway_failovers_total", reason=reason)
             for reason in ("upstream_failed", "breaker_open")}
    assert fails == {"upstream_failed": 2, "breaker_open": 2}
    assert metric_sum(gw.base_url, "voxhost_gateway_breaker_probes_total", outcome="answered") == 1
    # Sticky once it recovers: the same player is back upstream.
    assert after.status_code == 200 and after.headers["x-voxhost-route"] == "upstream"
    assert len(faulty.received) == sent_upstream + 1  # nothing went upstream while the breaker was open


def test_failures_that_are_the_upstream_answering_still_reach_the_player(gateway, faulty, short_clip):
    """A 429 is the upstream alive and rate limiting: passed on (the SDKs retry it), never counted."""
    faulty.mode = "429"
    gw = gateway(upstream_url=faulty.base_url, route_local_share=0.0, upstream_breaker_failures=1)
    try:
        with open(short_clip, "rb") as f:
            response = httpx.post(gw.base_url + "/v1/audio/transcriptions", headers={"X-Player-Id": "p"},
                                  files={"file": (short_clip.name, f, "audio/wav")}, data={"model": "whisper-1"},
                                  timeout=60)
    finally:
        faulty.mode = "ok"
    assert response.status_code == 429 and response.headers["x-voxhost-route"] == "upstream"
    assert metric_sum(gw.base_url, "voxhost_gateway_breaker_state") == 0


@pytest.fixture(scope="module")
def pcm(eval_audio) -> bytes:
    return load_pcm(eval_audio / "lj_LJ001-0002.wav", 24_000, lead_silence=0.2, tail_silence=0.3)


async def _transcribe(base_url: str, pcm: bytes, player: str):
    """One push-to-talk turn with the openai SDK: (X-Voxhost-Route of the handshake, completed event)."""
    import base64

    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url + "/v1", api_key="player-key", max_retries=0,
                         websocket_base_url=base_url.replace("http://", "ws://") + "/v1")
    async with client.realtime.connect(extra_query={"intent": "transcription"},
                                       extra_headers={"X-Player-Id": player}) as conn:
        route = conn._connection.response.headers.get("x-voxhost-route")
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None,
            "transcription": {"model": "whisper-1", "language": "en"}}}})
        assert (await conn.recv()).type == "session.updated"
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
        await conn.input_audio_buffer.commit()
        while True:
            event = await asyncio.wait_for(conn.recv(), 120)
            assert event.type != "error", event.error
            if event.type == "conversation.item.input_audio_transcription.completed":
                return route, event


def test_live_sessions_meant_for_a_dead_upstream_are_served_here_and_say_where(gateway, pcm):
    gw = gateway(upstream_url=f"http://127.0.0.1:{free_port()}/v1", route_local_shares={"realtime": 0.0},
                 upstream_connect_timeout_s=2.0)
    route, done = asyncio.run(_transcribe(gw.base_url, pcm, player="p1"))
    assert route == "failover"
    assert wer(["in being comparatively modern."], [done.transcript]) == 0.0, done.transcript
    assert metric_sum(gw.base_url, "voxhost_gateway_failovers_total", route="realtime") == 1
    # A session the shares keep here says so on its handshake too.
    local = gateway(upstream_url=f"http://127.0.0.1:{free_port()}/v1")
    route, _ = asyncio.run(_transcribe(local.base_url, pcm, player="p1"))
    assert route == "local"


def test_an_upstream_session_that_dies_mid_stream_ends_with_an_error_event_and_1013(gateway):
    port = free_port()

    async def dies(ws):
        await ws.recv()
        ws.transport.abort()  # the upstream's process or link is gone: no close frame

    async def run():
        async with serve(dies, "127.0.0.1", port):
            gw = await asyncio.to_thread(gateway, upstream_url=f"http://127.0.0.1:{port}/v1",
                                         route_local_share=0.0)
            async with connect(gw.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription") as ws:
                await ws.send('{"type": "input_audio_buffer.commit"}')
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 30)
                return gw, event, ws.close_code

    gw, event, code = asyncio.run(run())
    assert event["type"] == "error" and event["error"]["code"] == "upstream_lost", event
    assert code == 1013
    assert metric_sum(gw.base_url, "voxhost_gateway_upstream_errors_total", route="realtime", kind="cut") == 1
