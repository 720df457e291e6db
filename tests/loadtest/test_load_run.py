"""`voxhost loadtest`'s traffic against the real server (real models, real
speech): REST and push-to-talk live turns come back as successes, and the
summary counts them per route."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np

from voxhost.audio.decode import decode_audio
from voxhost.loadtest.report import summarize
from voxhost.loadtest.runner import run_load
from voxhost.loadtest.scenarios import LiveTranscription, RestTranscription, load_clips


def test_clips_carry_24khz_pcm_of_the_same_speech(short_clip):
    (clip,) = load_clips([SimpleNamespace(audio=short_clip)])
    audio16 = decode_audio(short_clip.read_bytes())
    pcm24 = np.frombuffer(clip.pcm24k, dtype="<i2")
    assert abs(pcm24.size - audio16.size * 1.5) <= 64
    assert clip.seconds == audio16.size / 16_000
    # Same loudness after resampling (an off-by-rate or silent resample would not be).
    rms16 = np.sqrt(np.mean(audio16 ** 2))
    rms24 = np.sqrt(np.mean((pcm24 / 32768.0) ** 2))
    assert abs(rms24 / rms16 - 1) < 0.05


def test_rest_and_live_turns_succeed_and_are_summarised(base_url, short_clip):
    clips = load_clips([SimpleNamespace(audio=short_clip)])
    rest = RestTranscription("rest", "/v1/audio/transcriptions", clips=clips)
    live = LiveTranscription("live", "/v1/realtime", clips=clips, base_url=base_url)
    result = asyncio.run(run_load(base_url, [(rest, 1.0), (live, 1.0)], players=[2], stage_seconds=60,
                                  think_s=0.05, max_requests=6, seed=3))
    samples = [s for stage in result.stages for s in stage.samples]
    assert {s.route for s in samples} == {"/v1/audio/transcriptions", "/v1/realtime"}
    assert all(s.status in (200, 1000) for s in samples), [(s.route, s.status) for s in samples]
    assert all(s.latency > 0 for s in samples)
    assert rest.enabled and live.enabled
    rows = summarize(result)
    assert sum(r["ok"] for r in rows) == len(samples) == 6
    assert all(r["errors"] == 0 and r["p50_ms"] > 0 for r in rows)
