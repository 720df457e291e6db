"""The upstream provider: one pooled async HTTP client speaking OpenAI's audio API.

Timeouts on connect and on the whole exchange; a pool of keep-alive
connections (the first byte must not pay a TLS handshake); one retry, and
only of a failed *connect* (httpx's transport retries), when nothing was sent
and repeating cannot duplicate work. The API key goes in the Authorization
header of outgoing requests and nowhere else: errors are rebuilt from the
upstream's body, never from the request.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.datastructures import FormData, UploadFile

from voxhost.api.gateway.config import GatewayConfig
from voxhost.errors import error_body

# voxhost-only form fields: an OpenAI upstream would refuse or ignore them.
EXTENSION_FIELDS = frozenset({"hotwords", "vad_filter", "beam_size"})
# Response headers passed back to the client (the rest describe the upstream's own hop).
PASS_HEADERS = ("content-type", "retry-after", "content-disposition")
# Anything that looks like an API key in an upstream's error text (OpenAI
# echoes a masked key on 401) is cut before the message reaches a player.
_KEYLIKE = re.compile(r"(sk|vxh)[-_][A-Za-z0-9*_\-]{6,}")


class UpstreamFailure(Exception):
    """The upstream could not be reached or answered with an error; `status`
    and `body` are what the client gets (OpenAI's error shape, labelled)."""

    def __init__(self, status: int, body: dict, kind: str, headers: dict[str, str] | None = None):
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body
        self.kind = kind  # metric label: unreachable, timeout, status_4xx, status_429, status_5xx
        self.headers = headers or {}


class Upstream:
    def __init__(self, config: GatewayConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.client = httpx.AsyncClient(
            base_url=config.url + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=config.max_connections,
                                max_keepalive_connections=config.max_connections),
            transport=transport or httpx.AsyncHTTPTransport(retries=1),  # connect failures only
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def build(self, route: str, body: bytes, content_type: str, form: FormData | None) -> httpx.Request:
        """The upstream request for a client's: the route's upstream model
        name swapped in, voxhost extensions dropped. `form` is the parsed
        multipart body (STT routes), None for JSON (speech)."""
        model = self.config.models.get(route)
        if form is None:
            if model:
                payload = json.loads(body)
                payload["model"] = model
                body = json.dumps(payload).encode()
            return self.client.build_request("POST", f"audio/{route}", content=body,
                                             headers={"content-type": "application/json"})
        data: list[tuple[str, str]] = []
        files = []
        for name, value in form.multi_items():
            if name in EXTENSION_FIELDS or (name == "model" and model):
                continue
            if isinstance(value, UploadFile):
                value.file.seek(0)  # bytes, not the file: a shadow request is sent after the form is gone
                files.append((name, (value.filename or "audio", value.file.read(), value.content_type)))
            else:
                data.append((name, value))
        if model:
            data.append(("model", model))
        fields: dict[str, list[str]] = {}
        for name, value in data:
            fields.setdefault(name, []).append(value)
        return self.client.build_request("POST", f"audio/{route}", data=fields, files=files)

    async def probe(self) -> bool:
        """Whether the upstream answers at all: GET <upstream>/models with the gateway's key
        (OpenAI's cheapest authenticated call; nothing of a player's). A 5xx, refused
        credentials or no answer in the connect timeout is not an answer."""
        try:
            response = await self.client.get("models", timeout=httpx.Timeout(self.config.connect_timeout_s))
        except httpx.HTTPError:
            return False
        await response.aclose()
        return response.status_code < 500 and response.status_code not in (401, 403)

    @asynccontextmanager
    async def send(self, request: httpx.Request) -> AsyncIterator[httpx.Response]:
        """The upstream's 2xx response, streaming; UpstreamFailure otherwise."""
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamFailure(504, error_body("The upstream provider did not answer in time.",
                                                  type_="upstream_error", code="upstream_timeout"), "timeout") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(502, error_body(f"The upstream provider is unreachable ({type(exc).__name__}).",
                                                  type_="upstream_error", code="upstream_unavailable"),
                                  "unreachable") from None
        try:
            if response.status_code >= 400:
                raise await _failure(response)
            yield response
        finally:
            await response.aclose()


async def _failure(response: httpx.Response) -> UpstreamFailure:
    """The upstream's error in OpenAI's shape, its message prefixed so the
    player (and the studio) can tell it came from the cloud API."""
    status = response.status_code
    if status in (401, 403):
        # Our key, not the player's request: a configuration fault, and the
        # upstream's text may quote the key, so none of it is passed on.
        return UpstreamFailure(502, error_body(
            "The upstream provider rejected voxhost's credentials (VOXHOST_UPSTREAM_API_KEY).",
            type_="upstream_error", code="upstream_auth_failed"), "auth",
            {"x-voxhost-upstream-status": str(status)})
    try:
        raw = await response.aread()
        error = json.loads(raw)["error"]
        message, type_, code, param = (str(error.get("message") or "")[:500], error.get("type"),
                                       error.get("code"), error.get("param"))
    except Exception:  # not OpenAI-shaped: keep the status, not the body
        message, type_, code, param = "", None, None, None
    message = _KEYLIKE.sub("[redacted]", message)
    body = error_body(f"Upstream provider error ({status}): {message or response.reason_phrase}",
                      type_=type_ or ("rate_limit_error" if status == 429 else "upstream_error"),
                      code=code, param=param)
    headers = {"x-voxhost-upstream-status": str(status)}
    if "retry-after" in response.headers:
        headers["retry-after"] = response.headers["retry-after"]
    kind = "status_429" if status == 429 else ("status_4xx" if status < 500 else "status_5xx")
    # A 5xx from the upstream is a bad gateway here; its 4xx (bad input, rate limits) stay as they are.
    return UpstreamFailure(status if status < 500 else 502, body, kind, headers)
