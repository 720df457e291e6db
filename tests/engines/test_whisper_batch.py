"""Cross-request batching through the real bundled Whisper: same text and
segments as the sequential path, and the scheduler really batches."""

from __future__ import annotations

import numpy as np
import pytest

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions


@pytest.fixture(scope="module")
def base_engine(server):
    return server.app.state.voxhost.stt.get("whisper-base")


def _pick(rows, lang, count, max_s=10.0):
    return [r for r in rows if r.lang == lang and r.duration <= max_s][:count]


def test_batch_gives_the_same_transcripts_as_sequential(base_engine):
    from voxhost.evaluation.dataset import load_manifest
    from voxhost.evaluation.wer import wer

    rows = load_manifest()
    chosen = _pick(rows, "en", 2) + _pick(rows, "es", 1)
    audios = [decode_audio(r.audio.read_bytes()) for r in chosen]
    silence = np.zeros(16_000, dtype=np.float32)
    options = [TranscriptionOptions(language="en"), TranscriptionOptions(language="en"),
               TranscriptionOptions(language=None), TranscriptionOptions(language=None)]
    audios.append(silence)
    keys = {base_engine.batch_key(a, o) for a, o in zip(audios, options)}
    assert len(keys) == 1 and None not in keys  # all four may share one batch

    batched = base_engine.transcribe_batch(audios, options)
    sequential = [base_engine.transcribe(a, o) for a, o in zip(audios, options)]
    for b, s in zip(batched, sequential):
        assert b.text == s.text
        assert b.info.language == s.info.language
        assert [(x.start, x.end, x.text) for x in b.segments] == [(x.start, x.end, x.text) for x in s.segments]
    # Each caller got its own clip's words (no mixed-up order).
    for row, result in zip(chosen, batched):
        assert wer([row.text], [result.text], lang=row.lang) < 0.35
    assert batched[2].info.language == "es"
    assert batched[3].text == ""


def test_requests_that_batching_would_change_go_alone(base_engine):
    short = np.zeros(16_000 * 5, dtype=np.float32)
    long = np.zeros(16_000 * 31, dtype=np.float32)
    assert base_engine.batch_key(long, TranscriptionOptions()) is None
    for opts in (TranscriptionOptions(word_timestamps=True), TranscriptionOptions(prompt="Zorblax"),
                 TranscriptionOptions(hotwords="Zorblax"), TranscriptionOptions(temperature=0.4)):
        assert base_engine.batch_key(short, opts) is None
    assert base_engine.batch_key(short, TranscriptionOptions(task="translate")) != \
        base_engine.batch_key(short, TranscriptionOptions(task="transcribe"))
