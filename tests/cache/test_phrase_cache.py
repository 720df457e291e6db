"""The phrase cache: hits are byte-identical, anything that changes the sound is a
miss, and processes sharing a directory never corrupt it."""

from __future__ import annotations

import asyncio
import csv
import itertools
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import voxhost
from voxhost.cache.phrases import DiskTier, MemoryTier, PhraseCache
from voxhost.tts.service import SpeechService

_unique = itertools.count()


def line(text: str = "You owe the guild 250 gold coins") -> str:
    return f"{text}, debt number {next(_unique) + 1}."


def speak(base_url: str, **body) -> httpx.Response:
    payload = {"model": "tts-1", "voice": "alloy", "response_format": "mp3"} | body
    response = httpx.post(base_url + "/v1/audio/speech", json=payload, timeout=120)
    assert response.status_code == 200, response.text
    return response


def test_repeat_request_is_a_hit_with_identical_bytes(base_url, openai_client):
    text = line()
    first = speak(base_url, input=text)
    assert first.headers["x-cache"] == "miss"
    with openai_client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="mp3"
    ) as second:
        assert second.headers["x-cache"] == "hit"
        assert int(second.headers["content-length"]) == len(first.content)
        assert second.read() == first.content
    # Same spoken text after normalisation is the same line: "$5" is "five dollars".
    a = speak(base_url, input=f"That's $5, {text}")
    b = speak(base_url, input=f"That's five dollars, {text}")
    assert (a.headers["x-cache"], b.headers["x-cache"]) == ("miss", "hit") and a.content == b.content


def test_speed_voice_or_format_change_is_a_miss(base_url):
    text = line()
    assert speak(base_url, input=text).headers["x-cache"] == "miss"
    assert speak(base_url, input=text).headers["x-cache"] == "hit"
    assert speak(base_url, input=text, speed=1.25).headers["x-cache"] == "miss"
    assert speak(base_url, input=text, voice="joe").headers["x-cache"] == "miss"
    assert speak(base_url, input=text, response_format="wav").headers["x-cache"] == "miss"


def test_changed_voice_definition_never_serves_old_audio(base_url, server, monkeypatch):
    text = "Halt!"
    table = server.app.state.voxhost.services.voices.voice_map["kokoro"]
    monkeypatch.setitem(table, "alloy", "jf_alpha")
    old = speak(base_url, model="tts-1-hd", input=text)
    assert old.headers["x-voxhost-voice"] == "jf_alpha"
    assert speak(base_url, model="tts-1-hd", input=text).headers["x-cache"] == "hit"
    monkeypatch.setitem(table, "alloy", "jm_kumo")  # the studio remaps alloy
    new = speak(base_url, model="tts-1-hd", input=text)
    assert new.headers["x-cache"] == "miss" and new.headers["x-voxhost-voice"] == "jm_kumo"
    assert new.content != old.content


def test_blend_fingerprint_follows_weights_not_spelling(server):
    voices = server.app.state.voxhost.services.voices
    a = voices.resolve("tts-1-hd", "jf_alpha(2)+jm_kumo(1)").selection
    b = voices.resolve("tts-1-hd", "jm_kumo(1) + jf_alpha(2)").selection
    c = voices.resolve("tts-1-hd", "jf_alpha(1)+jm_kumo(1)").selection
    assert a.fingerprint == b.fingerprint and a.definition == b.definition
    assert a.fingerprint != c.fingerprint


def test_memory_tier_is_lru_bounded_in_bytes():
    tier = MemoryTier(max_bytes=10)
    tier.put("a", b"1234")
    tier.put("b", b"1234")
    assert tier.get("a") == b"1234"  # a is now the most recent
    tier.put("c", b"1234")  # 12 bytes > 10: evict the least recent (b)
    assert tier.get("b") is None and tier.get("a") and tier.get("c")
    assert tier.size == 8
    tier.put("huge", b"x" * 11)  # bigger than the budget: not kept at all
    assert tier.get("huge") is None and tier.size == 8


def test_disk_tier_evicts_least_recently_used(tmp_path):
    tier = DiskTier(tmp_path, max_bytes=2500)
    for i, key in enumerate(["aa01", "bb02", "cc03"]):
        tier.put(key, bytes([i]) * 1000)
        os.utime(tmp_path / key[:2] / key, (1_000_000 + i, 1_000_000 + i))
    assert tier.stats()["bytes"] <= 2500
    assert tier.get("aa01") is None  # oldest went first
    assert tier.get("cc03") == bytes([2]) * 1000
    # Half-written files (temp names) are never served or counted.
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / ".tmp-dd04").write_bytes(b"partial")
    assert tier.get("dd04") is None and tier.stats()["entries"] == 2


def test_two_processes_warming_one_directory(tmp_path, server):
    """Two `voxhost cache warm` runs at once, opposite orders, a budget that forces
    both to evict: every surviving entry is complete and byte-identical to a
    fresh synthesis of its line, and the directory ends within budget."""
    budget = 150_000
    cache_dir = tmp_path / "shared-cache"
    rows = [("alloy", f"Guard {i}: halt, traveler, the toll is {i + 3} silver.") for i in range(24)]
    forward, backward = tmp_path / "forward.csv", tmp_path / "backward.csv"
    for path, ordered in ((forward, rows), (backward, rows[::-1])):
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerows([("voice", "text"), *ordered])
    env = os.environ | {
        "PYTHONPATH": str(Path(voxhost.__file__).parents[1]),
        "VOXHOST_TTS_ENGINES": "hibari",
        "VOXHOST_TTS_CACHE_PATH": str(cache_dir),
        "VOXHOST_TTS_CACHE_DISK_BYTES": str(budget),
    }
    procs = [subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "cache", "warm", str(p), "--model", "tts-1"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for p in (forward, backward)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    files = [p for p in cache_dir.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert not [p for p in files if p.name.startswith(".tmp-")]
    assert 0 < sum(p.stat().st_size for p in files) <= budget
    assert len(files) < len(rows)  # eviction really ran

    state = server.app.state.voxhost
    fresh = SpeechService(state.services.voices, state.services.tts_scheduler, cache=None)
    jobs = {job.key: job for job in (fresh.prepare(model="tts-1", voice=v, text=t, fmt="mp3") for v, t in rows)}
    for path in files:
        assert path.name in jobs, f"unexpected cache entry {path}"
        expected, _ = asyncio.run(fresh.synthesize(jobs[path.name]))
        assert path.read_bytes() == expected

    # The server reads what the CLI wrote: same keys, same bytes.
    cache = PhraseCache(cache_dir, memory_bytes=1 << 20, disk_bytes=budget)
    assert cache.get(files[0].name) == files[0].read_bytes()


@pytest.mark.parametrize("enabled", [False])
def test_cache_can_be_switched_off(enabled, settings):
    assert PhraseCache.from_settings(settings.model_copy(update={"tts_cache_enabled": enabled})) is None
    assert PhraseCache.from_settings(settings) is not None  # on by default
