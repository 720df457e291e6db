"""Cross-request batching through the real bundled Whisper: same text and
segments as the sequential path, and the scheduler really batches."""

from __future__ import annotations

import numpy as np
import pytest

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions


@pytest.fixture(scope="module")
def base_engine(server):
    return server.app.state.voxhost.services.stt_engines.get("whisper-base")


def _pick(rows, lang, count, max_s=10.0):
    return [r for r in rows if r.lang == lang and r.duration <= max_s][:count]


def test_batch_gives_the_same_transcripts_as_sequential(base_engine):
    from voxhost.evaluation.dataset import load_manifest
    from voxhost.stt.wer import wer

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


@pytest.mark.parametrize("setup", ["text_only", "live_partial"])
def test_text_only_and_short_window_batches_match_sequential(base_engine, setup):
    """The setups that batch well on a GPU (no timestamp tokens): REST json/text
    and live partials (greedy, short encoder window, capped tokens)."""
    from voxhost.evaluation.dataset import load_manifest

    rows = _pick(load_manifest(), "en", 3, max_s=4.0)
    audios = [decode_audio(r.audio.read_bytes()) for r in rows]
    if setup == "text_only":
        options = TranscriptionOptions(language="en", without_timestamps=True)
    else:
        options = TranscriptionOptions(language="en", beam_size=1, without_timestamps=True, chunk_length=5,
                                       max_new_tokens=48, temperature_fallback=False)
    keys = {base_engine.batch_key(a, options) for a in audios}
    assert len(keys) == 1 and None not in keys
    assert keys != {base_engine.batch_key(audios[0], TranscriptionOptions(language="en"))}

    batched = base_engine.transcribe_batch(audios, options)
    sequential = [base_engine.transcribe(a, options) for a in audios]
    for row, b, s in zip(rows, batched, sequential):
        assert b.text == s.text and b.text, (row.audio.name, b.text, s.text)
        assert [(x.start, x.end) for x in b.segments] == [(x.start, x.end) for x in s.segments]


def test_mixed_setups_in_one_call_each_decode_as_asked(base_engine):
    from voxhost.evaluation.dataset import load_manifest

    row = _pick(load_manifest(), "en", 1, max_s=4.0)[0]
    audio = decode_audio(row.audio.read_bytes())
    setups = [TranscriptionOptions(language="en"), TranscriptionOptions(language="en", without_timestamps=True)]
    batched = base_engine.transcribe_batch([audio, audio], setups)
    for b, opts in zip(batched, setups):
        assert b.text == base_engine.transcribe(audio, opts).text
