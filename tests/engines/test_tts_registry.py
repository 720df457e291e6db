"""Engine registry and voice catalog: the server runs without the optional GPL piper
extra, and model/voice names resolve as documented."""

from __future__ import annotations

import sys
import warnings

import pytest

from voxhost.engines.tts.registry import TtsRegistry
from voxhost.errors import ModelNotFound
from voxhost.tts.voices import OPENAI_VOICE_GENDER, OPENAI_VOICES, VoiceCatalog


def test_server_works_without_piper(settings, monkeypatch):
    # As if `pip install voxhost` without the [piper] extra: importing piper fails.
    for name in [m for m in sys.modules if m == "piper" or m.startswith("piper.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "piper", None)
    registry = TtsRegistry(settings.model_copy(update={"tts_engines": ["hibari", "piper"]}))
    registry.load_all(warm_up=False)
    assert list(registry.engines) == ["hibari"]
    assert "voxhost[piper]" in registry.unavailable["piper"]
    catalog = VoiceCatalog(registry, registry.settings)
    with pytest.raises(ModelNotFound) as caught:
        catalog.engine_for_model("piper")
    assert "pip install" in caught.value.message and caught.value.param == "model"
    voice = catalog.resolve("tts-1", "alloy")
    assert (voice.engine.name, voice.selection.definition) == ("hibari", "heart")
    assert catalog.engine_for_model(None) is voice.engine  # the default is the first loaded engine


def test_no_model_answers_an_openai_name_with_the_other_gender(settings):
    # Kokoro not loaded: hibari's male names cannot go to Kokoro, so they fall back to piper's joe.
    for engines in (["hibari", "kokoro", "piper"], ["hibari", "piper"]):
        registry = TtsRegistry(settings.model_copy(update={"tts_engines": engines}))
        registry.load_all(warm_up=False)
        catalog = VoiceCatalog(registry, registry.settings)
        for model in catalog.model_names():
            for name in OPENAI_VOICES:
                resolved = catalog.resolve(model, name)
                engine, voice = resolved.engine, resolved.selection
                gender = {v.id: v.gender for v in engine.voices()}[voice.definition]
                assert gender == OPENAI_VOICE_GENDER[name], (engines, model, name, engine.name, voice.definition)


def test_the_voice_tables_old_import_path_still_works_and_warns():
    """Plugin code that imported OpenAI's voice tables from the engine registry keeps working:
    they moved to the voice catalog (tts/voices.py), and the old path says so."""
    import voxhost.engines.tts.registry as old

    with pytest.warns(DeprecationWarning, match="voxhost.tts.voices.OPENAI_VOICES"):
        assert old.OPENAI_VOICES is OPENAI_VOICES
    with pytest.warns(DeprecationWarning, match="DEFAULT_VOICE_MAP"):
        from voxhost.engines.tts.registry import DEFAULT_VOICE_MAP
    from voxhost.tts.voices import DEFAULT_VOICE_MAP as moved

    assert DEFAULT_VOICE_MAP is moved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from voxhost.engines.tts.registry import TtsRegistry as current  # what stays is not deprecated
    assert current is TtsRegistry
