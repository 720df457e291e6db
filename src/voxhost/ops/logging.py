"""Structured JSON logs on stdout (CloudWatch-friendly). No audio or text content.

Only the whitelisted fields below leave the process: a log call that passes
content (a transcript, TTS text) in `extra` is not printed unless the
retention setting asks for it (`VOXHOST_RETAIN_CONTENT=logs` -> `content`).
"""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("request_id", "route", "status", "duration_ms", "queue_ms", "compute_ms", "cost_usd",
                    "api_key"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if _retain_content and hasattr(record, "content"):
            entry["content"] = record.content
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
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
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
