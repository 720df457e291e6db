"""Engine registry: the server runs without the optional GPL piper extra, and
model/voice names resolve as documented."""

from __future__ import annotations

import sys

import pytest

from voxhost.engines.tts.registry import TtsRegistry
from voxhost.errors import ModelNotFound


def test_server_works_without_piper(settings, monkeypatch):
    # As if `pip install voxhost` without the [piper] extra: importing piper fails.
    for name in [m for m in sys.modules if m == "piper" or m.startswith("piper.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "piper", None)
    registry = TtsRegistry(settings.model_copy(update={"tts_engines": ["hibari", "piper"]}))
    registry.load_all(warm_up=False)
    assert list(registry.engines) == ["hibari"]
    assert "voxhost[piper]" in registry.unavailable["piper"]
    with pytest.raises(ModelNotFound) as caught:
        registry.engine_for_model("piper")
    assert "pip install" in caught.value.message and caught.value.param == "model"
    engine, voice = registry.resolve("tts-1", "alloy")
    assert (engine.name, voice.definition) == ("hibari", "heart")
    assert registry.engine_for_model(None) is engine  # the default is the first loaded engine


def test_no_model_answers_an_openai_name_with_the_other_gender(settings):
    from voxhost.engines.tts.registry import OPENAI_VOICE_GENDER, OPENAI_VOICES

    # Kokoro not loaded: hibari's male names cannot go to Kokoro, so they fall back to piper's joe.
    for engines in (["hibari", "kokoro", "piper"], ["hibari", "piper"]):
        registry = TtsRegistry(settings.model_copy(update={"tts_engines": engines}))
        registry.load_all(warm_up=False)
        for model in registry.model_names():
            for name in OPENAI_VOICES:
                engine, voice = registry.resolve(model, name)
                gender = {v.id: v.gender for v in engine.voices()}[voice.definition]
                assert gender == OPENAI_VOICE_GENDER[name], (engines, model, name, engine.name, voice.definition)
