"""The one place that turns errors into OpenAI-shaped HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from voxhost.api.disconnect import CLIENT_CLOSED_REQUEST, ClientDisconnected
from voxhost.errors import VoxhostError

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


def error_body(message: str, *, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def retry_after(exc: VoxhostError) -> str | None:
    """The Retry-After header value (whole seconds) for errors a client should retry."""
    seconds = getattr(exc, "retry_after", None)
    return None if seconds is None else str(max(1, int(round(seconds))))


def _voxhost_error(_: Request, exc: VoxhostError) -> JSONResponse:
    headers = {"Retry-After": retry_after(exc)} if retry_after(exc) is not None else {}
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":  # its loc is a character offset, not a field
        message = f"The request body is not valid JSON: {first.get('ctx', {}).get('error', 'parse error')}."
        return JSONResponse(error_body(message, type_="invalid_request_error", code="invalid_json"), status_code=400)
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "form")]
    param = ".".join(loc) or None
    message = first.get("msg", "Invalid request")
    if param:
        message = f"Invalid value for '{param}': {message}"
    return JSONResponse(
        error_body(message, type_="invalid_request_error", param=param, code="invalid_value"),
        status_code=400,
    )


def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return JSONResponse(
        error_body(str(exc.detail), type_=type_, code=None),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def _client_gone(_: Request, exc: ClientDisconnected) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)  # for the log and metrics; the client is gone


def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        error_body("Internal server error", type_="server_error", code="internal_error"), status_code=500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VoxhostError, _voxhost_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnected, _client_gone)
    app.add_exception_handler(Exception, _unhandled)
