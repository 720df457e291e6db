"""Realtime sessions proxied WebSocket to WebSocket: the official openai SDK
(GA and beta clients) streaming real speech through a gateway to a real
`voxhost serve` upstream that requires its own key; fallback when the local
server is at live-session capacity; the upstream key in no log or event."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging

import pytest
from faulty_upstream import UPSTREAM_KEY
from openai import AsyncOpenAI
from websockets.exceptions import ConnectionClosed

from voxhost.loadtest.realtime_client import load_pcm
from voxhost.stt.wer import wer
from voxhost_testing import metric_sum

pytestmark = pytest.mark.timeout(300)
DONE = "conversation.item.input_audio_transcription.completed"


def _client(base_url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=base_url + "/v1", api_key="player-key", max_retries=0,
                       websocket_base_url=base_url.replace("http://", "ws://") + "/v1")


async def _transcribe(base_url: str, pcm: bytes, *, beta: bool, player: str = "p1"):
    """One push-to-talk turn; (route header, event types, completed event)."""
    client = _client(base_url)
    headers = {"X-Player-Id": player}
    if beta:
        manager = client.beta.realtime.connect(model="whisper-1", extra_query={"intent": "transcription"},
                                               extra_headers=headers)
    else:
        manager = client.realtime.connect(extra_query={"intent": "transcription"}, extra_headers=headers)
    async with manager as conn:
        # The handshake response's headers (the SDK keeps its websockets connection here).
        route = conn._connection.response.headers.get("x-voxhost-route")
        created = await conn.recv()
        if beta:
            assert created.type == "transcription_session.created"
            await conn.transcription_session.update(session={
                "input_audio_format": "pcm16", "turn_detection": None,
                "input_audio_transcription": {"model": "whisper-1", "language": "en"}})
        else:
            assert created.type == "session.created"
            await conn.session.update(session={"type": "transcription", "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None,
                "transcription": {"model": "whisper-1", "language": "en"}}}})
        assert (await conn.recv()).type.endswith("session.updated")
        for offset in range(0, len(pcm), 48_000):  # 1 s appends
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[offset:offset + 48_000]).decode())
        await conn.input_audio_buffer.commit()
        seen = []
        while True:
            event = await asyncio.wait_for(conn.recv(), 120)
            seen.append(event.type)
            assert event.type != "error", event.error
            if event.type == DONE:
                return route, seen, event


def _served(base_url: str, served: str) -> float:
    """Realtime sessions the gateway served from `served` (upstream, local, fallback)."""
    return metric_sum(base_url, "voxhost_gateway_requests_total", route="realtime", served=served)


@pytest.fixture(scope="module")
def pcm(eval_audio) -> bytes:
    return load_pcm(eval_audio / "lj_LJ001-0002.wav", 24_000, lead_silence=0.2, tail_silence=0.3)


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_realtime_session_proxied_upstream(beta, gateway, upstream_process, pcm):
    gw = gateway(upstream_url=upstream_process, upstream_api_key=UPSTREAM_KEY, route_local_shares={"realtime": 0.0})
    route, seen, done = asyncio.run(_transcribe(gw.base_url, pcm, beta=beta))
    assert route == "upstream"
    assert "input_audio_buffer.committed" in seen
    assert wer(["in being comparatively modern."], [done.transcript]) == 0.0, done.transcript
    assert _served(gw.base_url, "upstream") == 1.0


def test_local_at_capacity_falls_back_upstream_and_the_key_stays_out_of_logs(gateway, upstream_process, pcm,
                                                                               caplog):
    caplog.set_level(logging.DEBUG)
    gw = gateway(upstream_url=upstream_process, upstream_api_key=UPSTREAM_KEY, max_live_sessions=1)

    async def run():
        # One player holds the only local slot while a second one connects.
        async with _client(gw.base_url).realtime.connect(extra_query={"intent": "transcription"}) as held:
            assert (await held.recv()).type == "session.created"
            return await _transcribe(gw.base_url, pcm, beta=False, player="p2")

    route, seen, done = asyncio.run(run())
    assert route == "fallback"
    assert wer(["in being comparatively modern."], [done.transcript]) == 0.0, done.transcript
    assert _served(gw.base_url, "fallback") == 1.0 and _served(gw.base_url, "local") == 1.0
    assert UPSTREAM_KEY not in caplog.text and UPSTREAM_KEY[:12] not in caplog.text


def test_upstream_refusal_reaches_the_player_without_the_key(gateway, upstream_process, caplog):
    """A wrong upstream key, breaker off (on, the session is served here: test_breaker.py): the
    player gets an error event and 1013, naming the setting, not the key."""
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrongwrongwrongwrong1234"
    gw = gateway(upstream_url=upstream_process, upstream_api_key=wrong, route_local_share=0.0,
                 upstream_breaker_failures=0)

    async def run():
        async with _client(gw.base_url).realtime.connect(extra_query={"intent": "transcription"}) as conn:
            event = await asyncio.wait_for(conn.recv(), 30)
            with pytest.raises(Exception):  # noqa: B017 - any close error; closed by the gateway, not left open
                await asyncio.wait_for(conn.recv(), 30)
            return event, conn._connection.close_code

    event, code = asyncio.run(run())
    assert event.type == "error" and "VOXHOST_UPSTREAM_API_KEY" in event.error.message
    assert code == 1013
    for text in (caplog.text, event.model_dump_json()):
        assert wrong not in text and wrong[:12] not in text


def test_a_draining_server_sends_new_sessions_upstream(gateway, upstream_process, pcm):
    """Drain refuses new local sessions; with fallback on they are proxied instead of closed with 1013."""
    gw = gateway(upstream_url=upstream_process, upstream_api_key=UPSTREAM_KEY,
                 setup=lambda app: app.state.voxhost.draining.set())
    route, _, done = asyncio.run(_transcribe(gw.base_url, pcm, beta=True))
    assert route == "fallback"
    assert wer(["in being comparatively modern."], [done.transcript]) == 0.0, done.transcript


def test_the_upstreams_error_event_and_close_code_reach_the_player(gateway, upstream_process):
    """The upstream refuses an intent it doesn't serve: its error event and 1008 pass through unchanged."""
    from websockets.asyncio.client import connect

    gw = gateway(upstream_url=upstream_process, upstream_api_key=UPSTREAM_KEY, route_local_share=0.0)

    async def run():
        async with connect(gw.base_url.replace("http://", "ws://") + "/v1/realtime?intent=conversation") as ws:
            event = json.loads(await asyncio.wait_for(ws.recv(), 30))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)
            return ws.response.headers["x-voxhost-route"], event, ws.close_code, ws.close_reason

    route, event, code, reason = asyncio.run(run())
    assert route == "upstream"
    assert event["type"] == "error" and event["error"]["param"] == "intent"
    assert code == 1008 and "intent" in reason


def test_binary_and_text_frames_pass_both_ways_and_the_players_close_code_reaches_the_upstream(gateway):
    """Frame types and the player's close code, against an echoing WebSocket upstream (in addition to the
    real upstream above: it shows what the upstream received)."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    from voxhost_testing import free_port

    port, got = free_port(), []

    async def echo(ws):
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                got.append(message)
                await ws.send(message)
        got.append((ws.close_code, ws.close_reason))

    async def run():
        async with serve(echo, "127.0.0.1", port):
            gw = await asyncio.to_thread(gateway, upstream_url=f"http://127.0.0.1:{port}/v1", route_local_share=0.0)
            async with connect(gw.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription") as ws:
                await ws.send(b"\x00\x01pcm")
                assert await ws.recv() == b"\x00\x01pcm"
                await ws.send('{"type": "input_audio_buffer.commit"}')
                assert await ws.recv() == '{"type": "input_audio_buffer.commit"}'
                await ws.close(4000, "player left")
            for _ in range(100):
                if len(got) == 3:
                    break
                await asyncio.sleep(0.05)

    asyncio.run(run())
    assert got == [b"\x00\x01pcm", '{"type": "input_audio_buffer.commit"}', (4000, "player left")]
