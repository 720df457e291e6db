"""Key extraction, hashing, key files and rate-limit arithmetic."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from voxhost.errors import AuthenticationError, RateLimited
from voxhost.ops.auth import ApiKey, KeyStore, RateLimiter, extract_api_key, hash_key, new_entry, parse_keys


def test_extract_api_key_from_every_place():
    assert extract_api_key(Headers({"Authorization": "Bearer k1"}), {}) == "k1"
    assert extract_api_key(Headers({"x-api-key": "k2"}), {}) == "k2"
    assert extract_api_key({"sec-websocket-protocol": "realtime, openai-insecure-api-key.k3"}, {}) == "k3"
    assert extract_api_key({}, {"api_key": "k4"}) == "k4"
    assert extract_api_key(Headers({"Authorization": "Basic xyz"}), {}) is None
    assert extract_api_key({}, {}) is None


def test_keys_are_stored_hashed_and_matched_by_name():
    key, entry = new_entry("studio", rpm=10)
    assert key.startswith("vxh_") and key not in str(entry)
    assert entry == {"name": "studio", "sha256": hash_key(key), "rpm": 10}
    store = KeyStore(parse_keys([entry, "other:" + hash_key("x")]))
    assert store.authenticate(key).name == "studio"
    assert store.authenticate("x").name == "other"
    for bad in (None, "", "vxh_wrong"):
        with pytest.raises(AuthenticationError):
            store.authenticate(bad)
    with pytest.raises(ValueError):
        parse_keys(["broken:not-a-digest"])


def test_rate_limiter_window_and_daily_audio():
    now = [1_000_000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    key = ApiKey("k", hash_key("k"), rpm=2, audio_minutes_per_day=1.0)
    limiter.check(key)
    limiter.check(key)
    with pytest.raises(RateLimited) as info:
        limiter.check(key)
    assert 1 <= info.value.retry_after <= 60
    now[0] += 61
    limiter.check(key)  # the window slid
    limiter.charge_audio(key, 61.0)
    now[0] += 61
    with pytest.raises(RateLimited):
        limiter.check(key)  # over a minute of audio today
    now[0] += 86_400  # the next UTC day
    limiter.check(key)
