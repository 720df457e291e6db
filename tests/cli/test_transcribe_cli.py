"""`voxhost` CLI: transcribe files locally, list models."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from voxhost.cli.main import app

runner = CliRunner()


def test_transcribe_directory_to_srt(tmp_path, eval_audio):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("lj_LJ001-0002.wav", "sc_arm_yes.wav"):
        shutil.copy(eval_audio / name, src / name)
    (src / "readme.txt").write_text("not audio")  # ignored: not an audio suffix
    out = tmp_path / "out"
    result = runner.invoke(app, ["transcribe", str(src), "--format", "srt", "--out", str(out),
                                 "--model", "whisper-tiny.en"])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["lj_LJ001-0002.srt", "sc_arm_yes.srt"]
    srt = (out / "lj_LJ001-0002.srt").read_text()
    assert srt.startswith("1\n00:00:00,") and "modern" in srt.lower()


def test_transcribe_reports_bad_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage" * 10)
    result = runner.invoke(app, ["transcribe", str(bad), "--model", "whisper-tiny.en"])
    assert result.exit_code == 1
    assert "Could not decode" in " ".join(result.output.split())


def test_models_json():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {"whisper-base", "whisper-tiny.en"} <= {r["id"] for r in rows}


def test_transcribe_applies_the_servers_checks(eval_audio):
    """The CLI goes through the STT service: English-only models refuse to
    translate, and language tags are mapped (or refused) as over REST."""
    clip = str(eval_audio / "lj_LJ001-0002.wav")
    refused = runner.invoke(app, ["transcribe", clip, "--model", "whisper-tiny.en", "--translate"])
    assert refused.exit_code == 2 and "English-only" in " ".join(refused.output.split())
    unknown = runner.invoke(app, ["transcribe", clip, "--model", "whisper-tiny.en", "--language", "xx"])
    assert unknown.exit_code == 2 and "Unsupported language" in " ".join(unknown.output.split())
    mapped = runner.invoke(app, ["transcribe", clip, "--model", "whisper-tiny.en", "--language", "en-US"])
    assert mapped.exit_code == 0 and "modern" in mapped.output.lower()
