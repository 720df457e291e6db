"""Versioned models: the manifest written at release is what a server checks before loading."""

from __future__ import annotations

import json

import pytest

from voxhost.ops.model_manifest import ManifestMismatch, verify_manifest, write_manifest


def _release(tmp_path):
    root = tmp_path / "2026-12-06"
    (root / "models--org--whisper" / "snapshots" / "abc").mkdir(parents=True)
    (root / "models--org--whisper" / "snapshots" / "abc" / "model.bin").write_bytes(b"\x01" * 3000)
    (root / "models--org--whisper" / "snapshots" / "abc" / "config.json").write_text('{"a": 1}')
    (root / ".locks").mkdir()
    (root / ".locks" / "x.lock").write_text("")  # hub lock files are not part of a release
    return root


def test_written_then_verified(tmp_path):
    root = _release(tmp_path)
    manifest = write_manifest(root, "2026-12-06")
    assert manifest["version"] == "2026-12-06" and len(manifest["files"]) == 2
    assert json.loads((root / "manifest.json").read_text()) == manifest
    assert verify_manifest(root / "manifest.json")["files"] == manifest["files"]


@pytest.mark.parametrize("damage", ["truncate", "delete", "change"])
def test_a_damaged_release_fails_naming_the_file(tmp_path, damage):
    root = _release(tmp_path)
    write_manifest(root, "v2")
    model = root / "models--org--whisper" / "snapshots" / "abc" / "model.bin"
    if damage == "truncate":  # an interrupted sync
        model.write_bytes(b"\x01" * 100)
    elif damage == "delete":
        model.unlink()
    else:
        model.write_bytes(b"\x02" * 3000)
    with pytest.raises(ManifestMismatch, match="model.bin (missing|differs)"):
        verify_manifest(root / "manifest.json")


def test_a_server_with_a_bad_release_never_turns_ready(tmp_path):
    """The load fails before any model loads: /ready stays 503 and the deployment rolls back."""
    from voxhost.api.app import _load_models, build_state
    from voxhost.ops.settings import Settings

    root = _release(tmp_path)
    write_manifest(root, "v3")
    (root / "models--org--whisper" / "snapshots" / "abc" / "config.json").write_text('{"a": 2}')
    state = build_state(Settings(models_manifest=root / "manifest.json", stt_models=["whisper-tiny.en"],
                                 tts_engines=[], cache_dir=tmp_path / "cache"))
    _load_models(state)
    assert not state.ready.is_set() and "config.json differs" in state.load_error
    assert not state.services.stt_engines.engines  # nothing loaded from a release that fails its manifest


def test_cli_writes_and_checks(tmp_path):
    from typer.testing import CliRunner

    from voxhost.cli.main import app

    root = _release(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["models-manifest", str(root), "--version", "v4"]).exit_code == 0
    assert runner.invoke(app, ["models-manifest", str(root), "--version", "v4", "--check"]).exit_code == 0
    (root / "models--org--whisper" / "snapshots" / "abc" / "model.bin").unlink()
    result = runner.invoke(app, ["models-manifest", str(root), "--version", "v4", "--check"])
    assert result.exit_code == 1 and "missing" in result.output
