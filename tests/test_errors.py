"""voxhost/errors.py: each error class says, consistently, how every transport answers it."""

from __future__ import annotations

import pytest

import voxhost.api.gateway.realtime  # noqa: F401
import voxhost.engines.tts.base  # noqa: F401  (their error classes join the hierarchy)
import voxhost.engines.tts.text  # noqa: F401
import voxhost.tts.consent  # noqa: F401
import voxhost.tts.designs  # noqa: F401
from voxhost.errors import CloseCode, SessionEnded, VoxhostError


def _all_errors() -> list[type[VoxhostError]]:
    found, todo = [], [VoxhostError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if not c.__name__.startswith("_")]


def _make(cls: type[VoxhostError]) -> VoxhostError:
    try:
        return cls("message")
    except TypeError:  # the gateway's UpstreamSessionFailure also takes its code
        return cls("message", "upstream_test")


ERRORS = _all_errors()


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_has_openais_body(cls):
    body = _make(cls).to_dict()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] in ("invalid_request_error", "rate_limit_error", "server_error")


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_retry_and_close_code_agree_with_the_status(cls):
    """429/503 say when to retry and close live sessions with 1013; client mistakes close with 1008."""
    error = _make(cls)
    if error.status_code in (429, 503):
        assert error.retry_after is not None and error.retry_after > 0, cls
        assert error.close_code == CloseCode.TRY_AGAIN, cls
    elif 400 <= error.status_code < 500 and not isinstance(error, SessionEnded):
        assert error.close_code == CloseCode.POLICY, cls
        assert error.retry_after is None, cls


def test_session_end_closes_normally():
    assert SessionEnded("over", code="session_expired").close_code == CloseCode.NORMAL == 1000


def test_messages_quoting_input_are_bounded():
    assert len(VoxhostError("x" * 50_000).message) < 1100
