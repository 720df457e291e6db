"""What the load balancer is told: the agent check's weight (full or leaving: 0%),
and the drain's grace, in which the balancer is told first and nobody is refused
(tests/fleet runs it behind a real HAProxy)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from voxhost_testing import free_port

pytestmark = pytest.mark.timeout(120)


def agent(port: int) -> str:
    """One agent check, as HAProxy does it: connect, read a line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return sock.makefile().readline()


def _with_drain_route(app):
    from voxhost.api.lifecycle import drain

    state = app.state.voxhost

    async def start_drain():
        asyncio.get_running_loop().create_task(drain(state, 30))
        return {}

    app.add_api_route("/test/drain", start_drain, methods=["POST"])


def test_the_agent_says_0_percent_while_full(sibling):
    port = free_port()
    live = sibling(lb_agent_port=port, max_live_sessions=1)
    url = live.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    assert agent(port) == "100%\n"

    async def hold_one():
        async with connect(url) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            return await asyncio.to_thread(agent, port)

    assert asyncio.run(hold_one()) == "0%\n"
    deadline = time.monotonic() + 10
    while agent(port) != "100%\n" and time.monotonic() < deadline:  # the slot is free again
        time.sleep(0.05)
    assert agent(port) == "100%\n"


def test_a_drain_grace_tells_the_balancer_first_and_refuses_nobody(sibling, short_clip):
    port = free_port()
    live = sibling(setup=_with_drain_route, lb_agent_port=port, drain_grace_s=3.0)
    url = live.base_url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    httpx.post(live.base_url + "/test/drain")
    deadline = time.monotonic() + 2
    while httpx.get(live.base_url + "/ready").status_code != 503 and time.monotonic() < deadline:
        time.sleep(0.02)
    # The balancer is told at once ...
    assert httpx.get(live.base_url + "/ready").json()["status"] == "draining"
    assert agent(port) == "0%\n"
    # ... while a request it had already routed here is still served,
    with open(short_clip, "rb") as f:
        served = httpx.post(live.base_url + "/v1/audio/transcriptions", timeout=60,
                            files={"file": (short_clip.name, f, "audio/wav")}, data={"model": "whisper-tiny.en"})
    assert served.status_code == 200, served.text
    # and a new live session is sent on (error + 1013: reconnect elsewhere).

    async def refused():
        async with connect(url) as ws:
            event = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return event, ws.close_code

    event, code = asyncio.run(refused())
    assert event["type"] == "error" and event["error"]["code"] == "not_ready" and code == 1013
    time.sleep(3.2)
    # After the grace, the drain proper: new work is refused with a retryable 503.
    with open(short_clip, "rb") as f:
        late = httpx.post(live.base_url + "/v1/audio/transcriptions", timeout=60,
                          files={"file": (short_clip.name, f, "audio/wav")}, data={"model": "whisper-tiny.en"})
    assert late.status_code == 503 and late.json()["error"]["code"] == "not_ready"
