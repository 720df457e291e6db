"""Bad input, limits and departures on WS /v1/realtime: an `error` event and
the session goes on, or a clean close with a meaningful code, never a hang."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from contextlib import ExitStack

import pytest
import websockets

from voxhost.loadtest.realtime_client import load_pcm, session_update
from voxhost.ops.auth import hash_key
from voxhost_testing import LiveServer


def ws_url(base_url: str, query: str = "intent=transcription") -> str:
    return base_url.replace("http://", "ws://") + "/v1/realtime?" + query


@pytest.fixture(scope="module")
def make_server(server, settings):
    """More servers sharing the loaded models, with small limits (no model reload)."""
    from voxhost.api.app import create_app

    with ExitStack() as stack:
        def make(**overrides) -> LiveServer:
            app = create_app(settings.model_copy(update=overrides), load_models=False)
            state = app.state.voxhost
            state.services.stt_engines.engines = server.app.state.voxhost.services.stt_engines.engines
            state.ready.set()
            return stack.enter_context(LiveServer(app))

        yield make


async def _recv(ws, timeout: float = 60.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _until(ws, kind: str, timeout: float = 60.0) -> list[dict]:
    seen = []
    while True:
        event = await _recv(ws, timeout)
        seen.append(event)
        if event["type"] == kind:
            return seen


def _append(pcm: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


@pytest.fixture(scope="module")
def speech_pcm(eval_audio) -> bytes:
    return load_pcm(eval_audio / "lj_LJ001-0002.wav", 24_000, lead_silence=0.2, tail_silence=0.2)


def test_bad_events_get_errors_and_the_session_goes_on(base_url, speech_pcm):
    async def run():
        async with websockets.connect(ws_url(base_url), max_size=None) as ws:
            assert (await _recv(ws))["type"] == "session.created"
            cases = [
                ("{not json", "invalid_json", None),
                ("[1, 2]", "invalid_json", None),
                (json.dumps({"type": "response.create", "event_id": "evt_1"}), "invalid_value", "type"),
                (json.dumps({"type": "input_audio_buffer.append", "audio": "%%%not base64"}), "invalid_value", "audio"),
                (json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()}),
                 "invalid_audio", "audio"),
                (json.dumps({"type": "input_audio_buffer.commit"}), "input_audio_buffer_commit_empty", None),
                (json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
                    "format": {"type": "audio/pcmu"}}}}}), "invalid_value", "session.audio.input.format.type"),
                (json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
                    "format": {"type": "audio/pcm", "rate": 44100}}}}}), "invalid_value", "session.audio.input.format.rate"),
                (json.dumps({"type": "transcription_session.update", "session": {"input_audio_format": "g711_ulaw"}}),
                 "invalid_value", "session.input_audio_format"),
                (json.dumps({"type": "session.update", "session": {"type": "realtime"}}), "invalid_value", "session.type"),
                (json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
                    "transcription": {"model": "no-such-model"}}}}}), "model_not_found",
                 "session.audio.input.transcription.model"),
                (json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
                    "transcription": {"model": "whisper-tiny.en", "language": "de"}}}}}), "invalid_request_error", None),
                (json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
                    "turn_detection": {"type": "server_vad", "threshold": 7}}}}}), "invalid_value",
                 "session.audio.input.turn_detection.threshold"),
                ("x" * (4 * 1024 * 1024 + 1), "message_too_large", None),
            ]
            for message, code, param in cases:
                await ws.send(message)
                event = await _recv(ws)
                assert event["type"] == "error", (message[:80], event)
                error = event["error"]
                assert code in (error["code"], error["type"]), (message[:80], error)
                if param:
                    assert error["param"] == param, (message[:80], error)
            # The client's event_id comes back with its error.
            await ws.send(json.dumps({"type": "nope", "event_id": "evt_42"}))
            assert (await _recv(ws))["error"]["event_id"] == "evt_42"
            # A binary frame of odd length is not PCM16 either.
            await ws.send(b"\x00\x01\x02")
            assert (await _recv(ws))["error"]["code"] == "invalid_audio"

            # After all that the session still works, with its configuration unchanged.
            await ws.send(json.dumps(session_update(turn_detection=None)))
            updated = await _recv(ws)
            assert updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
            assert updated["session"]["audio"]["input"]["transcription"]["model"] == "whisper-1"
            await ws.send(_append(speech_pcm))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await _until(ws, "conversation.item.input_audio_transcription.completed")
            assert "modern" in events[-1]["transcript"].lower()
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            assert (await _recv(ws))["type"] == "input_audio_buffer.cleared"

    asyncio.run(run())


def test_long_turns_are_force_committed(make_server, eval_audio):
    """Bounded memory: an open-mic turn longer than the limit is cut and carried on."""
    live = make_server(realtime_max_turn_seconds=3.0, realtime_partial_interval_ms=0)
    pcm = load_pcm(eval_audio / "lj_LJ001-0001.wav", 24_000, lead_silence=0.3, tail_silence=1.0)  # 9.7 s

    async def run():
        async with websockets.connect(ws_url(live.base_url), max_size=None) as ws:
            await _recv(ws)
            await ws.send(json.dumps(session_update()))
            await _recv(ws)
            for offset in range(0, len(pcm), 48_000):  # 1 s appends, as fast as possible
                await ws.send(pcm[offset: offset + 48_000])
            events = []
            while sum(e["type"].endswith("completed") for e in events) < 3 or any(
                    e["type"] == "input_audio_buffer.speech_started" and not any(
                        x["type"].endswith("completed") and x["item_id"] == e["item_id"] for x in events)
                    for e in events):
                events.append(await _recv(ws))
            return events

    events = asyncio.run(run())
    committed = [e for e in events if e["type"] == "input_audio_buffer.committed"]
    assert len(committed) >= 3
    started = [e["audio_start_ms"] for e in events if e["type"] == "input_audio_buffer.speech_started"]
    stopped = [e["audio_end_ms"] for e in events if e["type"] == "input_audio_buffer.speech_stopped"]
    assert all(b - a <= 3_300 for a, b in zip(started, stopped))  # limit + one ingest slice
    text = " ".join(e["transcript"] for e in events if e["type"].endswith("completed")).lower()
    assert "printing" in text and "exhibition" in text


def test_capacity_idle_and_session_limits(make_server):
    live = make_server(max_live_sessions=1, realtime_idle_timeout_seconds=1.5,
                       max_session_seconds=4.0)

    async def run():
        async with websockets.connect(ws_url(live.base_url)) as first:
            assert (await _recv(first))["type"] == "session.created"
            # At capacity: the next session is told why and closed with 1013 (try again later).
            async with websockets.connect(ws_url(live.base_url)) as second:
                refusal = await _recv(second)
                assert refusal["error"]["code"] == "server_overloaded"
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await _recv(second)
                assert closed.value.rcvd.code == 1013
            # Idle for longer than the idle timeout: a clean close, reason first.
            started = time.monotonic()
            event = await _recv(first, timeout=10)
            assert event["error"]["code"] == "idle_timeout"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await _recv(first)
            assert closed.value.rcvd.code == 1000
            assert time.monotonic() - started < 5

        # The slot was freed; a busy session still ends at the maximum length.
        async with websockets.connect(ws_url(live.base_url)) as third:
            await _recv(third)
            events = []
            try:
                for _ in range(100):
                    await third.send(json.dumps({"type": "input_audio_buffer.clear"}))  # keeps it active
                    await asyncio.sleep(0.1)
            except websockets.ConnectionClosed:
                pass
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    events.append(await _recv(third, timeout=10))
            assert {e["type"] for e in events[:-1]} == {"input_audio_buffer.cleared"}
            assert events[-1]["error"]["code"] == "session_expired"
            assert closed.value.rcvd.code == 1000

    asyncio.run(run())


def test_api_keys(make_server):
    live = make_server(api_keys=[f"test:{hash_key('vx-secret')}"])

    async def first_event(query="intent=transcription", **kw) -> tuple[dict, int | None]:
        async with websockets.connect(ws_url(live.base_url, query), **kw) as ws:
            event = await _recv(ws)
            if event["type"] != "error":
                return event, None
            try:
                await _recv(ws)
            except websockets.ConnectionClosed as closed:
                return event, closed.rcvd.code
            raise AssertionError("not closed")

    async def run():
        # A missing or wrong key is refused at the handshake (401, OpenAI's
        # error JSON), like every HTTP route: the Gatekeeper middleware.
        for kw in ({}, {"additional_headers": {"Authorization": "Bearer wrong"}}):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await first_event(**kw)
            assert refused.value.response.status_code == 401
            assert json.loads(refused.value.response.body)["error"]["code"] == "invalid_api_key"
        for kw in ({"additional_headers": {"Authorization": "Bearer vx-secret"}},
                   {"additional_headers": {"X-API-Key": "vx-secret"}},
                   {"subprotocols": ["realtime", "openai-insecure-api-key.vx-secret"]}):
            assert (await first_event(**kw))[0]["type"] == "session.created", kw
        assert (await first_event("intent=transcription&api_key=vx-secret"))[0]["type"] == "session.created"

    asyncio.run(run())


def test_disconnect_mid_turn_frees_everything(make_server, eval_audio, openai_client):
    live = make_server()
    state = live.app.state.voxhost
    pcm = load_pcm(eval_audio / "lj_LJ001-0001.wav", 24_000)

    async def run():
        for _ in range(3):
            ws = await websockets.connect(ws_url(live.base_url), max_size=None)
            await _recv(ws)
            await ws.send(json.dumps(session_update(turn_detection=None)))
            await _recv(ws)
            for offset in range(0, len(pcm), 96_000):
                await ws.send(pcm[offset: offset + 96_000])
                await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))  # finals queue up
            await ws.close()  # gone mid-turn, with decodes pending
        deadline = time.monotonic() + 60
        while (state.sessions.active or state.services.stt_scheduler.pending) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    asyncio.run(run())
    assert state.sessions.active == 0
    assert state.services.stt_scheduler.pending == 0
    # And the server goes on serving.
    with open(eval_audio / "lj_LJ001-0002.wav", "rb") as f:
        assert "modern" in openai_client.audio.transcriptions.create(model="whisper-1", file=f).text.lower()


def test_a_server_behind_real_time_says_so(make_server, speech_pcm):
    """A final that cannot start in time fails with server_overloaded (here: no wait allowed at all)."""
    live = make_server(realtime_max_final_wait_seconds=0.0)

    async def run():
        async with websockets.connect(ws_url(live.base_url), max_size=None) as ws:
            await _recv(ws)
            await ws.send(json.dumps(session_update(turn_detection=None)))
            await _recv(ws)
            await ws.send(speech_pcm)
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            return await _until(ws, "conversation.item.input_audio_transcription.failed")

    events = asyncio.run(run())
    assert events[-1]["error"]["code"] == "server_overloaded"
    assert events[-1]["item_id"] == next(e["item_id"] for e in events if e["type"] == "input_audio_buffer.committed")
