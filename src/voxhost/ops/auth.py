"""API keys: where a client's credential is found, and whether it is accepted.

One small seam for key management (a later feature): `extract_api_key` knows
every place OpenAI-style clients put a key; `authenticate` decides. With no
keys configured the server is open.
"""

from __future__ import annotations

import hmac
from typing import Mapping

from voxhost.errors import AuthenticationError

# Browsers cannot set headers on a WebSocket: OpenAI's browser clients pass the
# key as a subprotocol ("realtime", "openai-insecure-api-key.<key>"), others as
# ?api_key=.
_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."


def extract_api_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The credential a request carries, or None. `headers` keys are matched
    case-insensitively (Starlette's Headers already are)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    authorization = lowered.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if key := lowered.get("x-api-key", "").strip():
        return key
    for protocol in lowered.get("sec-websocket-protocol", "").split(","):
        protocol = protocol.strip()
        if protocol.startswith(_SUBPROTOCOL_PREFIX) and len(protocol) > len(_SUBPROTOCOL_PREFIX):
            return protocol[len(_SUBPROTOCOL_PREFIX) :]
    if key := (query.get("api_key") or "").strip():
        return key
    return None


def authenticate(configured_keys: list[str], key: str | None) -> None:
    """Raise AuthenticationError unless `key` is one of `configured_keys` (none configured: open)."""
    if not configured_keys:
        return
    if key is None:
        raise AuthenticationError(
            "Missing API key: send 'Authorization: Bearer <key>', 'X-API-Key: <key>' or '?api_key=<key>'."
        )
    if not any(hmac.compare_digest(key.encode(), k.encode()) for k in configured_keys):
        raise AuthenticationError("Incorrect API key provided.")
