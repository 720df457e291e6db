"""The one place that turns errors into HTTP responses.

voxhost/errors.py says what an error is (OpenAI body, status, retry delay,
WebSocket close code); this module renders it for HTTP: the exception
handlers FastAPI calls, `send_error` for raw-ASGI middleware (413, 401,
429, 503 before the app runs) and the migration gateway, the Retry-After header,
and the error schema the OpenAPI document promises. Nothing else builds an error
response.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from voxhost.api.disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected
from voxhost.errors import VoxhostError, invalid_request

log = logging.getLogger("voxhost.api")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error body: every non-2xx JSON response has this shape."""

    error: ErrorDetail


# What the OpenAPI document promises for every operation (clients and fuzzers
# generate from it). Validation errors are 400 here, never FastAPI's 422.
ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Invalid request (OpenAI error body; `param` names the field)"),
        (401, "Missing or wrong API key"),
        (404, "No such route (a path parameter that doesn't fit the route, e.g. with a newline)"),
        (413, "Request body over the upload limit"),
        (429, "Rate limit or queue full; see Retry-After"),
        (503, "Not ready, or draining; see Retry-After"),
    )
}


def truthful_responses(schema: dict, open_paths: frozenset[str]) -> dict:
    """Remove FastAPI's generated 422 entries (this API answers 400 instead),
    and from the open probes every error but 503 (they need no key, take no body)."""
    for name, path in schema.get("paths", {}).items():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.get("responses", {})
            responses.pop("422", None)
            if name in open_paths:
                for status in ("400", "401", "404", "413", "429"):
                    responses.pop(status, None)
    return schema


def error_headers(exc: VoxhostError) -> dict[str, str]:
    """Retry-After for errors a client should retry: whole seconds, rounded up (never
    sooner than meant), at least 1; and the same in milliseconds as `retry-after-ms`,
    which the OpenAI SDKs read first (an expected queue wait of 2.3 s waits 2.3 s)."""
    if exc.retry_after is None:
        return {}
    seconds = max(1.0, float(exc.retry_after))
    return {"Retry-After": str(math.ceil(seconds)), "retry-after-ms": str(round(seconds * 1000))}


def error_response(exc: VoxhostError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers={**(headers or {}), **error_headers(exc)})


async def send_error(send, exc: VoxhostError, *, websocket_denial: bool = False,
                     extra_headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """The same response as the exception handlers, for raw-ASGI middleware that
    answers before the app runs. `websocket_denial`: as a WebSocket handshake
    denial (`websocket.http.response`), which carries an HTTP status and body."""
    await send_error_body(send, exc.status_code, exc.to_dict(), error_headers(exc),
                          websocket_denial=websocket_denial, extra_headers=extra_headers)


async def send_error_body(send, status: int, body: dict, headers: Mapping[str, str] | None = None, *,
                          websocket_denial: bool = False, extra_headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """An OpenAI error body with its status, as raw ASGI messages: `send_error`'s, and the
    migration gateway's relay of an upstream's own error (its status, body and Retry-After)."""
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    raw += list(extra_headers)
    prefix = "websocket.http.response" if websocket_denial else "http.response"
    await send({"type": f"{prefix}.start", "status": status, "headers": raw})
    await send({"type": f"{prefix}.body", "body": data})


class _RouteError(VoxhostError):
    """Starlette's own HTTP errors (404 no such route, 405 wrong method), in OpenAI's shape."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.error_type = "invalid_request_error" if status_code < 500 else "server_error"


# Starlette calls each handler only with its own exception class (the isinstance checks say so to the
# type checker, whose view of add_exception_handler takes any Exception).
def _voxhost_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VoxhostError)
    return error_response(exc)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(invalid_request(exc.errors()))


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(_RouteError(exc.status_code, str(exc.detail)), headers=exc.headers)


def _client_gone(_: Request, exc: Exception) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)  # for the log and metrics; the client is gone


def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(VoxhostError("Internal server error", code="internal_error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VoxhostError, _voxhost_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnected, _client_gone)
    app.add_exception_handler(Exception, _unhandled)
