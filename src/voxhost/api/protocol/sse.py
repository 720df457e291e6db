"""The one Server-Sent Events encoder (transcription and speech streams).

OpenAI's streams are `data: <json>` lines with no `event:` field; the JSON's
own `type` names the event. Events are pydantic wire models or plain dicts.
"""

from __future__ import annotations

import json

from pydantic import BaseModel

MEDIA_TYPE = "text/event-stream"
# Proxies (nginx, the ALB) must pass each event on as it comes.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode(event: BaseModel | dict) -> bytes:
    body = event.model_dump(mode="json") if isinstance(event, BaseModel) else event
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()
