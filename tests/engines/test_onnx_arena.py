"""TTS sessions run without onnxruntime's CPU arena: a long synthesis's intermediate
buffers go back to the allocator instead of staying resident for the session's life
(with the arena, piper kept +133 MiB and Kokoro +185 MiB after one paragraph;
bench/onnx_arena.py, docs/benchmarks.md)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from voxhost.engines.onnx_device import session_options
from voxhost.ops.memory import configure_allocator, trim


def rss_mib() -> float:
    gc.collect()
    trim()  # as the idle server does
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024


def test_session_options_leave_the_arena_off_unless_asked():
    assert session_options(2).enable_cpu_mem_arena is False
    assert session_options(2).intra_op_num_threads == 2
    assert session_options(1, cpu_mem_arena=True).enable_cpu_mem_arena is True


def test_a_long_synthesis_leaves_no_buffers_resident(eval_audio):
    pytest.importorskip("piper", reason="piper is the optional GPL extra")
    from voxhost.engines.tts.piper import PiperEngine

    configure_allocator()
    engine = PiperEngine(threads=1)
    engine.device = "cpu"
    engine.load()
    engine.warm_up()
    lines = [s.strip() for s in (eval_audio.parent / "tts_sentences.txt").read_text().splitlines() if s.strip()]
    before = rss_mib()
    audio = engine.synthesize(" ".join(lines[:5]), engine.resolve_voice(engine.default_voice))
    assert len(audio) > 10 * engine.sample_rate  # a paragraph: well over ten seconds of speech
    assert rss_mib() - before < 40  # with the arena: about +130 MiB
