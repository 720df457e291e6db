"""`voxhost voices`: create, import a cast, list, delete, against a voices directory."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from voxhost.cli.main import app
from voxhost.ops.settings import get_settings

runner = CliRunner()

CAST = """
grumpy_dwarf: {base: "am_onyx(2)+bm_george(1)", pitch_semitones: -3, formant_shift: -0.1, effect: cave}
radio_sergeant: {base: onyx, effect: radio, description: Barks orders over the comms.}
tiny_goblin: {base: af_nova, effect: goblin}
"""


@pytest.fixture
def voices_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VOXHOST_VOICES_DIR", str(tmp_path / "voices"))
    monkeypatch.setenv("VOXHOST_TTS_ENGINES", "kokoro")
    get_settings.cache_clear()
    yield tmp_path / "voices"
    get_settings.cache_clear()


def test_a_cast_is_imported_listed_and_deleted(voices_dir, tmp_path):
    cast = tmp_path / "cast.yaml"
    cast.write_text(CAST)
    result = runner.invoke(app, ["voices", "import", str(cast)])
    assert result.exit_code == 0, result.output
    created = runner.invoke(app, ["voices", "create", "old_smith", "--base", "bm_lewis", "--pitch", "-2",
                                  "--speed", "0.9"])
    assert created.exit_code == 0, created.output
    listed = json.loads(runner.invoke(app, ["voices", "list", "--json"]).stdout)
    assert [v["id"] for v in listed] == ["grumpy_dwarf", "old_smith", "radio_sergeant", "tiny_goblin"]
    assert listed[0]["pitch_semitones"] == -3 and listed[2]["effect"] == "radio"
    assert runner.invoke(app, ["voices", "delete", "old_smith"]).exit_code == 0
    assert not (voices_dir / "old_smith.json").exists()
    assert runner.invoke(app, ["voices", "delete", "old_smith"]).exit_code == 1


def test_bad_designs_are_refused(voices_dir, tmp_path):
    result = runner.invoke(app, ["voices", "create", "alloy", "--base", "am_onyx"])
    assert result.exit_code == 1 and "built-in" in result.output
    cast = tmp_path / "cast.yaml"
    cast.write_text("good: {base: am_echo}\nbad: {base: nobody}\n")
    result = runner.invoke(app, ["voices", "import", str(cast)])
    assert result.exit_code == 1 and "imported 1 of 2" in result.output
