"""tts/consent.py: the phrase check's threshold, the fields, and the store that
keeps only the record of consent (never the recording)."""

from __future__ import annotations

import json

import pytest

from voxhost.errors import InvalidRequest
from voxhost.tts.consent import (CONSENT_PHRASE, MAX_CONSENT_WER, ConsentNotFound, ConsentRefused, ConsentStore,
                                 check_language, check_name, check_phrase)


def test_the_phrase_passes_with_a_few_misheard_words_and_another_sentence_does_not():
    assert check_phrase(CONSENT_PHRASE.upper().replace(".", "")) == 0  # case and punctuation don't count
    words = CONSENT_PHRASE.split()
    misheard = " ".join(["I'm"] + words[2:])  # "I am" heard as "I'm": 2 of 21 words
    assert 0 < check_phrase(misheard) <= MAX_CONSENT_WER
    with pytest.raises(ConsentRefused) as err:
        check_phrase("in being comparatively modern.")
    assert err.value.param == "recording" and CONSENT_PHRASE in err.value.message
    with pytest.raises(ConsentRefused):
        check_phrase("")


def test_name_and_language_are_checked():
    assert check_name("  Mira's voice ") == "Mira's voice"
    for bad in (None, "", "   ", "x" * 129):
        with pytest.raises(InvalidRequest) as err:
            check_name(bad)
        assert err.value.param == "name"
    assert check_language("en-GB") == "en-GB"
    for bad in (None, "de", "EN"):
        with pytest.raises(InvalidRequest) as err:
            check_language(bad)
        assert err.value.param == "language"


def test_a_saved_consent_is_found_by_id_on_any_server_and_nothing_else_is(tmp_path):
    record = ConsentStore(tmp_path).save("Mira", "en")
    assert record["object"] == "audio.voice_consent" and record["id"].startswith("cons_")
    assert ConsentStore(tmp_path).get(record["id"]) == record  # a second store: another server
    saved = list((tmp_path / "consents").iterdir())
    assert [p.name for p in saved] == [record["id"] + ".json"]  # the record only: no audio, no temp file
    assert set(json.loads(saved[0].read_text())) == {"id", "object", "name", "language", "created_at"}
    for bad in ("cons_" + "0" * 24, "../consents/" + record["id"], record["id"] + ".json", 7):
        with pytest.raises(ConsentNotFound):
            ConsentStore(tmp_path).get(bad)
