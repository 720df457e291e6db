"""Loaded TTS engines, OpenAI's model and voice names, and how they resolve.

Engines are found by name: the built-ins below, plus any installed package
that declares an entry point in the `voxhost.tts_engines` group (a studio's
production engine: `mycorp_tts = "mycorp.voxhost:StudioEngine"`), enabled by
listing its name in VOXHOST_TTS_ENGINES. Nothing else changes.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from importlib import metadata
from typing import Callable

from voxhost.engines.tts.base import EngineUnavailable, TtsEngine, UnknownVoice, VoiceSelection, fingerprint
from voxhost.engines.tts.kokoro_voices import ENGLISH_VOICES
from voxhost.errors import InvalidRequest, ModelNotFound
from voxhost.ops.settings import Settings
from voxhost.tts.designs import NAME_PATTERN, DesignStore, VoiceDesign
from voxhost.tts.shaping import SHAPING_VERSION

log = logging.getLogger("voxhost.tts")
_DESIGN_NAME = re.compile(NAME_PATTERN)

OPENAI_VOICES = ("alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage",
                 "shimmer", "verse")
OPENAI_TTS_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")

# The gender of each OpenAI voice as OpenAI presents it; a mapped voice must agree.
OPENAI_VOICE_GENDER = {
    "alloy": "female", "coral": "female", "marin": "female", "nova": "female", "sage": "female",
    "shimmer": "female",
    "ash": "male", "ballad": "male", "cedar": "male", "echo": "male", "fable": "male", "onyx": "male",
    "verse": "male",
}

# OpenAI voice -> bundled voice, per engine (table in docs/architecture.md). Kokoro
# (tts-1-hd) gives each name its own voice: its namesakes where they exist
# (alloy, nova, echo, onyx, fable), the rest chosen by OpenAI's description of
# the voice. An entry "engine:voice" routes the name to another engine: the
# one-voice engines send the names of the other gender to Kokoro (or hibari),
# so a male name never comes back female, or the reverse. Override any entry
# with VOXHOST_TTS_VOICE_MAP (JSON).
_KOKORO_MAP = {
    "alloy": "af_alloy", "ash": "am_michael", "ballad": "bm_daniel", "cedar": "am_liam", "coral": "af_heart",
    "echo": "am_echo", "fable": "bm_fable", "marin": "af_bella", "nova": "af_nova", "onyx": "am_onyx",
    "sage": "af_sarah", "shimmer": "af_aoede", "verse": "am_puck",
}
DEFAULT_VOICE_MAP: dict[str, dict[str, str]] = {
    "hibari": {name: "heart" if gender == "female" else f"kokoro:{_KOKORO_MAP[name]}"
               for name, gender in OPENAI_VOICE_GENDER.items()},
    "piper": {name: "joe" if gender == "male" else "hibari:heart" for name, gender in OPENAI_VOICE_GENDER.items()},
    "kokoro": _KOKORO_MAP,
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
        self.designs = DesignStore(settings.designs_dir)

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
        self.warm_designs()

    def warm_designs(self) -> None:
        """Resolve every saved design now (the design document's pre-loaded voices):
        a design whose base no loaded engine has is reported at start, not on a request."""
        for design in self.designs.all():
            try:
                self.resolve_design(None, design)
            except (InvalidRequest, ModelNotFound) as exc:
                log.warning("designed voice %s unusable here: %s", design.name, exc.message)

    def load(self, name: str, warm_up: bool = True) -> TtsEngine:
        if name in self.engines:
            return self.engines[name]
        factories = engine_factories()
        if name not in factories:
            raise EngineUnavailable(f"unknown TTS engine '{name}'; known: {', '.join(factories)}")
        started = time.perf_counter()
        engine = factories[name](threads=max(1, self.settings.tts_threads), models_dir=self.settings.models_dir)
        engine.device = self.settings.tts_device
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
        the model's engine; a bundled voice id (or blend) picks its own engine; a
        designed voice is its base's, with its shaping attached."""
        voice = (voice or "").strip()
        if _DESIGN_NAME.match(voice) and (design := self.designs.get(voice)) is not None:
            return self.resolve_design(model, design)
        return self._resolve_plain(model, voice)

    def resolve_design(self, model: str | None, design: VoiceDesign) -> tuple[TtsEngine, VoiceSelection]:
        engine, base = self._resolve_plain(model, design.base)
        # The key covers the whole design: editing a voice never serves its old audio.
        return engine, dataclasses.replace(
            base, definition=f"{design.name}={base.definition}",
            fingerprint=fingerprint(base.fingerprint, design.shaping_key(), SHAPING_VERSION), design=design)

    def _resolve_plain(self, model: str | None, voice: str) -> tuple[TtsEngine, VoiceSelection]:
        engine = self.engine_for_model(model)
        if not voice:
            raise UnknownVoice("'voice' is required, e.g. 'alloy' or a voice from GET /v1/audio/voices.")
        if voice.lower() in OPENAI_VOICES:
            return self._resolve_openai(engine, voice.lower())
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

    def _resolve_openai(self, engine: TtsEngine, name: str) -> tuple[TtsEngine, VoiceSelection]:
        spec = self.voice_map.get(engine.name, {}).get(name, engine.default_voice)
        target, _, routed = spec.partition(":")
        if routed and target in self.engines:  # "kokoro:am_onyx": another engine speaks this name
            return self.engines[target], self.engines[target].resolve_voice(routed)
        if routed:  # the engine it routes to is not loaded: any loaded voice of the right gender
            gender = OPENAI_VOICE_GENDER.get(name)
            for other in self.engines.values():
                match = next((v.id for v in other.voices() if v.gender == gender), None)
                if match is not None:
                    log.warning("voice %s: %s is not loaded; using %s:%s", name, target, other.name, match)
                    return other, other.resolve_voice(match)
            return engine, engine.resolve_voice(engine.default_voice)
        return engine, engine.resolve_voice(spec)

    # --- designed voices ---

    def reserved_names(self) -> set[str]:
        return {*OPENAI_VOICES, *ENGLISH_VOICES, *(v.id for e in self.engines.values() for v in e.voices())}

    def create_design(self, design: VoiceDesign) -> VoiceDesign:
        if design.name in self.reserved_names():
            raise InvalidRequest(f"'{design.name}' is a built-in voice name; choose another.", param="name",
                                 code="reserved_name")
        try:
            self._resolve_plain(None, design.base)
        except InvalidRequest as exc:
            raise InvalidRequest(f"Unknown or invalid base voice: {exc.message}", param="base",
                                 code=exc.code or "invalid_value") from None
        return self.designs.save(design)

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
        rows += [design.describe() for design in self.designs.all()]
        return rows

    def describe_voices(self) -> list[dict]:
        rows = []
        for engine in self.engines.values():
            aliases = self.voice_map.get(engine.name, {})
            for voice in engine.voices():
                rows.append({
                    "id": voice.id, "object": "voice", "engine": engine.name, "language": voice.language,
                    "accent": voice.accent, "gender": voice.gender, "sample_rate": voice.sample_rate, "description": voice.description,
                    "default": voice.id == engine.default_voice,
                    "openai_aliases": sorted(k for k, v in aliases.items() if v == voice.id),
                })
        rows += [design.describe() for design in self.designs.all()]
        return rows
