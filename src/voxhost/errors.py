"""Domain errors. Raised anywhere; mapped to HTTP/WebSocket responses in api/errors.py.

Domain code never imports FastAPI: it raises one of these with the OpenAI
error `type`, `code` and offending `param`, and the API layer renders them.
"""

from __future__ import annotations


# Error messages quote what the client sent; a 20 KB model name must not
# come back whole (nor fill logs).
MAX_ECHO_CHARS = 100
MAX_MESSAGE_CHARS = 1000


def echo(value: object) -> str:
    """A client-supplied value, shortened for quoting in an error message."""
    text = str(value)
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "..."


class VoxhostError(Exception):
    status_code = 500
    error_type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        if len(message) > MAX_MESSAGE_CHARS:  # backstop for messages that quote input unshortened
            message = message[:MAX_MESSAGE_CHARS] + "..."
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(VoxhostError):
    status_code = 400
    error_type = "invalid_request_error"


class InvalidAudio(InvalidRequest):
    code = "invalid_audio"


class AudioTooLong(InvalidRequest):
    code = "audio_too_long"


class PayloadTooLarge(InvalidRequest):
    status_code = 413
    code = "payload_too_large"


class ModelNotFound(InvalidRequest):
    code = "model_not_found"


class AuthenticationError(VoxhostError):
    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class RateLimited(VoxhostError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Overloaded(RateLimited):
    """The queue is full: shed load with 429 + Retry-After (never a 5xx)."""

    code = "server_overloaded"


class NotReady(VoxhostError):
    status_code = 503
    error_type = "server_error"
    code = "not_ready"


class Draining(NotReady):
    """Shutting down: new work goes to another instance (503 + Retry-After)."""

    retry_after = 5.0


class OriginNotAllowed(VoxhostError):
    """A browser page on an origin outside VOXHOST_CORS_ORIGINS opened a WebSocket."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "origin_not_allowed"


class DeadlineExceeded(Overloaded):
    """A queued job outlived its deadline before it could run: shed, retry later."""

    code = "deadline_exceeded"


class SessionRejected(VoxhostError):
    """A new live session can't be admitted (capacity, per-key limit, draining).

    WebSocket routes close with `close_code` (1013 Try Again Later)."""

    status_code = 503
    error_type = "server_error"
    code = "session_rejected"
    close_code = 1013
