"""The gateway middleware: decides per request where it is served and serves it.

It sits innermost (inside key checks, rate limits and the body-size limit),
around the REST speech routes only. The body is read once into memory (the
routers hold it in memory too); a local attempt gets a replay of it, so a
local refusal (not ready, draining, queue full, deadline, engine error) is
re-sent upstream without asking the player to upload again: nothing a player
sent is lost. A local answer is committed at its first response header that
is not a refusal; from then on it streams untouched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass

import httpx
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp

from voxhost.api.errors import send_error, send_error_body
from voxhost.api.gateway.breaker import FAILURE_KINDS, CircuitBreaker
from voxhost.api.gateway.config import HTTP_ROUTES, GatewayConfig, LiveShares
from voxhost.api.gateway.metrics import GatewayMetrics
from voxhost.api.gateway.policy import MAX_PLAYER_ID, ROUTE_HEADER, RoutePath, Served, local_state, wants_local
from voxhost.api.gateway.realtime import PATH as REALTIME_PATH
from voxhost.api.gateway.realtime import RealtimeProxy
from voxhost.api.gateway.shadow import LocalResult, Shadow
from voxhost.api.gateway.upstream import PASS_HEADERS, Upstream, UpstreamFailure
from voxhost.api.state import AppState
from voxhost.audio.decode import declared_seconds
from voxhost.errors import InvalidRequest, error_body
from voxhost.ops import context
from voxhost.ops.auth import extract_api_key
from voxhost.ops.cost import cloud_usd

log = logging.getLogger("voxhost.gateway")

SHADOW_CAPTURE_BYTES = 1024 * 1024  # a transcript, not audio; more than this is not compared
# Local refusals that go upstream instead (status -> reason); 429 only for the
# server's own overload codes, never for a per-key rate limit.
FALLBACK_429_CODES = {"server_overloaded": "queue_full", "deadline_exceeded": "deadline"}


class _Incoming:
    """One client request, body in memory; the form is parsed at most once, on demand."""

    def __init__(self, route: str, scope, body: bytes, max_part: int):
        self.route = route
        self.scope = scope
        self.body = body
        self.headers = Headers(scope=scope)
        self._max_part = max_part
        self._form: FormData | None = None
        self._json: dict | None = None

    def replay(self, receive):
        sent = False

        async def replay_receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            return await receive()  # disconnect, for streamed responses

        return replay_receive

    async def form(self) -> FormData:
        if self._form is None:
            async def never():  # the body is replayed in full first
                return {"type": "http.disconnect"}
            request = Request(self.scope, self.replay(never))
            self._form = await request.form(max_part_size=self._max_part)
        return self._form

    def json_body(self) -> dict:
        if self._json is None:
            data = json.loads(self.body)
            self._json = data if isinstance(data, dict) else {}
        return self._json

    async def field(self, name: str) -> str | None:
        """A text field of the body, None if absent or the body doesn't parse."""
        try:
            value = self.json_body().get(name) if self.route == "speech" else (await self.form()).get(name)
        except Exception:  # malformed: the local handler reports it properly
            return None
        return value if isinstance(value, str) else None

    async def player_id(self) -> str:
        """X-Player-Id, else OpenAI's `user` field, else the API key (hashed
        with everything else by the policy, never stored)."""
        player = self.headers.get("x-player-id") or await self.field("user")
        if not player:
            key = (self.scope.get("state") or {}).get("api_key")
            player = key.name if key is not None else extract_api_key(self.headers, {}) or ""
        return player[:MAX_PLAYER_ID]


@dataclass
class _Held:
    """A local refusal kept back until we know whether to fall back."""

    start: dict
    body: bytearray


