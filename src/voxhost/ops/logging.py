"""Structured JSON logs on stdout (CloudWatch-friendly). No audio or text content.

Only the whitelisted fields below leave the process: a log call that passes
content (a transcript, TTS text) in `extra` is not printed unless the
retention setting asks for it (`VOXHOST_RETAIN_CONTENT=logs` -> `content`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from urllib.parse import unquote_plus

# Every way a key can appear in text: a query parameter (uvicorn logs each
# WebSocket handshake's path with its query string), the browser subprotocol,
# a bearer header, and voxhost's own key format anywhere else. Wrong keys
# are redacted too: they are often a real key with a typo, or another
# service's secret.
_SECRETS = re.compile(
    r"(?i)(api[_-]?key=)[^&\s\"']+"
    r"|(openai-insecure-api-key\.)[^,\s\"']+"
    r"|(bearer\s+)[^\s\"',]+"
    r"|(vxh_)[A-Za-z0-9_-]+"
)


# A URL's query string in a log line (uvicorn logs each WebSocket handshake's path with it).
# Its values are dropped except for these names: a key can hide under any spelling of its
# parameter's name (`api%5Fkey`, `API_KEY`) and any format of its value (a studio's own keys).
_QUERY = re.compile(r"\?([^\s\"'#]+)")
_LOGGED_QUERY_VALUES = frozenset({"intent", "model"})


def _query_without_values(match: re.Match) -> str:
    pairs = []
    for pair in match.group(1).split("&"):
        name, sep, _ = pair.partition("=")
        keep = unquote_plus(name).strip().lower() in _LOGGED_QUERY_VALUES
        pairs.append(pair if keep or not sep else f"{name}=[redacted]")
    return "?" + "&".join(pairs)


def redact(text: str) -> str:
    """`text` with any API key replaced by `[redacted]`, and every query value but the harmless ones."""
    text = _QUERY.sub(_query_without_values, text)
    return _SECRETS.sub(lambda m: next(g for g in m.groups() if g) + "[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key in ("request_id", "route", "status", "duration_ms", "queue_ms", "compute_ms", "cost_usd",
                    "api_key"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if _retain_content and hasattr(record, "content"):
            entry["content"] = record.content
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


_retain_content = False


def configure_logging(level: str = "info", *, retain_content: str = "none") -> None:
    global _retain_content
    _retain_content = retain_content == "logs"
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log would print query strings (which may carry ?api_key=).
    logging.getLogger("uvicorn.access").disabled = True
    # A refused WebSocket handshake is a client error, not a server fault: at
    # error level anyone could flood the error log (and its alarms) with bad keys.
    logging.getLogger("uvicorn.error").addFilter(_quiet_refused_handshakes)
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)


def _quiet_refused_handshakes(record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR and "without completing handshake" in str(record.msg):
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "WebSocket handshake refused", None
    return True
