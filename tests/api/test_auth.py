"""API keys on every route (HTTP and WebSocket), rate limits, /metrics key."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import pytest
import websockets.sync.client as ws_client
import yaml
from fastapi import WebSocket

from voxhost.api.middleware import is_console_asset
from voxhost.ops.auth import hash_key, new_entry

OPEN_PATHS = {"/health", "/ready"}


@dataclass
class RouteInfo:
    path: str
    methods: set[str] | None  # None: a WebSocket route


def all_routes(app) -> list[RouteInfo]:
    """Every route the app serves, including those of included routers
    (newer FastAPI keeps included routers as lazy entries in app.routes)."""
    out = []

    def walk(routes, prefix=""):
        for route in routes:
            ctx = getattr(route, "include_context", None)
            if ctx is not None:
                walk(ctx.included_router.routes, prefix + ctx.prefix)
            elif hasattr(route, "path"):
                methods = getattr(route, "methods", None)
                is_ws = methods is None and "websocket" in type(route).__name__.lower()
                if methods is not None or is_ws:
                    out.append(RouteInfo(prefix + route.path, set(methods) if methods else None))

    walk(app.routes)
    return out


def probe(base_url: str, route: RouteInfo, headers: dict | None = None, query: str = "") -> int:
    """Status a client gets from `route` (HTTP route or WebSocket handshake)."""
    path = route.path.replace("{model_id:path}", "whisper-1")
    if route.methods is None:
        url = base_url.replace("http://", "ws://") + path + query
        try:
            with ws_client.connect(url, additional_headers=headers or {}, open_timeout=10):
                return 101
        except websockets_status_error() as exc:
            return exc.response.status_code
    method = sorted(route.methods - {"HEAD"})[0]
    return httpx.request(method, base_url + path + query, headers=headers, timeout=30).status_code


def websockets_status_error():
    from websockets.exceptions import InvalidStatus

    return InvalidStatus


def routes_needing_keys(app) -> list[RouteInfo]:
    """Every route but the probes, the API docs and the console's own page and files (public, so
    that its key box can be reached: tests/web/test_console.py checks what they hold)."""
    return [r for r in all_routes(app)
            if r.path not in OPEN_PATHS and not r.path.startswith(("/docs", "/redoc", "/openapi"))
            and not is_console_asset({"type": "http", "method": "GET", "path": r.path})]


@pytest.fixture
def keyed(sibling, tmp_path):
    key, entry = new_entry("studio")
    limited_key, limited = new_entry("limited", rpm=2)
    metrics_key = "metrics-secret"

    def add_echo(app):  # a WebSocket route, so the handshake path is exercised on every branch
        @app.websocket("/test/echo")
        async def echo(websocket: WebSocket):
            await websocket.accept()
            await websocket.send_text(await websocket.receive_text())
            await websocket.close()

    keys_file = tmp_path / "keys.yaml"  # the rate-limited key comes from a keys file
    keys_file.write_text(yaml.safe_dump([limited]))
    live = sibling(api_keys=[f"{entry['name']}:{entry['sha256']}"], api_keys_file=keys_file,
                   metrics_api_key_sha256=hash_key(metrics_key), setup=add_echo)
    return live, key, limited_key, metrics_key


def test_every_route_but_the_probes_needs_a_key(keyed):
    live, key, _, metrics_key = keyed
    routes = routes_needing_keys(live.app)
    assert {"/v1/models", "/v1/audio/transcriptions", "/metrics", "/test/echo"} <= {r.path for r in routes}
    for route in routes:
        assert probe(live.base_url, route) == 401, route.path
        assert probe(live.base_url, route, {"Authorization": "Bearer wrong"}) == 401, route.path
        good = {"Authorization": f"Bearer {metrics_key if route.path == '/metrics' else key}"}
        assert probe(live.base_url, route, good) != 401, route.path
    for path in OPEN_PATHS:
        assert httpx.get(live.base_url + path).status_code == 200


def test_401_is_openai_shaped_and_keys_work_in_every_place(keyed, short_clip):
    live, key, _, _ = keyed
    r = httpx.get(live.base_url + "/v1/models")
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(live.base_url + "/v1/models", headers={"X-API-Key": key}).status_code == 200
    # WebSockets: ?api_key= and OpenAI's subprotocol form.
    echo = live.base_url.replace("http://", "ws://") + "/test/echo"
    with ws_client.connect(echo + f"?api_key={key}") as ws:
        ws.send("hi")
        assert ws.recv() == "hi"
    with ws_client.connect(echo, subprotocols=[f"openai-insecure-api-key.{key}"]) as ws:
        ws.send("yo")
        assert ws.recv() == "yo"
    # The official SDK, as a studio's backend would call it.
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=live.base_url + "/v1", api_key=key, max_retries=0)
    with short_clip.open("rb") as f:
        text = client.audio.transcriptions.create(model="whisper-tiny.en", file=f).text
    assert "modern" in text.lower()
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=live.base_url + "/v1", api_key="nope", max_retries=0).models.list()


def test_metrics_has_its_own_key(keyed):
    live, key, _, metrics_key = keyed
    assert httpx.get(live.base_url + "/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    r = httpx.get(live.base_url + "/metrics", headers={"Authorization": f"Bearer {metrics_key}"})
    assert r.status_code == 200 and "voxhost_requests_total" in r.text


def test_per_key_requests_per_minute(keyed):
    live, key, limited_key, _ = keyed
    headers = {"Authorization": f"Bearer {limited_key}"}
    assert [httpx.get(live.base_url + "/v1/models", headers=headers).status_code for _ in range(2)] == [200, 200]
    r = httpx.get(live.base_url + "/v1/models", headers=headers)
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert int(r.headers["retry-after"]) >= 1
    # Another key is not affected.
    assert httpx.get(live.base_url + "/v1/models", headers={"X-API-Key": key}).status_code == 200


def test_daily_audio_quota(sibling, short_clip, tmp_path):
    key, entry = new_entry("quota", audio_minutes_per_day=0.02)  # 1.2 s of audio per day
    (tmp_path / "keys.json").write_text(json.dumps([entry]))
    live = sibling(api_keys_file=tmp_path / "keys.json")
    headers = {"Authorization": f"Bearer {key}"}

    def post():
        return httpx.post(live.base_url + "/v1/audio/transcriptions", headers=headers, timeout=120,
                          files={"file": ("a.wav", short_clip.read_bytes())}, data={"model": "whisper-tiny.en"})

    assert post().status_code == 200  # 1.9 s: allowed, uses up the quota
    r = post()
    assert r.status_code == 429 and "quota" in r.json()["error"]["message"]
