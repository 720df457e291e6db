"""Gateway configuration: validated once at start, shares re-read live.

Every mistake an operator can make in the upstream settings fails here, at
start-up, with a message naming the setting - never on a player's request.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from voxhost.ops.settings import Settings

log = logging.getLogger("voxhost.gateway")

ROUTES = ("transcriptions", "translations", "speech", "realtime")
# Routes the HTTP proxy serves (realtime sessions: gateway/realtime.py).
HTTP_ROUTES = {"/v1/audio/transcriptions": "transcriptions", "/v1/audio/translations": "translations",
               "/v1/audio/speech": "speech"}
RELOAD_INTERVAL_S = 1.0  # how often the shares file's mtime is checked


class GatewayConfigError(ValueError):
    """Bad upstream/routing configuration: the server refuses to start."""


@dataclass(frozen=True)
class Shares:
    """The part of the policy that may change without a restart."""

    local_share: float = 1.0
    local_shares: dict[str, float] = field(default_factory=dict)
    shadow_share: float = 0.0

    def local(self, route: str) -> float:
        return self.local_shares.get(route, self.local_share)


@dataclass(frozen=True)
class GatewayConfig:
    url: str
    api_key: str | None  # kept out of every repr, log and error message
    models: dict[str, str]
    timeout_s: float
    connect_timeout_s: float
    max_connections: int
    fallback: bool
    burst_queue: int
    shadow_log: Path | None
    shares_file: Path | None
    initial: Shares
    breaker_failures: int = 3  # 0: no circuit breaker and no failover (gateway/breaker.py)
    breaker_cooldown_s: float = 5.0
    breaker_max_cooldown_s: float = 60.0

    def __repr__(self) -> str:  # never print the key
        return f"GatewayConfig(url={self.url!r}, fallback={self.fallback}, burst_queue={self.burst_queue})"


def _share(name: str, value: object) -> float:
    try:
        share = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise GatewayConfigError(f"{name} must be a number between 0 and 1, got {value!r}") from None
    if not math.isfinite(share) or not 0.0 <= share <= 1.0:
        raise GatewayConfigError(f"{name} must be between 0 and 1, got {value!r}")
    return share


def parse_shares(data: dict, *, where: str) -> Shares:
    """Shares from a dict {local_share, local_shares, shadow_share} (settings or the file)."""
    unknown = set(data) - {"local_share", "local_shares", "shadow_share"}
    if unknown:
        raise GatewayConfigError(f"{where}: unknown keys {sorted(unknown)} "
                                 "(expected local_share, local_shares, shadow_share)")
    per_route = data.get("local_shares") or {}
    if not isinstance(per_route, dict):
        raise GatewayConfigError(f"{where}: local_shares must be an object of route -> share")
    bad = set(per_route) - set(ROUTES)
    if bad:
        raise GatewayConfigError(f"{where}: unknown routes {sorted(bad)} in local_shares (routes: {', '.join(ROUTES)})")
    shares = Shares(
        local_share=_share(f"{where} local_share", data.get("local_share", 1.0)),
        local_shares={route: _share(f"{where} local_shares.{route}", v) for route, v in per_route.items()},
        shadow_share=_share(f"{where} shadow_share", data.get("shadow_share", 0.0)),
    )
    return shares


def load_shares_file(path: Path) -> Shares:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GatewayConfigError(f"VOXHOST_ROUTE_SHARES_FILE {path}: {exc}") from None
    if not isinstance(data, dict):
        raise GatewayConfigError(f"VOXHOST_ROUTE_SHARES_FILE {path}: expected a JSON object")
    return parse_shares(data, where=f"VOXHOST_ROUTE_SHARES_FILE {path}")


def from_settings(settings: Settings) -> GatewayConfig | None:
    """The gateway's config, None when no upstream is configured (serve
    everything here), or GatewayConfigError with a message naming the setting."""
    s = settings
    settings_shares = parse_shares({"local_share": s.route_local_share, "local_shares": s.route_local_shares,
                                    "shadow_share": s.route_shadow_share}, where="VOXHOST_ROUTE_*")
    if not s.upstream_url:
        routed = (settings_shares.local_share < 1.0 or any(v < 1.0 for v in settings_shares.local_shares.values())
                  or settings_shares.shadow_share > 0.0 or s.route_burst_queue > 0 or s.route_fallback
                  or s.route_shares_file is not None or s.upstream_api_key is not None)
        if routed:
            raise GatewayConfigError("VOXHOST_ROUTE_* / VOXHOST_UPSTREAM_API_KEY are set but VOXHOST_UPSTREAM_URL "
                                     "is not: set the upstream's API base (e.g. https://api.openai.com/v1)")
        return None
    parts = urlsplit(s.upstream_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise GatewayConfigError(f"VOXHOST_UPSTREAM_URL must be an http(s) API base such as "
                                 f"https://api.openai.com/v1, got {s.upstream_url!r}")
    if parts.username or parts.password:
        raise GatewayConfigError("VOXHOST_UPSTREAM_URL must not carry credentials; use VOXHOST_UPSTREAM_API_KEY")
    raw = s.upstream_api_key
    key = (raw.get_secret_value() if isinstance(raw, SecretStr) else raw or "").strip() if raw is not None else None
    if s.upstream_api_key is not None and not key:
        raise GatewayConfigError("VOXHOST_UPSTREAM_API_KEY is set but empty")
    if key is not None and any(c.isspace() for c in key):
        raise GatewayConfigError("VOXHOST_UPSTREAM_API_KEY contains whitespace (two keys pasted together?)")
    bad = set(s.upstream_models) - set(HTTP_ROUTES.values())
    if bad:
        raise GatewayConfigError(f"VOXHOST_UPSTREAM_MODELS: unknown routes {sorted(bad)} "
                                 f"(routes: {', '.join(HTTP_ROUTES.values())})")
    if s.upstream_timeout_s <= 0 or s.upstream_connect_timeout_s <= 0 or s.upstream_max_connections < 1:
        raise GatewayConfigError("VOXHOST_UPSTREAM_TIMEOUT_S, _CONNECT_TIMEOUT_S must be > 0 and "
                                 "VOXHOST_UPSTREAM_MAX_CONNECTIONS >= 1")
    if s.route_burst_queue < 0:
        raise GatewayConfigError("VOXHOST_ROUTE_BURST_QUEUE must be >= 0 (0: no burst)")
    initial = load_shares_file(s.route_shares_file) if s.route_shares_file else settings_shares
    return GatewayConfig(
        url=s.upstream_url.rstrip("/"), api_key=key, models=dict(s.upstream_models),
        timeout_s=s.upstream_timeout_s, connect_timeout_s=s.upstream_connect_timeout_s,
        max_connections=s.upstream_max_connections,
        fallback=True if s.route_fallback is None else s.route_fallback,
        burst_queue=s.route_burst_queue, shadow_log=s.route_shadow_log,
        shares_file=s.route_shares_file, initial=initial,
        breaker_failures=s.upstream_breaker_failures, breaker_cooldown_s=s.upstream_breaker_cooldown_s,
        breaker_max_cooldown_s=s.upstream_breaker_max_cooldown_s,
    )


class LiveShares:
    """The current shares: the file's when one is configured (re-read when its
    mtime changes, at most every RELOAD_INTERVAL_S), else the settings'. A
    broken edit is logged and ignored: the last good shares stay in force."""

    def __init__(self, config: GatewayConfig):
        self._path = config.shares_file
        self._shares = config.initial
        self._mtime = self._stat()
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def _stat(self) -> float | None:
        try:
            return os.stat(self._path).st_mtime_ns if self._path else None
        except OSError:
            return None

    def current(self) -> Shares:
        if self._path is None or time.monotonic() - self._checked < RELOAD_INTERVAL_S:
            return self._shares
        with self._lock:
            self._checked = time.monotonic()
            mtime = self._stat()
            if mtime is not None and mtime != self._mtime:
                self._mtime = mtime
                try:
                    self._shares = load_shares_file(self._path)
                    log.info("route shares reloaded from %s", self._path)
                except GatewayConfigError as exc:
                    log.warning("route shares file rejected, keeping the previous shares: %s", exc)
        return self._shares
