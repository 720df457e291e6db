"""Loaded STT models by name, with OpenAI's model aliases.

Engines are found by name, as TTS engines are: the built-in `simulated-gpu`
(a benchmark tool, never a default), plus any installed package that declares
an entry point in the `voxhost.stt_engines` group (`mycorp = "mycorp.stt:make"`,
a callable taking (name, settings) and returning a `SpeechToText`). Every other
name is a Whisper model: bundled, a faster-whisper id or a CTranslate2 directory.
Which model a request's name means (OpenAI's aliases) is decided here too: the
names are the engines'.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from importlib import metadata

from voxhost.engines.stt.base import SpeechToText
from voxhost.engines.stt.bundled import BUNDLED_STT, resolve_stt_model
from voxhost.engines.stt.legacy import StructuralEngine
from voxhost.errors import ModelNotFound, echo
from voxhost.ops.settings import Settings

log = logging.getLogger("voxhost.stt")

# OpenAI's transcription model names all map to the configured default.
OPENAI_STT_ALIASES = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")

EngineFactory = Callable[[str, Settings], SpeechToText]


def whisper_engine(name: str, s: Settings) -> SpeechToText:
    from voxhost.engines.stt.whisper import WhisperEngine

    return WhisperEngine(
        name,
        resolve_stt_model(name, s.models_dir),
        device=s.stt_device,
        compute_type=s.stt_compute_type,
        cpu_threads=s.stt_cpu_threads,
        num_workers=s.stt_num_workers,
        download_root=str(s.stt_download_root) if s.stt_download_root else None,
        vad_threshold=s.stt_vad_threshold,
        vad_gate_threshold=s.stt_vad_gate_threshold,
        no_speech_threshold=s.stt_no_speech_threshold,
        vad_trim_over_seconds=s.stt_vad_trim_over_seconds,
        description=BUNDLED_STT.get(name, "faster-whisper model"),
    )


def simulated_gpu_engine(name: str, s: Settings) -> SpeechToText:
    from voxhost.engines.stt.simulated import SimulatedGpuEngine

    return SimulatedGpuEngine(
        name,
        call_seconds=s.stt_simulated_call_ms / 1000.0,
        item_seconds=s.stt_simulated_item_ms / 1000.0,
        text=s.stt_simulated_text,
        vad_gate_threshold=s.stt_vad_gate_threshold,
    )


def engine_factories() -> dict[str, EngineFactory]:
    """Named engines. Built-ins are registered here, not only as entry points,
    so they work from a source tree whose package metadata is older."""
    factories: dict[str, EngineFactory] = {"simulated-gpu": simulated_gpu_engine}
    for entry in metadata.entry_points(group="voxhost.stt_engines"):
        factories.setdefault(entry.name, _plugin(entry))
    return factories


def _plugin(entry: metadata.EntryPoint) -> EngineFactory:
    """Loads the plugin only when its name is configured, then calls it."""
    def make(name: str, settings: Settings) -> SpeechToText:
        return entry.load()(name, settings)
    return make


def factory_for(name: str) -> EngineFactory:
    return engine_factories().get(name, whisper_engine)


class SttRegistry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.engines: dict[str, SpeechToText] = {}
        self.warm_up_seconds: dict[str, float] = {}

    @property
    def default_name(self) -> str:
        return self.settings.stt_models[0]

    def load_all(self, warm_up: bool = True) -> None:
        for name in self.settings.stt_models:
            self.load(name, warm_up=warm_up)

    def load(self, name: str, warm_up: bool = True) -> SpeechToText:
        if name in self.engines:
            return self.engines[name]
        started = time.perf_counter()
        engine = factory_for(name)(name, self.settings)
        if not isinstance(engine, SpeechToText):
            warnings.warn(f"STT engine {name!r} does not subclass voxhost.engines.stt.base.SpeechToText; "
                          "plugins written against the older structural contract keep working for now, "
                          "but should subclass it (its defaults cover the optional parts)",
                          DeprecationWarning, stacklevel=2)
            engine = StructuralEngine(engine)
        if warm_up:
            warm_started = time.perf_counter()
            engine.warm_up()
            # The scheduler's estimate of a job until it has measured one (scheduler/expected_wait.py).
            self.warm_up_seconds[name] = time.perf_counter() - warm_started
        self.engines[name] = engine
        log.info(
            "loaded STT model %s on %s/%s in %.1fs",
            name, engine.device, engine.compute_type, time.perf_counter() - started,
        )
        return engine

    def get(self, requested: str | None) -> SpeechToText:
        name = requested or self.default_name
        if name in OPENAI_STT_ALIASES:
            name = self.default_name
        engine = self.engines.get(name)
        if engine is None:
            available = ", ".join([*OPENAI_STT_ALIASES[:1], *self.engines])
            raise ModelNotFound(
                f"The model '{echo(requested)}' does not exist or is not loaded. Available: {available}.",
                param="model",
            )
        return engine

    def describe(self) -> list[dict]:
        """Every model a client can name, loaded or merely bundled."""
        rows = [{"id": alias, "owned_by": "voxhost", "target": self.default_name, "loaded": True}
                for alias in OPENAI_STT_ALIASES[:1]]
        for name in dict.fromkeys([*self.engines, *BUNDLED_STT]):
            engine = self.engines.get(name)
            description = (engine.description if engine is not None else "") or BUNDLED_STT.get(
                name, "faster-whisper model")
            rows.append({"id": name, "owned_by": "voxhost", "loaded": engine is not None,
                         "description": description})
        return rows
