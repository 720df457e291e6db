"""Loaded TTS engines, found by name.

Engines are found by name: the built-ins below, plus any installed package
that declares an entry point in the `voxhost.tts_engines` group (a studio's
production engine: `mycorp_tts = "mycorp.voxhost:StudioEngine"`), enabled by
listing its name in VOXHOST_TTS_ENGINES. A factory is called with the
keyword arguments `threads`, `models_dir` and `device` and returns a `TtsEngine`.
Which engine and voice a request's names mean is tts/voices.py's business.
"""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from typing import Any

from voxhost.engines.tts.base import EngineUnavailable, TtsEngine
from voxhost.errors import ModelNotFound
from voxhost.ops.settings import Settings

log = logging.getLogger("voxhost.tts")

# Names that moved to the voice catalog (tts/voices.py); still importable from here, with a warning.
_MOVED_TO_CATALOG = ("OPENAI_VOICES", "OPENAI_TTS_MODELS", "OPENAI_VOICE_GENDER", "DEFAULT_VOICE_MAP")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_CATALOG:
        warnings.warn(f"voxhost.engines.tts.registry.{name} moved to voxhost.tts.voices.{name}",
                      DeprecationWarning, stacklevel=2)
        from voxhost.tts import voices

        return getattr(voices, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _builtin_factories() -> dict[str, Callable[..., TtsEngine]]:
    # Imported lazily by name: piper's module imports nothing GPL until load().
    def hibari(**kw):
        from voxhost.engines.tts.hibari import HibariEngine
        return HibariEngine(**kw)

    def kokoro(**kw):
        from voxhost.engines.tts.kokoro import KokoroEngine
        return KokoroEngine(**kw)

    def piper(**kw):
        from voxhost.engines.tts.piper import PiperEngine
        return PiperEngine(**kw)

    return {"hibari": hibari, "kokoro": kokoro, "piper": piper}


def engine_factories() -> dict[str, Callable[..., TtsEngine]]:
    factories = _builtin_factories()
    for entry in metadata.entry_points(group="voxhost.tts_engines"):
        factories.setdefault(entry.name, entry.load)
    return factories


def _build(name: str, factory: Callable[..., TtsEngine], *, threads: int, models_dir, device: str) -> TtsEngine:
    """The engine `factory` makes. A plugin written before engines took `device` in their
    constructor still loads (its device set afterwards, as then), with a warning."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: assume the current signature
        parameters = None
    takes_device = parameters is None or any(
        p.name == "device" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    if takes_device:
        return factory(threads=threads, models_dir=models_dir, device=device)
    warnings.warn(f"TTS engine {name!r}: its factory takes no 'device' argument; engines now receive "
                  "it in the constructor (TtsEngine.__init__)", DeprecationWarning, stacklevel=2)
    engine = factory(threads=threads, models_dir=models_dir)
    engine.device = device
    return engine


class TtsRegistry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.engines: dict[str, TtsEngine] = {}
        self.unavailable: dict[str, str] = {}  # configured but not installed -> why
        self.warm_up_seconds: dict[str, float] = {}

    @property
    def default_engine(self) -> TtsEngine:
        for name in self.settings.tts_engines:
            if name in self.engines:
                return self.engines[name]
        raise ModelNotFound("No text-to-speech engine is loaded.", param="model")

    def load_all(self, warm_up: bool = True) -> None:
        for name in self.settings.tts_engines:
            try:
                self.load(name, warm_up=warm_up)
            except EngineUnavailable as exc:  # an optional engine: serve without it
                self.unavailable[name] = str(exc)
                log.warning("TTS engine %s not loaded: %s", name, exc)
        if self.settings.tts_engines and not self.engines:
            # Configured but none loaded is a broken deployment; none configured
            # (VOXHOST_TTS_ENGINES=) is an STT-only server.
            raise RuntimeError("no TTS engine could be loaded: " + "; ".join(self.unavailable.values()))
        self.load_languages()

    def load_languages(self) -> None:
        """The readers of VOXHOST_TTS_LANGUAGES now, in every loaded engine that reads them, so
        their first line does not wait for them; other languages load on first use."""
        for code in self.settings.tts_languages:
            readers = [engine for engine in self.engines.values() if code in engine.languages]
            if not readers:
                log.warning("TTS language %s not loaded: no loaded engine reads it here", code)
            for engine in readers:
                started = time.perf_counter()
                engine.load_language(code)
                log.info("loaded TTS language %s for %s in %.1fs", code, engine.name, time.perf_counter() - started)

    def load(self, name: str, warm_up: bool = True) -> TtsEngine:
        if name in self.engines:
            return self.engines[name]
        factories = engine_factories()
        if name not in factories:
            raise EngineUnavailable(f"unknown TTS engine '{name}'; known: {', '.join(factories)}")
        started = time.perf_counter()
        engine = _build(name, factories[name], threads=max(0, self.settings.tts_threads),
                        models_dir=self.settings.models_dir, device=self.settings.tts_device)
        engine.spin_us = self.settings.tts_spin_us
        engine.native_ops = self.settings.tts_native_ops
        engine.load()
        if warm_up:
            warm_started = time.perf_counter()
            engine.warm_up()
            # The scheduler's estimate of a job until it has measured one (scheduler/expected_wait.py).
            self.warm_up_seconds[name] = time.perf_counter() - warm_started
        self.engines[name] = engine
        log.info("loaded TTS engine %s (%s) in %.1fs", name, engine.model_version, time.perf_counter() - started)
        return engine
