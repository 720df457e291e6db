"""The `simulated-gpu` STT engine honours the engine contract (batching,
cancellation, deadlines) on real speech, through the real scheduler, and is
selectable by name like any engine, including plugins from entry points."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from importlib import metadata

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt import registry as stt_registry
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.engines.stt.simulated import SimulatedGpuEngine
from voxhost.errors import DeadlineExceeded
from voxhost.ops.settings import Settings
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.lanes import Lane
from voxhost.scheduler.stt import SttScheduler

OPTIONS = TranscriptionOptions(language="en", beam_size=1)


@pytest.fixture(scope="module")
def speech(short_clip) -> np.ndarray:
    return decode_audio(short_clip.read_bytes())


async def _until(predicate, timeout=10.0):
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def test_features_are_whispers_and_silence_skips_the_model(speech):
    engine = SimulatedGpuEngine(call_seconds=0, item_seconds=0)
    prepared = engine._prepare(speech, OPTIONS)
    # The encoder input Whisper builds: faster-whisper's log-mel of the clip, padded to 30 s.
    expected = FeatureExtractor()(speech)[:, :-1]
    assert [w.shape for w in prepared.windows] == [(80, 3000)]
    np.testing.assert_array_equal(prepared.windows[0][:, :expected.shape[-1]], expected)
    # A live final's short window (chunk_length), as WhisperEngine pads it.
    short = engine._prepare(speech, TranscriptionOptions(language="en", chunk_length=15))
    assert [w.shape for w in short.windows] == [(80, 1500)]

    assert engine.transcribe(speech, OPTIONS).text == "simulated transcript"
    assert engine.calls == 1
    silent = engine.transcribe(np.zeros(32_000, dtype=np.float32), OPTIONS)
    assert silent.text == "" and engine.calls == 1  # the VAD gate ran; the "GPU" did not


def test_concurrent_requests_share_one_batch(speech):
    engine = SimulatedGpuEngine(call_seconds=0.05, item_seconds=0.01)
    executor = EngineExecutor("sim", workers=1, max_batch=8, max_wait_s=0.05)
    scheduler = SttScheduler(executor)

    async def main():
        clips = [speech, speech[: len(speech) // 2], speech, np.zeros(16_000, dtype=np.float32)]
        return await asyncio.gather(*(scheduler.transcribe(engine, c, OPTIONS) for c in clips))

    results = asyncio.run(main())
    assert [r.text for r in results] == ["simulated transcript"] * 3 + [""]
    assert engine.batch_sizes == [3]  # one model call; the silent clip never reached it
    # Over 30 s of audio is never batched (Whisper seeks through it window by window).
    assert engine.batch_key(np.zeros(31 * 16_000, dtype=np.float32), OPTIONS) is None
    executor.shutdown()


def test_a_cancelled_or_expired_job_is_never_decoded(speech):
    engine = SimulatedGpuEngine(call_seconds=0.3, item_seconds=0)
    executor = EngineExecutor("sim", workers=1)
    scheduler = SttScheduler(executor)

    async def main():
        running = asyncio.ensure_future(scheduler.transcribe(engine, speech, OPTIONS, lane=Lane.BULK))
        await _until(lambda: executor.running == 1)
        cancelled = asyncio.ensure_future(scheduler.transcribe(engine, speech, OPTIONS))
        await _until(lambda: executor.queued == 1)
        cancelled.cancel()
        with pytest.raises(DeadlineExceeded):
            await scheduler.transcribe(engine, speech, OPTIONS, deadline_s=0.01)
        assert (await running).text == "simulated transcript"
        with pytest.raises(asyncio.CancelledError):
            await cancelled

    asyncio.run(main())
    assert engine.calls == 1
    executor.shutdown()


def test_selected_by_name_and_plugins_come_from_entry_points(monkeypatch):
    monkeypatch.setenv("VOXHOST_STT_MODELS", "simulated-gpu")
    monkeypatch.setenv("VOXHOST_STT_SIMULATED_CALL_MS", "0")
    registry = stt_registry.SttRegistry(Settings())
    registry.load_all()
    engine = registry.get("whisper-1")
    assert isinstance(engine, SimulatedGpuEngine) and engine.call_seconds == 0
    assert engine.calls == 1  # warmed up like any engine

    made = []

    def studio_engine(name, settings):
        made.append(name)
        return SimulatedGpuEngine(name, call_seconds=0, item_seconds=0, text="studio")

    class Plugin(metadata.EntryPoint):  # what an installed package's entry point loads
        def load(self):
            return studio_engine

    plugin = Plugin("studio-stt", "studio:make", "voxhost.stt_engines")
    real = metadata.entry_points
    monkeypatch.setattr(stt_registry.metadata, "entry_points",
                        lambda group: [plugin] if group == "voxhost.stt_engines" else real(group=group))
    assert registry.load("studio-stt", warm_up=False).text == "studio"
    assert made == ["studio-stt"]


def test_a_server_on_simulated_gpu_answers_the_openai_sdk(short_clip):
    from openai import OpenAI

    from voxhost.api.app import create_app
    from voxhost_testing import LiveServer

    settings = Settings(stt_models=["simulated-gpu"], tts_engines=[], stt_simulated_call_ms=1)
    with LiveServer(create_app(settings)) as live:
        client = OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
        with short_clip.open("rb") as f:
            text = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
        assert text.strip() == "simulated transcript"
        assert live.app.state.voxhost.services.stt_engines.get("simulated-gpu").device == "cuda"  # batching on, as on a GPU


@pytest.mark.parametrize("device, text_only, expected", [("cpu", True, 25), ("cuda", True, 30), ("cpu", False, 30)])
def test_rest_clips_decode_in_a_window_sized_to_the_clip_on_a_cpu(speech, monkeypatch, device, text_only, expected):
    from voxhost.stt.service import SttService

    settings = Settings(stt_models=["simulated-gpu"], stt_rest_text_only=text_only,
                        stt_simulated_call_ms=0, stt_simulated_item_ms=0)
    registry = stt_registry.SttRegistry(settings)
    registry.load_all(warm_up=False)
    executor = EngineExecutor("sim", workers=1)
    service = SttService(registry, SttScheduler(executor), settings)
    engine = registry.get(None)
    monkeypatch.setattr(engine, "device", device)
    text = asyncio.run(service.transcribe(engine, speech, OPTIONS, timestamps_needed=False)).text  # REST json
    assert text == "simulated transcript"
    # A ~2 s clip: 25 s, REST's floor (live finals: 15 s), on a CPU; a GPU's encoder keeps its 30 s.
    assert engine.last_window_s == expected
    executor.shutdown()


def test_a_plugin_written_against_the_structural_contract_still_loads(monkeypatch):
    """Before the contract was an ABC, an engine implemented its methods without subclassing it:
    such a plugin still loads (with a DeprecationWarning) and gets the contract's defaults."""

    class OldEngine:  # no n_mels, compute_type, num_workers, description: they were optional
        multilingual = False
        device = "cpu"

        def __init__(self, name):
            self.name = name

        def transcribe_stream(self, audio, options):
            return SimulatedGpuEngine(call_seconds=0, item_seconds=0, text="old").transcribe_stream(audio, options)

    class Plugin(metadata.EntryPoint):
        def load(self):
            return lambda name, settings: OldEngine(name)

    plugin = Plugin("old-stt", "old:make", "voxhost.stt_engines")
    real = metadata.entry_points
    monkeypatch.setattr(stt_registry.metadata, "entry_points",
                        lambda group: [plugin] if group == "voxhost.stt_engines" else real(group=group))
    with pytest.warns(DeprecationWarning, match="does not subclass"):
        engine = stt_registry.SttRegistry(Settings(stt_models=["old-stt"])).load("old-stt")
    assert (engine.name, engine.multilingual, engine.num_workers, engine.n_mels, engine.gate_threshold) == \
        ("old-stt", False, 1, None, None)
    assert engine.batch_key(np.zeros(16_000, np.float32), OPTIONS) is None  # no batching methods: decoded alone
    assert engine.transcribe(np.zeros(16_000, np.float32), replace(OPTIONS, vad_filter=False)).text == "old"