class Gateway:
    def __init__(self, config: GatewayConfig, state: AppState, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.state = state
        self.shares = LiveShares(config)
        self.in_flight = {"stt": 0, "tts": 0}  # local requests not yet answered, per engine kind
        self.upstream = Upstream(config, transport)
        self.metrics = GatewayMetrics(state.metrics.registry)
        self.shadow = Shadow(self.upstream, self.metrics, config.shadow_log,
                             retain_text=state.settings.retain_content == "logs")
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_cooldown_s,
                                      config.breaker_max_cooldown_s, self.upstream.probe, self.metrics)
        self.realtime = RealtimeProxy(config, state, self.metrics, self.breaker)

    def takes(self, path: str) -> bool:
        """Whether requests to `path` can be served even while this server drains."""
        return self.config.fallback and (path in HTTP_ROUTES or path == REALTIME_PATH)

    async def aclose(self) -> None:
        await self.breaker.aclose()
        await self.shadow.drain()
        await self.upstream.aclose()

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def gateway(scope, receive, send) -> None:
            if scope["type"] == "websocket" and scope.get("path") == REALTIME_PATH:
                return await self.handle_realtime(app, scope, receive, send)
            route = HTTP_ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
            if route is None or scope.get("method") != "POST":
                return await app(scope, receive, send)
            await self.handle(app, route, scope, receive, send)
        return gateway

    async def handle_realtime(self, app, scope, receive, send) -> None:
        """A live session is placed once, at connect, and stays there."""
        served, reason = self.realtime.decide(scope, self.shares.current().local("realtime"))
        if served is Served.LOCAL:
            self.metrics.served.labels("realtime", Served.LOCAL.value).inc()
            return await app(scope, receive, _routed(send, Served.LOCAL))
        await self.realtime.serve(app, scope, receive, send, served, reason)

    # ---- the decision --------------------------------------------------
    async def handle(self, app, route: str, scope, receive, send) -> None:
        body = await _read_body(receive)
        incoming = _Incoming(route, scope, body, self.state.settings.max_upload_bytes + 1)
        shares = self.shares.current()
        share = shares.local(route)
        # The player id may need the form parsed: only when the share splits players.
        if share < 1.0 and (share <= 0.0 or not wants_local(await incoming.player_id(), share)):
            return await self.serve_upstream(app, incoming, receive, Served.UPSTREAM, send)
        lane = "tts" if route == "speech" else "stt"
        served = local_state(self.state, route, self.config.burst_queue, self.in_flight[lane])
        if served is Served.BURST or (served is Served.FALLBACK and self.config.fallback):
            reason = "burst" if served is Served.BURST else ("draining" if self.state.draining.is_set()
                                                             else "not_ready")
            return await self.serve_upstream(app, incoming, receive, served, send, reason=reason)
        sample = shares.shadow_share > 0 and random.random() < shares.shadow_share
        self.in_flight[lane] += 1
        try:
            await self.serve_local(app, incoming, receive, send, shadow=sample)
        finally:
            self.in_flight[lane] -= 1

    # ---- local, with fallback ------------------------------------------
    async def serve_local(self, app, incoming: _Incoming, receive, send, *, shadow: bool) -> None:
        fallback = self.config.fallback
        burst = self.config.burst_queue > 0
        held: _Held | None = None
        committed = False
        captured = bytearray()
        status = 0
        content_type = ""
        started = time.perf_counter()

        async def local_send(message):
            nonlocal held, committed, status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                if (fallback or (burst and status == 429)) and _may_fall_back(status):
                    held = _Held(message, bytearray())
                    return
                committed = True
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                message = _with_route(message, Served.LOCAL)
            elif message["type"] == "http.response.body" and held is not None:
                held.body += message.get("body", b"")
                return
            elif (message["type"] == "http.response.body" and shadow and incoming.route != "speech"
                  and len(captured) <= SHADOW_CAPTURE_BYTES):  # a transcript; TTS audio is not compared
                captured.extend(message.get("body", b""))
            await send(message)

        try:
            await app(incoming.scope, incoming.replay(receive), local_send)
        except Exception:
            if committed or not fallback:
                raise
            log.exception("local engine error; falling back upstream")
            return await self.serve_upstream(app, incoming, receive, Served.FALLBACK, send, reason="engine_error",
                                             may_fail_over=False)
        if held is not None:
            reason = _fallback_reason(held)
            if shadow and reason is not None and (fallback or burst):
                self.shadow.local_failed(incoming.route, self._engine_label(await incoming.field("model")),
                                         _language_label(await incoming.field("language")),
                                         time.perf_counter() - started)
            # The local answer is held (never sent): if the upstream fails too, the player gets it.
            if burst and reason in ("queue_full", "deadline"):  # overloaded after all: burst, not 429
                return await self.serve_upstream(app, incoming, receive, Served.BURST, send, reason="burst",
                                                 held=held)
            if reason is not None and fallback:
                return await self.serve_upstream(app, incoming, receive, Served.FALLBACK, send, reason=reason,
                                                 held=held)
            await send(_with_route(held.start, Served.LOCAL))
            await send({"type": "http.response.body", "body": bytes(held.body)})
            self.metrics.served.labels(incoming.route, Served.LOCAL.value).inc()
            return
        self.metrics.served.labels(incoming.route, Served.LOCAL.value).inc()
        if shadow and status == 200 and len(captured) <= SHADOW_CAPTURE_BYTES:
            await self._submit_shadow(incoming, bytes(captured), content_type, time.perf_counter() - started)

    async def _submit_shadow(self, incoming: _Incoming, body: bytes, content_type: str, seconds: float) -> None:
        try:
            form = await incoming.form() if incoming.route != "speech" else None
            request = self.upstream.build(incoming.route, incoming.body, incoming.headers.get("content-type", ""),
                                          form)
        except Exception:  # nothing to compare against; the player was served
            return
        ctx = context.current()
        local = LocalResult(
            route=incoming.route, body=body, content_type=content_type, seconds=seconds,
            cost_usd=ctx.cost_usd if ctx is not None else 0.0,
            model=self._engine_label(await incoming.field("model")),
            language=_language_label(await incoming.field("language")),
        )
        upstream_usd = await self._price(incoming, self.upstream_model(incoming.route, local.model))
        self.shadow.submit(request, local, upstream_usd)

    def _engine_label(self, requested: str | None) -> str:
        try:
            return self.state.services.stt_engines.get(requested).name
        except Exception:
            return "other"

    def upstream_model(self, route: str, requested: str | None) -> str | None:
        return self.config.models.get(route) or requested

    # ---- upstream ------------------------------------------------------
    async def serve_upstream(self, app, incoming: _Incoming, receive, served: Served, send, *,
                             reason: str | None = None, held: _Held | None = None,
                             may_fail_over: bool = True) -> None:
        """Serve it upstream; if the upstream is down (breaker open) or fails before its first
        byte, serve it here instead when that can work (failover), else the local refusal
        kept back (`held`), else a retryable 503: never a 502 for a lost upstream."""
        route = incoming.route
        # Request logs and metrics label it by path, as if the router had matched it.
        incoming.scope.setdefault("route", RoutePath(incoming.scope["path"]))
        if not self.breaker.allows_upstream:
            return await self._without_upstream(app, incoming, receive, send, served, "breaker_open", held,
                                                may_fail_over)
        self.metrics.served.labels(route, served.value).inc()
        if reason is not None:
            self.metrics.fallbacks.labels(route, reason).inc()
        try:
            form = await incoming.form() if route != "speech" else None
            request = self.upstream.build(route, incoming.body, incoming.headers.get("content-type", ""), form)
        except Exception:
            error = InvalidRequest("Malformed request body: expected multipart/form-data (transcriptions) or "
                                   "JSON (speech).", code="invalid_value")
            return await send_error(send, error, extra_headers=[_route_header(served)])
        started = time.perf_counter()
        try:
            async with self.upstream.send(request) as response:
                self.metrics.upstream_latency.labels(route).observe(time.perf_counter() - started)
                price = await self._price(incoming, self.upstream_model(route, await incoming.field("model")))
                ctx = context.current()
                if ctx is not None:
                    ctx.cost_usd += price  # X-Cost-USD (RequestAccounting writes it)
                self.metrics.upstream_cost.labels(route).inc(price)
                headers = [(name.encode(), response.headers[name].encode())
                           for name in PASS_HEADERS if name in response.headers]
                await send(_with_route({"type": "http.response.start", "status": response.status_code,
                                        "headers": headers}, served))
                try:
                    async for chunk in response.aiter_bytes():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except httpx.HTTPError:
                    # Cut mid-stream: the status is gone already. Drop the
                    # connection so the client sees a broken response, not a
                    # short one that looks complete (the SDKs retry it).
                    self.metrics.upstream_errors.labels(route, "cut").inc()
                    self.breaker.record("cut")
                    raise
                await send({"type": "http.response.body", "body": b""})
                self.breaker.record(None)
        except UpstreamFailure as failure:
            self.metrics.upstream_errors.labels(route, failure.kind).inc()
            self.breaker.record(failure.kind)
            if self.breaker.enabled and failure.kind in FAILURE_KINDS:
                return await self._without_upstream(app, incoming, receive, send, served, "upstream_failed", held,
                                                    may_fail_over)
            await send_error_body(send, failure.status, failure.body, failure.headers,
                                  extra_headers=[_route_header(served)])

    async def _without_upstream(self, app, incoming: _Incoming, receive, send, served: Served, why: str,
                                held: _Held | None, may_fail_over: bool) -> None:
        """The upstream cannot serve this request. Here instead if this server could
        (ready, not draining): its own answer, even a 429 with its Retry-After, is one
        the SDKs retry. Else the local refusal kept back, else 503 + Retry-After."""
        route = incoming.route
        if held is not None:  # local refused it already: that answer, not a second try
            self.metrics.failovers.labels(route, "no_room").inc()
            await send(_with_route(held.start, served))
            return await send({"type": "http.response.body", "body": bytes(held.body)})
        if may_fail_over and self.state.is_ready:
            self.metrics.failovers.labels(route, why).inc()
            self.metrics.served.labels(route, Served.FAILOVER.value).inc()
            lane = "tts" if route == "speech" else "stt"
            self.in_flight[lane] += 1
            try:
                return await app(incoming.scope, incoming.replay(receive), _routed(send, Served.FAILOVER))
            finally:
                self.in_flight[lane] -= 1
        self.metrics.failovers.labels(route, "no_room").inc()
        body = error_body("The upstream provider is unavailable and this server cannot take the request; retry "
                          "shortly.", type_="upstream_error", code="upstream_unavailable")
        await send_error_body(send, 503, body, {"retry-after": f"{self.breaker.retry_after_s():.0f}"},
                              extra_headers=[_route_header(served)])

    async def _price(self, incoming: _Incoming, model: str | None) -> float:
        if incoming.route == "speech":
            text = await incoming.field("input")
            return cloud_usd("speech", model, characters=len(text or ""))
        try:
            upload = (await incoming.form()).get("file")
        except Exception:  # malformed: the upstream refuses it, nothing to price
            return 0.0
        if not isinstance(upload, UploadFile):  # no file: likewise
            return 0.0
        await upload.seek(0)  # building the upstream request read it
        seconds = await asyncio.to_thread(declared_seconds, await upload.read())
        ctx = context.current()
        if ctx is not None and not ctx.audio_seconds:
            ctx.audio_seconds = seconds  # per-key audio quotas count upstream-served audio too
        return cloud_usd(incoming.route, model, audio_seconds=seconds)


