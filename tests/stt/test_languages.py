"""stt/languages.py: client language tags to Whisper's codes, refused before any work
when Whisper can't decode them; English-only models refuse the rest."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from voxhost.errors import InvalidRequest
from voxhost.stt.languages import check_model_language, language_name, whisper_language


@pytest.mark.parametrize("tag, code", [
    ("en", "en"), ("en-US", "en"), ("EN_gb", "en"), (" de-DE ", "de"), ("pt-BR", "pt"), ("jw", "jw"), (None, None),
])
def test_bcp47_tags_map_to_whisper_codes(tag, code):
    assert whisper_language(tag) == code


@pytest.mark.parametrize("tag", ["xx", "klingon", "en-", "", "e" * 36])
def test_unknown_tags_are_a_400_naming_the_field(tag):
    with pytest.raises(InvalidRequest) as err:
        whisper_language(tag, param="session.language")
    assert err.value.param == "session.language" and err.value.code == "unsupported_language"
    assert len(err.value.message) < 200  # a long tag is not echoed whole


def test_english_only_models_refuse_other_languages_and_translation():
    english_only = SimpleNamespace(name="whisper-tiny.en", multilingual=False)
    check_model_language(english_only, "en")
    check_model_language(english_only, None)
    with pytest.raises(InvalidRequest) as err:
        check_model_language(english_only, "de")
    assert err.value.param == "language"
    with pytest.raises(InvalidRequest) as err:
        check_model_language(english_only, None, "translate")
    assert err.value.param == "model"
    check_model_language(SimpleNamespace(name="whisper-base", multilingual=True), "de", "translate")


def test_language_names_are_whispers():
    assert (language_name("en"), language_name("de"), language_name("jw")) == ("english", "german", "javanese")
