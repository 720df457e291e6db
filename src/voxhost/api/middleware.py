"""ASGI middleware that must see the raw request."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers, QueryParams

from voxhost.api.errors import send_error
from voxhost.api.origins import check_websocket_origin
from voxhost.api.state import AppState
from voxhost.errors import (
    AuthenticationError,
    CloseCode,
    Draining,
    PayloadTooLarge,
    RateLimited,
    VoxhostError,
)
from voxhost.ops import context
from voxhost.ops.auth import extract_api_key

request_log = logging.getLogger("voxhost.request")


class BodySizeLimit:
    """Reject bodies over `max_bytes` with 413 before they are buffered.

    Checks Content-Length up front and counts chunked bodies as they stream,
    so a client can't make the server hold an unbounded upload in memory.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send)

        seen = 0
        too_large = False

        async def limited_receive():
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _TooLarge(self.max_bytes)
            return message

        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)
        except Exception:
            if too_large and not started:
                await self._reject(send)
            else:
                raise

    async def _reject(self, send):
        await send_error(send, _TooLarge(self.max_bytes))


class _TooLarge(PayloadTooLarge):
    """Raised from receive(): handlers that read the body propagate it as a 413."""

    def __init__(self, max_bytes: int):
        super().__init__(f"Request body is larger than the limit of {max_bytes} bytes.", param="file")


# Routes that stay open and uncounted: probes must work without keys, during
# drain, and must not skew request metrics.
PROBE_PATHS = frozenset({"/health", "/ready"})
METRICS_PATH = "/metrics"


def is_console_asset(scope) -> bool:
    """The browser console's page and static files (api/routers/console.py): public, so that
    its API-key box can be reached; nothing secret is in them, and every API call the page
    makes carries the key typed there."""
    path = scope.get("path", "")
    return scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and (
        path == "/" or path.startswith("/web/"))


class RequestAccounting:
    """Outermost: one RequestContext per request (HTTP or WebSocket).

    Assigns the request id, tracks in-flight work for drain, writes
    `X-Request-Id`, `X-Queue-Ms`, `X-Compute-Ms`, `X-Cost-USD` on the
    response, and reports the finished request to metrics and the log.
    A response whose headers leave before its work is done (streamed speech,
    SSE; `RequestContext.work_after_headers`) gets no figures in them: its
    SSE stream states them in its last event, and metrics and the log get them
    when it ends.
    """

    def __init__(self, app, *, state: AppState):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path in PROBE_PATHS or path == METRICS_PATH:
            return await self.app(scope, receive, send)
        ctx = context.RequestContext()
        scope.setdefault("state", {})["request_context"] = ctx
        token = context.activate(ctx)
        started = time.perf_counter()
        status = 500 if scope["type"] == "http" else 101
        state = self.state
        state.http_in_flight += 1
        state.metrics.http_in_flight.set(state.http_in_flight)

        async def accounting_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", ctx.request_id.encode()))
                if not ctx.work_after_headers:  # else unknown yet: omitted, never a false 0
                    headers += [
                        (b"x-queue-ms", f"{ctx.queue_seconds * 1000:.1f}".encode()),
                        (b"x-compute-ms", f"{ctx.compute_seconds * 1000:.1f}".encode()),
                        (b"x-cost-usd", f"{ctx.cost_usd:.8f}".encode()),
                    ]
                message = {**message, "headers": headers}
            elif message["type"] == "websocket.http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, accounting_send)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            # Refused before routing (bad key, drain): one label, not the raw
            # path, which a client could vary without bound.
            ctx.route = getattr(route, "path", None) or scope.get("voxhost.denied") or "unmatched"
            state.http_in_flight -= 1
            state.metrics.http_in_flight.set(state.http_in_flight)
            method = scope.get("method", "WS")
            state.metrics.observe_request(ctx, method, status, elapsed)
            key = state.key_for(ctx.key_name) if ctx.key_name else None
            if key is not None and ctx.audio_seconds and not ctx.abandoned:
                state.rate_limiter.charge_audio(key, ctx.audio_seconds)
            request_log.info(
                "%s %s %s", method, ctx.route, status,
                extra={"request_id": ctx.request_id, "route": ctx.route, "status": status,
                       "duration_ms": round(elapsed * 1000, 1), "queue_ms": round(ctx.queue_seconds * 1000, 1),
                       "compute_ms": round(ctx.compute_seconds * 1000, 1), "cost_usd": ctx.cost_usd,
                       "api_key": ctx.key_name},
            )
            context.deactivate(token)


class Gatekeeper:
    """API keys, per-key rate limits, and refusal of new work while draining.

    Runs for every HTTP and WebSocket request except the probes. Errors are
    OpenAI-shaped JSON (401, 429, 503). WebSockets: a bad key gets a 401
    handshake denial (same JSON); rate limit or drain gets accept + close 1013.
    """

    def __init__(self, app, *, state: AppState):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path in PROBE_PATHS or is_console_asset(scope):
            return await self.app(scope, receive, send)
        state = self.state
        headers = Headers(scope=scope)
        websocket = scope["type"] == "websocket"
        # ?api_key= only on the WebSocket handshake (browsers can't set its
        # headers): on plain HTTP it would land in proxy/ALB logs and history,
        # so it is refused there even beside a good header (the client must stop sending it).
        # QueryParams decodes the names: `api%5Fkey` is `api_key`.
        query = QueryParams(scope.get("query_string", b""))
        presented = extract_api_key(headers, query if websocket else {})
        try:
            if websocket:
                check_websocket_origin(headers, state.settings.cors_origins)
            elif any(name.strip().lower() == "api_key" for name in query):
                raise AuthenticationError(
                    "API keys in the URL are accepted only on the WebSocket handshake; send "
                    "'Authorization: Bearer <key>' or 'X-API-Key', and take the key out of the URL."
                )
            if path == METRICS_PATH:
                state.keys.authenticate_metrics(presented)
                return await self.app(scope, receive, send)
            if state.draining.is_set() and not (state.gateway is not None and state.gateway.takes(path)):
                raise Draining("The server is draining for shutdown; retry on another instance.")
            if not state.keys.open:
                key = state.keys.authenticate(presented)
                ctx = context.current()
                if ctx is not None:
                    ctx.key_name = key.name
                scope.setdefault("state", {})["api_key"] = key
                state.rate_limiter.check(key)
        except VoxhostError as exc:
            scope["voxhost.denied"] = "(denied)"
            if websocket and isinstance(exc, (Draining, RateLimited)):  # closed with 1013
                state.metrics.sessions_rejected.labels("draining" if isinstance(exc, Draining) else "rate_limited").inc()
            return await _deny(scope, receive, send, exc)
        return await self.app(scope, receive, send)


async def _deny(scope, receive, send, exc: VoxhostError) -> None:
    if scope["type"] == "http":
        return await send_error(send, exc)
    if exc.close_code == CloseCode.POLICY:  # bad key or origin: refused at the handshake
        if "websocket.http.response" in scope.get("extensions", {}):
            # A 401/403 with the same JSON body as HTTP.
            return await send_error(send, exc, websocket_denial=True)
        return await send({"type": "websocket.close", "code": exc.close_code})
    # Overload, rate limit, drain: accept, then close with 1013 (Try Again
    # Later) and the reason, which is what a live client is built to handle.
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": exc.close_code, "reason": exc.message[:120]})
