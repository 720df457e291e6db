"""API keys: hashed at rest, compared in constant time, named, rate-limited.

No keys configured means the server is open (local use; a warning is logged
at start-up). Keys come from `VOXHOST_API_KEYS` ("name:sha256hex,...") and/or
`VOXHOST_API_KEYS_FILE` (JSON or YAML: a list of {name, sha256, rpm,
audio_minutes_per_day}). Only sha256 digests are ever stored: `voxhost keys
create NAME` prints a new key once, with the entry to store.

Plain functions and classes, no web framework: the HTTP middleware and the
realtime (WebSocket) router both call `extract_api_key` and `KeyStore`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from voxhost.errors import AuthenticationError, RateLimited

KEY_PREFIX = "vxh_"
# Browsers can't set headers on WebSockets; OpenAI's realtime API accepts the
# key as a subprotocol instead. We accept the same.
WS_PROTOCOL_PREFIX = "openai-insecure-api-key."


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    rpm: int | None = None  # requests per minute; None: unlimited
    audio_minutes_per_day: float | None = None  # per UTC day; None: unlimited


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_entry(name: str, *, rpm: int | None = None, audio_minutes_per_day: float | None = None) -> tuple[str, dict]:
    """A fresh key (shown once) and the hashed entry to store."""
    key = generate_key()
    entry = asdict(ApiKey(name, hash_key(key), rpm, audio_minutes_per_day))
    return key, {k: v for k, v in entry.items() if v is not None}


def extract_api_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a client presented: `Authorization: Bearer`, `X-API-Key`, the
    WebSocket subprotocol `openai-insecure-api-key.<key>`, or `?api_key=`
    (WebSockets from browsers). `headers` may be any case-insensitive mapping
    (Starlette's Headers) or a dict with lower-case names."""
    auth = headers.get("authorization") or headers.get("Authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key") or headers.get("X-API-Key")
    if key:
        return key.strip()
    protocols = headers.get("sec-websocket-protocol") or headers.get("Sec-WebSocket-Protocol")
    if protocols:
        for proto in protocols.split(","):
            proto = proto.strip()
            if proto.startswith(WS_PROTOCOL_PREFIX):
                return proto[len(WS_PROTOCOL_PREFIX):]
    from_query = query.get("api_key")
    return from_query or None


def parse_keys(entries: Iterable) -> list[ApiKey]:
    """Accepts dicts ({name, sha256, ...}) or "name:sha256" strings."""
    keys = []
    for entry in entries:
        if isinstance(entry, str):
            name, _, digest = entry.partition(":")
            entry = {"name": name.strip(), "sha256": digest.strip()}
        digest = str(entry.get("sha256", "")).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"API key '{entry.get('name')}': sha256 must be 64 hex digits")
        keys.append(ApiKey(
            name=str(entry["name"]), sha256=digest,
            rpm=int(entry["rpm"]) if entry.get("rpm") else None,
            audio_minutes_per_day=float(entry["audio_minutes_per_day"]) if entry.get("audio_minutes_per_day") else None,
        ))
    return keys


def load_keys_file(path: Path) -> list[ApiKey]:
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(data, dict):
        data = data.get("keys", [])
    return parse_keys(data or [])


class KeyStore:
    def __init__(self, keys: Iterable[ApiKey] = (), *, metrics_sha256: str | None = None):
        self.keys = list(keys)
        self.metrics_sha256 = metrics_sha256.lower() if metrics_sha256 else None

    @property
    def open(self) -> bool:
        return not self.keys

    def authenticate(self, presented: str | None) -> ApiKey:
        """The matching key, or AuthenticationError. Every stored digest is
        compared (constant time each), so timing reveals nothing."""
        if not presented:
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'X-API-Key'."
            )
        digest = hash_key(presented)
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.sha256):
                found = key
        if found is None:
            raise AuthenticationError("Incorrect API key provided.")
        return found

    def authenticate_metrics(self, presented: str | None) -> None:
        """/metrics: its own key when configured, else the API keys' rule."""
        if self.metrics_sha256:
            if presented and hmac.compare_digest(hash_key(presented), self.metrics_sha256):
                return
            raise AuthenticationError("A valid metrics key is required for /metrics.")
        if not self.open:
            self.authenticate(presented)


class RateLimiter:
    """Per-key requests per minute (sliding window) and audio minutes per UTC day."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}
        self._audio: dict[str, tuple[int, float]] = {}  # name -> (day, seconds)

    def check(self, key: ApiKey) -> None:
        now = self.clock()
        with self._lock:
            if key.rpm:
                hits = self._hits.setdefault(key.name, deque())
                while hits and hits[0] <= now - 60.0:
                    hits.popleft()
                if len(hits) >= key.rpm:
                    raise RateLimited(
                        f"Rate limit of {key.rpm} requests per minute reached for API key '{key.name}'.",
                        retry_after=max(1.0, 60.0 - (now - hits[0])),
                    )
                hits.append(now)
            if key.audio_minutes_per_day:
                day, used = self._audio.get(key.name, (_day(now), 0.0))
                if day == _day(now) and used >= key.audio_minutes_per_day * 60.0:
                    raise RateLimited(
                        f"Daily audio quota of {key.audio_minutes_per_day:g} minutes reached for API key "
                        f"'{key.name}'.",
                        retry_after=(day + 1) * 86400.0 - now,
                    )

    def charge_audio(self, key: ApiKey, seconds: float) -> None:
        if not key.audio_minutes_per_day or seconds <= 0:
            return
        now = self.clock()
        with self._lock:
            day, used = self._audio.get(key.name, (_day(now), 0.0))
            if day != _day(now):
                day, used = _day(now), 0.0
            self._audio[key.name] = (day, used + seconds)


def _day(ts: float) -> int:
    return int(ts // 86400)
