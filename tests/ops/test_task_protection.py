"""Task scale-in protection against a stand-in ECS agent endpoint (a real local HTTP server).

The stand-in answers PUT /task-protection/v1/state as the agent documents it
({"protection": {...}} or {"failure": ...}) and records each body, so the tests
read exactly what the server asked the agent for.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from voxhost.ops.task_protection import RETRY_S, TaskProtection, from_environment


class Agent:
    """The ECS agent's task-protection endpoint, on loopback."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.fail_next = 0  # answer this many PUTs with a failure
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/api/task-protection/v1/state":
                    self.send_response(404)
                    self.end_headers()
                    return
                if agent.fail_next:
                    agent.fail_next -= 1
                    answer, status = {"failure": {"Reason": "ThrottlingException"}}, 200
                else:
                    agent.bodies.append(body)
                    answer = {"protection": {"ProtectionEnabled": body["ProtectionEnabled"],
                                             "TaskArn": "arn:aws:ecs:us-east-1:123:task/c/abc"}}
                    status = 200
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def agent():
    a = Agent()
    yield a
    a.close()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_protects_while_sessions_live_refreshes_and_releases(agent):
    state = {"sessions": 0, "draining": False}
    clock = Clock()
    keeper = TaskProtection(agent.uri, expires_minutes=30, sessions=lambda: state["sessions"],
                            draining=lambda: state["draining"], clock=clock)

    async def scenario():
        async with httpx.AsyncClient() as client:
            assert await keeper.step(client) == keeper.refresh_s and agent.bodies == []  # idle: nothing asked
            state["sessions"] = 3
            assert await keeper.step(client) == pytest.approx(600.0)  # refresh at a third of 30 min
            assert await keeper.step(client) == pytest.approx(600.0)  # not due: no second call
            clock.now += 601
            await keeper.step(client)  # due: the expiry is pushed out again
            state["sessions"] = 0
            await keeper.step(client)
            await keeper.step(client)  # already off: nothing more

    asyncio.run(scenario())
    assert agent.bodies == [{"ProtectionEnabled": True, "ExpiresInMinutes": 30},
                            {"ProtectionEnabled": True, "ExpiresInMinutes": 30},
                            {"ProtectionEnabled": False}]
    assert keeper.protected is False


def test_drain_releases_protection_even_with_sessions_open(agent):
    state = {"sessions": 5, "draining": False}
    keeper = TaskProtection(agent.uri, expires_minutes=10, sessions=lambda: state["sessions"],
                            draining=lambda: state["draining"])

    async def scenario():
        async with httpx.AsyncClient() as client:
            await keeper.step(client)
            state["draining"] = True  # a spot notice or a deploy: the stop must not wait on us
            await keeper.step(client)

    asyncio.run(scenario())
    assert [b["ProtectionEnabled"] for b in agent.bodies] == [True, False]


def test_agent_failures_are_retried_soon_and_logged_once(agent, caplog):
    agent.fail_next = 2
    keeper = TaskProtection(agent.uri, expires_minutes=30, sessions=lambda: 1, draining=lambda: False)

    async def scenario():
        async with httpx.AsyncClient() as client:
            return [await keeper.step(client) for _ in range(3)]

    with caplog.at_level("WARNING", "voxhost.task_protection"):
        waits = asyncio.run(scenario())
    assert waits[:2] == [RETRY_S, RETRY_S] and keeper.protected
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    assert agent.bodies == [{"ProtectionEnabled": True, "ExpiresInMinutes": 30}]


def test_only_on_ecs_and_only_when_enabled():
    assert from_environment(30, lambda: 0, lambda: False, environ={}) is None
    assert from_environment(0, lambda: 0, lambda: False, environ={"ECS_AGENT_URI": "http://x"}) is None
    keeper = from_environment(30, lambda: 0, lambda: False, environ={"ECS_AGENT_URI": "http://169.254.170.2/api/t"})
    assert keeper.url == "http://169.254.170.2/api/t/task-protection/v1/state"
    with pytest.raises(ValueError):
        TaskProtection("http://x", expires_minutes=3000, sessions=lambda: 0, draining=lambda: False)
