"""TTS sessions run with onnxruntime's CPU arena, shrunk after every run: a synthesis's
buffers are reused within it (the arena's speed) and handed back after it, instead of
staying resident for the session's life (kept, piper held +133 MiB and Kokoro +440 MiB after
one paragraph; bench/onnx_arena.py, docs/benchmarks.md)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from voxhost.engines.onnx_device import ARENA_SHRINKAGE, ShrinkingSession, session_options
from voxhost.engines.threads import OnnxThreads
from voxhost.ops.memory import configure_allocator, start_serving, trim


def rss_mib() -> float:
    gc.collect()
    trim()  # as the idle server does
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024


def test_sessions_use_the_arena_and_every_run_shrinks_it():
    assert session_options(OnnxThreads(2)).enable_cpu_mem_arena is True
    assert session_options(OnnxThreads(2)).intra_op_num_threads == 2
    assert session_options(OnnxThreads(1), cpu_mem_arena=False).enable_cpu_mem_arena is False

    class Recorder:
        def run(self, output_names, input_feed, run_options=None):
            return run_options.get_run_config_entry(ARENA_SHRINKAGE[0])

    assert ShrinkingSession(Recorder()).run(None, {}) == "cpu:0"


def test_a_long_synthesis_leaves_no_buffers_resident(eval_audio):
    pytest.importorskip("piper", reason="piper is the optional GPL extra")
    from voxhost.engines.tts.piper import PiperEngine

    configure_allocator()
    engine = PiperEngine(threads=1)
    engine.device = "cpu"
    engine.load()
    engine.warm_up()
    start_serving()  # as the server synthesises: buffers up to 32 MiB reused from the heap
    lines = [s.strip() for s in (eval_audio.parent / "tts_sentences.txt").read_text().splitlines() if s.strip()]
    before = rss_mib()
    audio = engine.synthesize(" ".join(lines[:5]), engine.resolve_voice(engine.default_voice))
    assert len(audio) > 10 * engine.sample_rate  # a paragraph: well over ten seconds of speech
    assert rss_mib() - before < 40  # with the arena: about +130 MiB
