"""tts/designs.py: designed voices are validated, stored atomically by name, and
seen by every server sharing the directory (two stores on one folder stand in
for two servers on one EFS path)."""

from __future__ import annotations

import pytest

from voxhost.errors import InvalidRequest
from voxhost.tts.designs import DesignStore, VoiceDesign


def _design(name: str = "orc-captain", **fields) -> VoiceDesign:
    return VoiceDesign.parse({"name": name, "base": "am_onyx", **fields})


@pytest.mark.parametrize("body, param", [
    ({"name": "Bad Name", "base": "am_onyx"}, "name"),
    ({"name": "x", "base": ""}, "base"),
    ({"name": "x", "base": "am_onyx", "pitch_semitones": 13}, "pitch_semitones"),
    ({"name": "x", "base": "am_onyx", "speed": float("nan")}, "speed"),
    ({"name": "x", "base": "am_onyx", "effect": "laser"}, "effect"),
    ({"name": "x", "base": "am_onyx", "colour": "red"}, "colour"),
    ([], None),
])
def test_a_bad_design_is_a_400_naming_its_field(body, param):
    with pytest.raises(InvalidRequest) as err:
        VoiceDesign.parse(body)
    # The wrong JSON type (a list for the object) is invalid_type, as on every route.
    assert err.value.param == param
    assert err.value.code == ("invalid_type" if param is None else "invalid_value")


def test_shaping_key_ignores_what_does_not_change_the_audio():
    a = _design("a", description="gruff", pitch_semitones=-3)
    b = _design("b", description="other", pitch_semitones=-3)
    assert a.shaping_key() == b.shaping_key() and a.shaped
    assert _design("c").shaping_key() != a.shaping_key() and not _design("c").shaped
    assert a.describe()["id"] == "a" and a.describe()["method"] == "designed"


def test_a_voice_saved_on_one_server_is_seen_on_another_and_names_are_unique(tmp_path):
    here, there = DesignStore(tmp_path, refresh_seconds=0), DesignStore(tmp_path, refresh_seconds=0)
    here.save(_design(effect="helmet"))
    assert there.get("orc-captain").effect == "helmet"
    with pytest.raises(InvalidRequest) as err:  # create-if-absent, even from the other server
        there.save(_design(effect="cave"))
    assert err.value.code == "duplicate_voice"
    there.save(_design(effect="cave"), replace=True)
    assert here.get("orc-captain").effect == "cave"
    assert [d.name for d in here.all()] == ["orc-captain"]
    assert not list(tmp_path.glob(".tmp-*"))  # no temp file left behind
    assert there.delete("orc-captain") and not there.delete("orc-captain")
    assert here.get("orc-captain") is None


def test_one_unreadable_file_hides_no_other_voice(tmp_path, caplog):
    store = DesignStore(tmp_path, refresh_seconds=0)
    store.save(_design("good"))
    (tmp_path / "broken.json").write_text("{not json")
    with caplog.at_level("WARNING", logger="voxhost.tts"):
        assert [d.name for d in store.all()] == ["good"]
    assert "broken" in caplog.text


def test_a_missing_directory_is_an_empty_store(tmp_path):
    assert DesignStore(tmp_path / "absent").all() == []
