"""JSON logs carry the request id and never content unless retention asks."""

from __future__ import annotations

import json
import logging

from voxhost.ops.logging import JsonFormatter, configure_logging


def _format(**extra) -> dict:
    record = logging.LogRecord("voxhost.stt", logging.INFO, __file__, 1, "transcript", None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return json.loads(JsonFormatter().format(record))


def test_content_is_dropped_unless_retention_is_configured():
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("uvicorn.access").disabled
    try:
        configure_logging("info")
        entry = _format(request_id="req_1", content="the player's words")
        assert entry["request_id"] == "req_1" and "content" not in entry
        assert "player's words" not in json.dumps(entry)
        configure_logging("info", retain_content="logs")
        assert _format(content="kept")["content"] == "kept"
    finally:
        configure_logging("info")
        root.handlers[:], level, logging.getLogger("uvicorn.access").disabled = saved
        root.setLevel(level)
