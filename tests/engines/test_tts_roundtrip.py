"""Round trip: every engine speaks the evaluation sentences, bundled Whisper base
transcribes them, and the word error rate must stay at or under 10%.

Through the real server: the sentences go out as one request per engine (one
per line, so the server splits, synthesises and stitches them as it would a
long NPC speech), in each engine's default voice, as WAV through the openai
SDK; the server's own Whisper base engine transcribes the result in one pass
(one call instead of one per sentence: Whisper pads every call to 30 s).

Piper samples: its graph draws noise (RandomNormalLike, unseeded) on every call, so its
score is a random variable. Over 20 syntheses on one machine it ranged 4.6-9.3% (mean
6.4%), and CI once drew 11.3%. For piper the test scores three syntheses and holds
their median to the bound: a regression moves every draw, and one unlucky draw does
not fail the build. Hibari and Kokoro are deterministic: one synthesis each.
"""

from __future__ import annotations

import pytest

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.evaluation.dataset import tts_sentences
from voxhost.stt.wer import wer

MAX_WER = 0.10
SAMPLING_ENGINES = {"piper": 3}  # syntheses scored per sampling engine; the median is held to MAX_WER


@pytest.fixture(scope="session")
def whisper_base(server):
    return server.app.state.voxhost.services.stt_engines.get("whisper-base")


@pytest.mark.parametrize("engine", ["hibari", "kokoro", "piper"])
def test_round_trip_wer(engine, openai_client, whisper_base, base_url, server):
    import httpx

    voices = httpx.get(base_url + "/v1/audio/voices").json()["data"]
    voice = next(v["id"] for v in voices if v["engine"] == engine and v["default"])
    sentences = tts_sentences()
    assert len(sentences) >= 10
    draws = []
    phrases = server.app.state.voxhost.services.speech.cache
    for _ in range(SAMPLING_ENGINES.get(engine, 1)):
        if phrases is not None:
            phrases.clear()  # each draw a fresh synthesis, not the phrase cache's copy of the first
        response = openai_client.audio.speech.with_raw_response.create(
            model=engine, voice=voice, input="\n".join(sentences), response_format="wav")
        assert response.headers["x-cache"] == "miss"
        audio = response.content
        samples = decode_audio(audio)
        assert samples.size / 16_000 > 2.0 * len(sentences)  # every sentence was spoken
        hypothesis = whisper_base.transcribe(
            samples, TranscriptionOptions(language="en", beam_size=5, vad_filter=False)).text
        draws.append((wer([" ".join(sentences)], [hypothesis]), hypothesis))
    score, hypothesis = sorted(draws)[len(draws) // 2]
    print(f"\nround-trip WER {engine} ({voice}): {score:.1%} over {len(sentences)} sentences "
          f"(draws {', '.join(f'{d:.1%}' for d, _ in draws)})\n{hypothesis}")
    assert score <= MAX_WER, f"{engine} WER {score:.1%}: {hypothesis}"
