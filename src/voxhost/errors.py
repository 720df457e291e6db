"""Domain errors and the transport-neutral part of how they go on the wire.

Domain code never imports FastAPI: it raises one of these, and each class
carries everything any transport needs to answer it:
- the OpenAI error body (`to_dict`, built only by `error_body` below; the
  gateway builds its own errors with the same function);
- the HTTP status (`status_code`) and how long to wait before retrying
  (`retry_after`, seconds; api/errors.py turns it into the Retry-After header);
- the WebSocket close code (`close_code`, one of `CloseCode`) for errors that
  end a live session.
api/errors.py is the only place that turns these into HTTP responses (the
exception handlers and the raw-ASGI sender the middleware and the migration gateway use);
api/protocol/realtime.py puts the same body into realtime `error` events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes (RFC 6455) this server and its gateway send."""

    NORMAL = 1000  # the session ended (expired, idle); not worth retrying as is
    POLICY = 1008  # refused: bad key, origin or intent
    INTERNAL = 1011  # the server (or the gateway's upstream) failed
    TRY_AGAIN = 1013  # at capacity, rate limited, not ready, draining: retry later


# Error messages quote what the client sent; a 20 KB model name must not
# come back whole (nor fill logs).
MAX_ECHO_CHARS = 100
MAX_MESSAGE_CHARS = 1000


def echo(value: object) -> str:
    """A client-supplied value, shortened for quoting in an error message."""
    text = str(value)
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "..."


def error_body(message: str, *, type_: str, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error object: every non-2xx JSON body and realtime error has this shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class VoxhostError(Exception):
    status_code = 500
    error_type = "server_error"
    code: str | None = None
    close_code = CloseCode.INTERNAL
    retry_after: float | None = None  # seconds; set on errors a client should retry

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        if len(message) > MAX_MESSAGE_CHARS:  # backstop for messages that quote input unshortened
            message = message[:MAX_MESSAGE_CHARS] + "..."
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return error_body(self.message, type_=self.error_type, param=self.param, code=self.code)


class InvalidRequest(VoxhostError):
    status_code = 400
    error_type = "invalid_request_error"
    close_code = CloseCode.POLICY


class SessionEnded(InvalidRequest):
    """A live session reached its maximum duration or sat idle: closed normally."""

    close_code = CloseCode.NORMAL


class InvalidAudio(InvalidRequest):
    code = "invalid_audio"


class AudioTooLong(InvalidRequest):
    code = "audio_too_long"


class PayloadTooLarge(InvalidRequest):
    status_code = 413
    code = "payload_too_large"


class AudioTooLarge(PayloadTooLarge):
    """Decoded, one upload alone would pass the server's budget for decoded audio."""

    code = "audio_too_large"


class ModelNotFound(InvalidRequest):
    code = "model_not_found"


class AuthenticationError(VoxhostError):
    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"
    close_code = CloseCode.POLICY


class RateLimited(VoxhostError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"
    close_code = CloseCode.TRY_AGAIN

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Overloaded(RateLimited):
    """The queue is full: shed load with 429 + Retry-After (never a 5xx)."""

    code = "server_overloaded"


class NotReady(VoxhostError):
    """Models are still loading (or the server is going away): retry shortly."""

    status_code = 503
    error_type = "server_error"
    code = "not_ready"
    close_code = CloseCode.TRY_AGAIN
    retry_after = 5.0


class Draining(NotReady):
    """Shutting down: new work goes to another instance (503 + Retry-After)."""

    retry_after = 5.0


class OriginNotAllowed(VoxhostError):
    """A browser page on an origin outside VOXHOST_CORS_ORIGINS opened a WebSocket."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "origin_not_allowed"
    close_code = CloseCode.POLICY


class DeadlineExceeded(Overloaded):
    """A queued job outlived its deadline before it could run: shed, retry later."""

    code = "deadline_exceeded"


class SessionRejected(VoxhostError):
    """A new live session can't be admitted (capacity, per-key limit, draining):
    WebSocket routes close with 1013 Try Again Later."""

    status_code = 503
    error_type = "server_error"
    code = "session_rejected"
    close_code = CloseCode.TRY_AGAIN
    retry_after = 1.0


def invalid_request(errors: Sequence[Mapping]) -> InvalidRequest:
    """Pydantic's first complaint as an OpenAI 400 naming the field (`param`)."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":  # its loc is a character offset, not a field
        message = f"The request body is not valid JSON: {first.get('ctx', {}).get('error', 'parse error')}."
        return InvalidRequest(message, code="invalid_json")
    # `param` names the field, not an index into it (timestamp_granularities, not .0).
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "form") and not isinstance(p, int)]
    param = ".".join(loc) or None
    message = first.get("msg", "Invalid request")
    if param:
        message = f"Invalid value for '{param}': {message}"
    # pydantic's "string_type", "model_type", ...: the wrong JSON type, which OpenAI calls invalid_type.
    kind = str(first.get("type", ""))
    code = ("missing_required_parameter" if kind == "missing"
            else "invalid_type" if kind.endswith("_type") else "invalid_value")
    return InvalidRequest(message, param=param, code=code)
