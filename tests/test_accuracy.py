"""WER through the server vs raw faster-whisper with the same settings.

Runs a category-balanced 5-minute subset of the English eval set by default
(the full 11.5 minutes twice would take most of CI's budget on 2 cores);
VOXHOST_TEST_FULL_EVAL=1 runs all of it. bench/stt_overhead.py reports the
full set.
"""

from __future__ import annotations

import os

import faster_whisper
import pytest

from voxhost.engines.stt.bundled import resolve_stt_model
from voxhost.evaluation.dataset import representative_subset
from voxhost.evaluation.wer import wer_by


@pytest.fixture(scope="module")
def utterances(english):
    if os.environ.get("VOXHOST_TEST_FULL_EVAL") == "1":
        return english
    return representative_subset(english, max_seconds=300)


def test_server_wer_matches_raw_engine(openai_client, settings, utterances):
    raw = faster_whisper.WhisperModel(
        resolve_stt_model("whisper-base", settings.models_dir), device="cpu", compute_type="int8"
    )
    raw_rows, server_rows = [], []
    for utt in utterances:
        segments, _ = raw.transcribe(
            faster_whisper.decode_audio(str(utt.audio)), beam_size=settings.stt_beam_size,
            # voxhost trims non-speech only from long audio (short audio is only gated)
            vad_filter=utt.duration > settings.stt_vad_trim_over_seconds,
            vad_parameters={"threshold": settings.stt_vad_threshold},
            no_speech_threshold=settings.stt_no_speech_threshold,
        )
        raw_rows.append((utt.category, utt.text, "".join(s.text for s in segments)))
        served = openai_client.audio.transcriptions.create(model="whisper-1", file=utt.audio.open("rb"))
        server_rows.append((utt.category, utt.text, served.text))

    raw_wer, server_wer = wer_by(raw_rows), wer_by(server_rows)
    differs = [f"{utt.audio.name}: raw {raw[2]!r}, server {served[2]!r}"
               for utt, raw, served in zip(utterances, raw_rows, server_rows) if raw[2].strip() != served[2].strip()]
    print(f"\n{len(utterances)} English utterances, {sum(u.duration for u in utterances):.0f} s")
    for key in raw_wer:
        print(f"  {key:14s} raw {raw_wer[key]:.2%}  server {server_wer[key]:.2%}")
    # Two-sided on purpose: a server that scores *better* than its engine is
    # dropping something (a silence gate once returned "" for a whispered line,
    # which scored fewer errors than the engine's mishearing of it).
    assert abs(server_wer["pooled"] - raw_wer["pooled"]) <= 0.005, differs
    assert server_wer["pooled"] < 0.15  # base on this set is ~5-8%: a broken pipeline is far above
