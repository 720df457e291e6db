"""api/errors.py: every way a real server refuses a request has one shape.

OpenAI's error body on every 4xx/5xx, whichever layer answered (raw-ASGI
middleware, FastAPI handlers, the routers), Retry-After on every 429 and 503,
and the matching WebSocket close codes for live sessions."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets.sync.client as ws_client
import yaml
from websockets.exceptions import ConnectionClosed

from voxhost.errors import CloseCode
from voxhost.ops.auth import new_entry

URL = "/v1/audio/transcriptions"
MAX_UPLOAD = 200_000


@pytest.fixture
def live(sibling, tmp_path):
    key, entry = new_entry("studio")
    limited_key, limited = new_entry("limited", rpm=1)
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump([limited]))
    server = sibling(api_keys=[f"studio:{entry['sha256']}"], api_keys_file=keys_file, max_upload_bytes=MAX_UPLOAD)
    return server, key, limited_key


def _check(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error = body["error"]
    expected_type = {429: "rate_limit_error"}.get(status, "server_error" if status >= 500 else "invalid_request_error")
    assert error["type"] == expected_type and error["message"]
    retry = response.headers.get("retry-after")
    if status in (429, 503):
        assert retry is not None and int(retry) >= 1, (status, response.headers)
    else:
        assert retry is None, (status, retry)
    return error


def test_every_refusal_has_openais_shape_and_retry_after_where_retrying_helps(live, short_clip):
    server, key, limited_key = live
    base, auth = server.base_url, {"Authorization": f"Bearer {key}"}
    state = server.app.state.voxhost
    clip = short_clip.read_bytes()

    _check(httpx.post(base + URL, files={"audio": ("a.wav", clip)}, headers=auth), 400)  # router
    _check(httpx.post(base + "/v1/audio/speech", content=b"{", headers={**auth, "content-type": "application/json"}),
           400)  # FastAPI's validation, re-shaped
    _check(httpx.post(base + URL, files={"file": ("a.wav", clip)}), 401)  # Gatekeeper middleware
    _check(httpx.get(base + "/v1/nothing-here", headers=auth), 404)  # Starlette's routing
    _check(httpx.get(base + URL, headers=auth), 405)
    # Too large, three ways: declared length (middleware), a file part over the
    # limit inside an allowed body (the form), a chunked body (raised from receive()).
    _check(httpx.post(base + URL, files={"file": ("a.wav", b"\0" * (MAX_UPLOAD * 3))}, headers=auth), 413)
    assert _check(httpx.post(base + URL, files={"file": ("a.wav", b"\0" * (MAX_UPLOAD + 10))}, headers=auth),
                  413)["code"] == "payload_too_large"

    def chunked():
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        for _ in range(8):
            yield b"\0" * 100_000
    _check(httpx.post(base + URL, content=chunked(), headers={**auth, "content-type": "multipart/form-data; boundary=xyz"}),
           413)
    limited = {"Authorization": f"Bearer {limited_key}"}
    httpx.get(base + "/v1/models", headers=limited)
    _check(httpx.get(base + "/v1/models", headers=limited), 429)

    state.ready.clear()  # models still loading
    try:
        assert _check(httpx.post(base + URL, files={"file": ("a.wav", clip)}, headers=auth), 503)["code"] == "not_ready"
        with ws_client.connect(base.replace("http", "ws") + "/v1/realtime?intent=transcription",
                               additional_headers=auth) as ws:
            event = json.loads(ws.recv(timeout=10))
            assert event["type"] == "error" and event["error"]["code"] == "not_ready"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
            assert ws.close_code == CloseCode.TRY_AGAIN
    finally:
        state.ready.set()

    state.draining.set()
    try:
        assert _check(httpx.post(base + URL, files={"file": ("a.wav", clip)}, headers=auth), 503)["code"] == "not_ready"
    finally:
        state.draining.clear()


def test_live_session_refusals_close_with_the_errors_code(live):
    server, key, _ = live
    url = server.base_url.replace("http", "ws") + "/v1/realtime?intent=conversation"
    with ws_client.connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        event = json.loads(ws.recv(timeout=10))
        assert event["error"]["param"] == "intent"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == CloseCode.POLICY
