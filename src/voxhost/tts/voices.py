"""The TTS voice catalog: which engine and voice a request's model and voice names mean.

OpenAI's model names (tts-1, tts-1-hd) map to engines (VOXHOST_TTS_MODEL_ALIASES) and its
13 voice names to a voice per engine (the table below, VOXHOST_TTS_VOICE_MAP); a bundled
voice id (or a blend) picks its own engine; a designed voice (tts/designs.py) is its base
voice with shaping, and its design is part of its cache fingerprint. A line in another
language than English is spoken, for an OpenAI name, by a native voice of the name's
gender in that language (DEFAULT_LANGUAGE_VOICES), on the engine that reads every
language; a voice id or a design speaks it with its own voice (a design may name a
base per language). The catalog also
renders what GET /v1/models and GET /v1/audio/voices list. Engines themselves are
loaded by engines/tts/registry.py, which knows nothing of these names.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass

from voxhost.engines.tts.base import LanguageUnavailable, TtsEngine, UnknownVoice, VoiceSelection, fingerprint
from voxhost.engines.tts.kokoro_voices import VOICES as KOKORO_VOICES
from voxhost.engines.tts.registry import TtsRegistry
from voxhost.errors import InvalidRequest, ModelNotFound
from voxhost.ops.settings import Settings
from voxhost.tts.designs import NAME_PATTERN, DesignStore, VoiceDesign
from voxhost.tts.language_id import NAMES as LANGUAGE_NAMES
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


def _spread(female: str, male: str) -> dict[str, str]:
    """OpenAI's names over a language's native voices of their gender, in the order given (best
    grade first, docs/architecture.md "Languages"), wrapping round when a gender has fewer voices
    than names."""
    voices = {"female": female.split(), "male": male.split()}
    out, taken = {}, {"female": 0, "male": 0}
    for name, gender in OPENAI_VOICE_GENDER.items():
        out[name] = voices[gender][taken[gender] % len(voices[gender])]
        taken[gender] += 1
    return out


# OpenAI voice -> Kokoro voice per language (table in docs/architecture.md): a native voice of the
# name's gender. French has no male voice: its male names speak with FRENCH_MALE (measured in
# docs/benchmarks.md, "Languages"). Override per deployment with VOXHOST_TTS_VOICE_MAP, e.g.
# {"kokoro": {"onyx": {"fr": "pm_alex"}}}.
FRENCH_MALE = "im_nicola"
DEFAULT_LANGUAGE_VOICES: dict[str, dict[str, str]] = {
    "es": _spread("ef_dora", "em_alex em_santa"),
    "fr": _spread("ff_siwis", FRENCH_MALE),
    "hi": _spread("hf_alpha hf_beta", "hm_omega hm_psi"),
    "it": _spread("if_sara", "im_nicola"),
    "ja": _spread("jf_alpha jf_gongitsune jf_tebukuro jf_nezumi", "jm_kumo"),
    "pt": _spread("pf_dora", "pm_alex pm_santa"),
    "zh": _spread("zf_xiaobei zf_xiaoni zf_xiaoxiao zf_xiaoyi", "zm_yunjian zm_yunxi zm_yunxia zm_yunyang"),
}
# The engine that speaks every language: lines an English-only engine's model (tts-1: hibari) gets
# in another language go to it, with the OpenAI name's voice there.
MULTILINGUAL_ENGINE = "kokoro"
ENGLISH = frozenset({"en"})



@dataclass(frozen=True)
class ResolvedVoice:
    """What a request's voice resolves to: the engine that speaks it, the engine's voice,
    and for a designed voice, its design (pace and shaping applied around the engine)."""

    engine: TtsEngine
    selection: VoiceSelection
    design: VoiceDesign | None = None


class VoiceCatalog:
    def __init__(self, engines: TtsRegistry, settings: Settings):
        self.engines = engines
        self.model_aliases = settings.tts_model_aliases
        self.voice_map = {engine: dict(table) for engine, table in DEFAULT_VOICE_MAP.items()}
        # engine -> language -> OpenAI name -> voice, for the languages other than English
        self.language_voices = {MULTILINGUAL_ENGINE: {code: dict(t) for code, t in DEFAULT_LANGUAGE_VOICES.items()}}
        for engine, table in settings.tts_voice_map.items():
            for name, entry in table.items():
                per_language = entry if isinstance(entry, dict) else {"en": entry}
                for code, voice in per_language.items():
                    if code == "en":
                        self.voice_map.setdefault(engine, {})[name] = voice
                    else:
                        self.language_voices.setdefault(engine, {}).setdefault(code, {})[name] = voice
        self.designs = DesignStore(settings.designs_dir)

    def warm_designs(self) -> None:
        """Resolve every saved design now (the design document's pre-loaded voices):
        a design whose base no loaded engine has is reported at start, not on a request."""
        for design in self.designs.all():
            try:
                self.resolve(None, design)
            except (InvalidRequest, ModelNotFound) as exc:
                log.warning("designed voice %s unusable here: %s", design.name, exc.message)

    # --- resolution -------------------------------------------------------------------------

    def engine_for_model(self, model: str | None) -> TtsEngine:
        loaded = self.engines.engines
        if not model:
            return self.engines.default_engine
        name = self.model_aliases.get(model, model)
        if name in loaded:
            return loaded[name]
        if name in self.engines.unavailable:
            raise ModelNotFound(f"The model '{model}' is not available here: {self.engines.unavailable[name]}",
                                param="model")
        raise ModelNotFound(
            f"The model '{model}' does not exist. Available: {', '.join(self.model_names())}.", param="model"
        )

    def resolve(self, model: str | None, voice: str | VoiceDesign,
                languages: frozenset[str] = ENGLISH) -> ResolvedVoice:
        """The voice for a request whose text is in `languages` (ISO 639-1). OpenAI voice names
        map through the table of the model's engine, per language; a bundled voice id (or blend)
        picks its own engine and speaks every language; a designed voice (saved, by name, or an
        unsaved one being auditioned) is its base's (or its per-language base's), with its design."""
        if isinstance(voice, VoiceDesign):
            return self._resolve_design(model, voice, languages)
        voice = (voice or "").strip()
        if _DESIGN_NAME.match(voice) and (design := self.designs.get(voice)) is not None:
            return self._resolve_design(model, design, languages)
        return self._resolve_plain(model, voice, languages)

    def _resolve_design(self, model: str | None, design: VoiceDesign,
                        languages: frozenset[str] = ENGLISH) -> ResolvedVoice:
        base = self._resolve_plain(model, design.base, (languages - set(design.bases)) or ENGLISH)
        engine, selection = base.engine, base.selection
        per_language = {}
        for code in sorted(languages & set(design.bases)):
            other = self._resolve_plain(model, design.bases[code], frozenset({code}))
            if other.engine is not engine:
                raise self._bad_base(design, code, engine)
            per_language[code] = other.selection
        if per_language:
            try:
                selection = engine.with_languages(selection, per_language)
            except InvalidRequest:
                raise self._bad_base(design, min(per_language), engine) from None
        # The key covers the whole design: editing a voice never serves its old audio.
        selection = dataclasses.replace(
            selection, definition=f"{design.name}={selection.definition}",
            fingerprint=fingerprint(selection.fingerprint, design.shaping_key(), SHAPING_VERSION))
        return ResolvedVoice(engine, selection, design)

    @staticmethod
    def _bad_base(design: VoiceDesign, code: str, engine: TtsEngine) -> InvalidRequest:
        return InvalidRequest(f"Designed voice '{design.name}': its base for '{code}' "
                              f"({design.bases[code][:40]}) is not a voice of {engine.name}, its base's engine.",
                              param="voice", code="invalid_value")

    def _resolve_plain(self, model: str | None, voice: str, languages: frozenset[str] = ENGLISH) -> ResolvedVoice:
        engine = self.engine_for_model(model)
        if not voice:
            raise UnknownVoice("'voice' is required, e.g. 'alloy' or a voice from GET /v1/audio/voices.")
        if voice.lower() in OPENAI_VOICES:
            resolved = self._resolve_openai(engine, voice.lower(), languages)
        else:
            resolved = self._resolve_id(engine, voice)
        self._check_speaks(resolved.engine, languages, voice)
        return resolved

    @staticmethod
    def _check_speaks(engine: TtsEngine, languages: frozenset[str], voice: str) -> None:
        """Nothing if `engine` reads every language of the line, else the 400 that says why not."""
        missing = sorted(languages - engine.languages)
        if not missing:
            return
        code = missing[0]
        if (extra := engine.missing_reader(code)) is not None:
            raise LanguageUnavailable(extra)
        raise InvalidRequest(f"Voice '{voice[:40]}' ({engine.name}) speaks {', '.join(sorted(engine.languages))} "
                             f"only, and this line is in {LANGUAGE_NAMES.get(code, code)}: use an OpenAI voice name "
                             f"or a {MULTILINGUAL_ENGINE} voice (GET /v1/audio/voices).", param="language",
                             code="unsupported_language")

    def _resolve_id(self, engine: TtsEngine, voice: str) -> ResolvedVoice:
        try:
            return ResolvedVoice(engine, engine.resolve_voice(voice))
        except UnknownVoice as first:
            for other in self.engines.engines.values():
                if other is not engine:
                    try:
                        return ResolvedVoice(other, other.resolve_voice(voice))
                    except UnknownVoice:
                        continue
            raise UnknownVoice(
                f"Voice '{voice[:60]}' does not exist. Use an OpenAI voice name ({', '.join(OPENAI_VOICES)}) "
                f"or a voice id from GET /v1/audio/voices."
            ) from first

    def _resolve_openai(self, engine: TtsEngine, name: str, languages: frozenset[str] = ENGLISH) -> ResolvedVoice:
        multilingual = self.engines.engines.get(MULTILINGUAL_ENGINE)
        if not languages <= engine.languages and multilingual is not None:
            # tts-1 is hibari, which reads English only: a line in another language is Kokoro's,
            # all of it, so the character keeps one engine (and one English voice) for the line.
            engine = multilingual
        english = self._resolve_openai_english(engine, name)
        engine = english.engine
        tables = self.language_voices.get(engine.name, {})
        per_language = {code: engine.resolve_voice(tables[code][name])
                        for code in sorted(languages - ENGLISH) if name in tables.get(code, {})}
        if not per_language:
            return english
        return ResolvedVoice(engine, engine.with_languages(english.selection, per_language))

    def _resolve_openai_english(self, engine: TtsEngine, name: str) -> ResolvedVoice:
        loaded = self.engines.engines
        spec = self.voice_map.get(engine.name, {}).get(name, engine.default_voice)
        target, _, routed = spec.partition(":")
        if routed and target in loaded:  # "kokoro:am_onyx": another engine speaks this name
            return ResolvedVoice(loaded[target], loaded[target].resolve_voice(routed))
        if routed:  # the engine it routes to is not loaded: any loaded voice of the right gender
            gender = OPENAI_VOICE_GENDER.get(name)
            for other in loaded.values():
                match = next((v.id for v in other.voices() if v.gender == gender), None)
                if match is not None:
                    log.warning("voice %s: %s is not loaded; using %s:%s", name, target, other.name, match)
                    return ResolvedVoice(other, other.resolve_voice(match))
            return ResolvedVoice(engine, engine.resolve_voice(engine.default_voice))
        return ResolvedVoice(engine, engine.resolve_voice(spec))

    # --- designed voices ---

    def reserved_names(self) -> set[str]:
        return {*OPENAI_VOICES, *KOKORO_VOICES, *(v.id for e in self.engines.engines.values() for v in e.voices())}

    def create_design(self, design: VoiceDesign) -> VoiceDesign:
        if design.name in self.reserved_names():
            raise InvalidRequest(f"'{design.name}' is a built-in voice name; choose another.", param="name",
                                 code="reserved_name")
        try:
            self._resolve_plain(None, design.base)
        except InvalidRequest as exc:
            raise InvalidRequest(f"Unknown or invalid base voice: {exc.message}", param="base",
                                 code=exc.code or "invalid_value") from None
        if design.bases:
            try:
                self._resolve_design(None, design, frozenset(design.bases))
            except InvalidRequest as exc:
                raise InvalidRequest(f"Invalid 'bases': {exc.message}", param="bases",
                                     code=exc.code or "invalid_value") from None
        return self.designs.save(design)

    # --- listings -----------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        loaded = self.engines.engines
        aliases = [m for m, e in self.model_aliases.items() if e in loaded]
        return [*aliases, *loaded]

    def describe_models(self) -> list[dict]:
        rows: list[dict] = []
        for alias, target in self.model_aliases.items():
            if target in self.engines.engines:
                rows.append({"id": alias, "target": target, "loaded": True})
        for name, engine in self.engines.engines.items():
            rows.append({"id": name, "loaded": True, "description": engine.description, "license": engine.license})
        rows += [design.describe() for design in self.designs.all()]
        return rows

    def describe_voices(self) -> list[dict]:
        rows: list[dict] = []
        for engine in self.engines.engines.values():
            aliases = self.voice_map.get(engine.name, {})
            tables = self.language_voices.get(engine.name, {})
            for voice in engine.voices():
                code = voice.language.split("-")[0]
                # The OpenAI names this voice answers: in English (any voice), or in its own language.
                named = aliases if code == "en" else tables.get(code, {})
                rows.append({
                    "id": voice.id, "object": "voice", "engine": engine.name, "language": voice.language,
                    "accent": voice.accent, "gender": voice.gender, "sample_rate": voice.sample_rate,
                    "description": voice.description,
                    "default": voice.id == engine.default_voice,
                    "openai_aliases": sorted(k for k, v in named.items() if v == voice.id),
                    # What it can be asked to speak: its own language natively, the others with its accent.
                    "languages": sorted(engine.languages),
                })
        rows += [design.describe() for design in self.designs.all()]
        return rows
