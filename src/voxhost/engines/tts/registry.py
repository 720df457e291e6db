"""Loaded TTS engines, OpenAI's model and voice names, and how they resolve.

Engines are found by name: the built-ins below, plus any installed package
that declares an entry point in the `voxhost.tts_engines` group (a studio's
production engine: `mycorp_tts = "mycorp.voxhost:StudioEngine"`), enabled by
listing its name in VOXHOST_TTS_ENGINES. Nothing else changes.
"""

from __future__ import annotations

import logging
import time
from importlib import metadata
from typing import Callable

from voxhost.engines.tts.base import EngineUnavailable, TtsEngine, UnknownVoice, VoiceSelection
from voxhost.errors import ModelNotFound
from voxhost.ops.settings import Settings

log = logging.getLogger("voxhost.tts")

OPENAI_VOICES = ("alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage",
                 "shimmer", "verse")
OPENAI_TTS_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")

# OpenAI voice -> bundled voice, per engine. One-voice engines map every name to
# their voice; Kokoro maps by the OpenAI voice's character (female/male), puts
# its clearest voices on the most used names, and gives some names blends. Override any entry with VOXHOST_TTS_VOICE_MAP (JSON).
DEFAULT_VOICE_MAP: dict[str, dict[str, str]] = {
    "hibari": {name: "heart" for name in OPENAI_VOICES},
    "piper": {name: "joe" for name in OPENAI_VOICES},
    "kokoro": {  # clearest English first: round-trip WER in docs/architecture.md
        "alloy": "jf_gongitsune", "ash": "jm_kumo", "ballad": "jm_kumo(3)+jf_alpha(1)", "cedar": "jm_kumo",
        "coral": "jf_gongitsune(1)+jf_nezumi(1)", "echo": "jm_kumo", "fable": "jm_kumo(2)+jf_nezumi(1)",
        "marin": "jf_tebukuro", "nova": "jf_nezumi", "onyx": "jm_kumo", "sage": "jf_alpha(1)+jf_gongitsune(1)",
        "shimmer": "jf_tebukuro", "verse": "jm_kumo",
    },
}


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


class TtsRegistry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.engines: dict[str, TtsEngine] = {}
        self.unavailable: dict[str, str] = {}  # configured but not installed -> why
        self.voice_map = {engine: dict(table) for engine, table in DEFAULT_VOICE_MAP.items()}
        for engine, table in settings.tts_voice_map.items():
            self.voice_map.setdefault(engine, {}).update(table)

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

    def load(self, name: str, warm_up: bool = True) -> TtsEngine:
        if name in self.engines:
            return self.engines[name]
        factories = engine_factories()
        if name not in factories:
            raise EngineUnavailable(f"unknown TTS engine '{name}'; known: {', '.join(factories)}")
        started = time.perf_counter()
        engine = factories[name](threads=max(1, self.settings.tts_threads), models_dir=self.settings.models_dir)
        engine.load()
        if warm_up:
            engine.warm_up()
        self.engines[name] = engine
        log.info("loaded TTS engine %s (%s) in %.1fs", name, engine.model_version, time.perf_counter() - started)
        return engine

    # --- resolution -------------------------------------------------------------------------

    def engine_for_model(self, model: str | None) -> TtsEngine:
        if not model:
            return self.default_engine
        name = self.settings.tts_model_aliases.get(model, model)
        if name in self.engines:
            return self.engines[name]
        if name in self.unavailable:
            raise ModelNotFound(f"The model '{model}' is not available here: {self.unavailable[name]}", param="model")
        raise ModelNotFound(
            f"The model '{model}' does not exist. Available: {', '.join(self.model_names())}.", param="model"
        )

    def resolve(self, model: str | None, voice: str) -> tuple[TtsEngine, VoiceSelection]:
        """(engine, voice) for a request. OpenAI voice names map through the table of
        the model's engine; a bundled voice id (or blend) picks its own engine."""
        engine = self.engine_for_model(model)
        voice = (voice or "").strip()
        if not voice:
            raise UnknownVoice("'voice' is required, e.g. 'alloy' or a voice from GET /v1/audio/voices.")
        if voice.lower() in OPENAI_VOICES:
            spec = self.voice_map.get(engine.name, {}).get(voice.lower(), engine.default_voice)
            return engine, engine.resolve_voice(spec)
        try:
            return engine, engine.resolve_voice(voice)
        except UnknownVoice as first:
            for other in self.engines.values():
                if other is not engine:
                    try:
                        return other, other.resolve_voice(voice)
                    except UnknownVoice:
                        continue
            raise UnknownVoice(
                f"Voice '{voice[:60]}' does not exist. Use an OpenAI voice name ({', '.join(OPENAI_VOICES)}) "
                f"or a voice id from GET /v1/audio/voices."
            ) from first

    # --- description --------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        aliases = [m for m, e in self.settings.tts_model_aliases.items() if e in self.engines]
        return [*aliases, *self.engines]

    def describe_models(self) -> list[dict]:
        rows = []
        for alias, target in self.settings.tts_model_aliases.items():
            if target in self.engines:
                rows.append({"id": alias, "target": target, "loaded": True})
        for name, engine in self.engines.items():
            rows.append({"id": name, "loaded": True, "description": engine.description, "license": engine.license})
        return rows

    def describe_voices(self) -> list[dict]:
        rows = []
        for engine in self.engines.values():
            aliases = self.voice_map.get(engine.name, {})
            for voice in engine.voices():
                rows.append({
                    "id": voice.id, "object": "voice", "engine": engine.name, "language": voice.language,
                    "gender": voice.gender, "sample_rate": voice.sample_rate, "description": voice.description,
                    "default": voice.id == engine.default_voice,
                    "openai_aliases": sorted(k for k, v in aliases.items() if v == voice.id),
                })
        return rows