def _language_label(language: str | None) -> str:
    if not language:
        return "auto"
    language = language.lower()
    return language if len(language) <= 3 and language.isalpha() else "other"


def _may_fall_back(status: int) -> bool:
    return status in (429, 500, 503)


def _fallback_reason(held: _Held) -> str | None:
    status = held.start["status"]
    if status == 500:
        return "engine_error"
    try:
        code = json.loads(bytes(held.body))["error"]["code"]
    except Exception:
        code = None
    if status == 503:
        return "not_ready"
    return FALLBACK_429_CODES.get(code)


def _route_header(served: Served) -> tuple[bytes, bytes]:
    return ROUTE_HEADER, served.value.encode()


def _with_route(message: dict, served: Served) -> dict:
    return {**message, "headers": [*message.get("headers", []), _route_header(served)]}


def _routed(send, served: Served):
    """`send` with X-Voxhost-Route on every response start: an HTTP response's, and a WebSocket's
    handshake (served here or upstream alike)."""
    async def routed(message):
        if message["type"] in ("http.response.start", "websocket.accept"):
            message = _with_route(message, served)
        await send(message)
    return routed


async def _read_body(receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def build_gateway(state: AppState) -> Gateway | None:
    """The gateway for this app's settings (None: no upstream, serve everything
    here); GatewayConfigError on a bad configuration, before anything starts."""
    from voxhost.api.gateway.config import from_settings

    config = from_settings(state.settings)
    return Gateway(config, state) if config is not None else None
