"""tts/consent.py: the phrase check's threshold, the fields, and the store that
keeps only the record of consent (never the recording)."""

from __future__ import annotations

import json

import pytest

from voxhost.errors import InvalidRequest
from voxhost.tts.consent import (
    CONSENT_PHRASE,
    MAX_CONSENT_WER,
    MAX_SPEAKER_PITCH_SEMITONES,
    ConsentNotFound,
    ConsentRefused,
    ConsentStore,
    SpeakerMismatch,
    check_language,
    check_name,
    check_phrase,
    check_same_speaker,
)
from voxhost.tts.matching import VoiceStats

MIRA = VoiceStats(f0_hz=210.0, centroid_hz=480.0, tilt_db_per_octave=-6.5, voiced_seconds=3.2)


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
    record = ConsentStore(tmp_path).save("Mira", "en", MIRA)
    assert record["object"] == "audio.voice_consent" and record["id"].startswith("cons_")
    assert set(record) == {"id", "object", "name", "language", "created_at"}  # the API's answer
    stored = ConsentStore(tmp_path).get(record["id"])  # a second store: another server
    assert stored == record | {"speaker": MIRA.as_dict()}
    saved = list((tmp_path / "consents").iterdir())
    # The record and the voice's statistics only: no audio, no temp file.
    assert [p.name for p in saved] == [record["id"] + ".json"]
    assert set(json.loads(saved[0].read_text())) == {"id", "object", "name", "language", "created_at", "speaker"}
    for bad in ("cons_" + "0" * 24, "../consents/" + record["id"], record["id"] + ".json", 7):
        with pytest.raises(ConsentNotFound):
            ConsentStore(tmp_path).get(bad)


def test_a_sample_must_be_within_the_pitch_gap_of_the_consent_speaker(tmp_path):
    record = ConsentStore(tmp_path).get(ConsentStore(tmp_path).save("Mira", "en", MIRA)["id"])
    for semitones in (0, 3, -3, MAX_SPEAKER_PITCH_SEMITONES - 0.1, -(MAX_SPEAKER_PITCH_SEMITONES - 0.1)):
        check_same_speaker(record, VoiceStats(MIRA.f0_hz * 2 ** (semitones / 12), 900.0, -3.0, 2.0))
    for semitones in (MAX_SPEAKER_PITCH_SEMITONES + 0.1, -12):
        with pytest.raises(SpeakerMismatch) as err:
            check_same_speaker(record, VoiceStats(MIRA.f0_hz * 2 ** (semitones / 12), 480.0, -6.5, 2.0))
        assert err.value.param == "audio_sample" and err.value.code == "consent_speaker_mismatch"
    with pytest.raises(SpeakerMismatch) as err:
        check_same_speaker({k: v for k, v in record.items() if k != "speaker"}, MIRA)
    assert err.value.param == "consent"
