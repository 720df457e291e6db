"""The cross-region voices sync (deploy/aws/lambdas/voices_sync), two regions' EFS directories
against one S3 bucket (moto, in process): what one region creates, edits or deletes is in the
other after one run of each."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import boto3
import pytest

HANDLER = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "lambdas" / "voices_sync" / "handler.py"


@pytest.fixture
def h():
    spec = importlib.util.spec_from_file_location("voices_sync_handler", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def s3(monkeypatch):
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="voxhost-voices")
        yield client


def _voice(root: Path, name: str, pitch: float) -> None:
    (root / f"{name}.json").write_text(json.dumps({"name": name, "base": "am_onyx", "pitch_semitones": pitch}))


def test_created_edited_and_deleted_voices_reach_the_other_region(h, s3, tmp_path):
    us, eu = tmp_path / "us-east-1", tmp_path / "eu-west-1"
    us.mkdir()
    _voice(us, "grumpy_dwarf", -3)
    (us / "consents").mkdir()
    (us / "consents" / "c1.json").write_text('{"id": "c1"}')
    assert h.sync(s3, "voxhost-voices", us)["uploaded"] == 2
    assert h.sync(s3, "voxhost-voices", eu)["downloaded"] == 2
    assert json.loads((eu / "grumpy_dwarf.json").read_text())["pitch_semitones"] == -3
    assert (eu / "consents" / "c1.json").is_file()
    # Edited in eu: reaches us.
    _voice(eu, "grumpy_dwarf", -5)
    assert h.sync(s3, "voxhost-voices", eu)["uploaded"] == 1
    assert h.sync(s3, "voxhost-voices", us)["downloaded"] == 1
    assert json.loads((us / "grumpy_dwarf.json").read_text())["pitch_semitones"] == -5
    # Deleted in us: stays deleted everywhere (not brought back from eu's copy).
    (us / "grumpy_dwarf.json").unlink()
    assert h.sync(s3, "voxhost-voices", us)["deleted_remote"] == 1
    assert h.sync(s3, "voxhost-voices", eu)["deleted_local"] == 1
    assert not (eu / "grumpy_dwarf.json").exists()
    # Nothing changed: nothing moves.
    assert set(h.sync(s3, "voxhost-voices", eu).values()) == {0}


def test_a_voice_edited_in_two_regions_at_once_keeps_s3s(h, s3, tmp_path):
    us, eu = tmp_path / "us", tmp_path / "eu"
    us.mkdir()
    _voice(us, "elf", 2)
    h.sync(s3, "voxhost-voices", us)
    h.sync(s3, "voxhost-voices", eu)
    _voice(us, "elf", 4)
    _voice(eu, "elf", 6)
    h.sync(s3, "voxhost-voices", us)  # us first: S3 now has 4
    counts = h.sync(s3, "voxhost-voices", eu)
    assert counts["conflicts"] == 1
    assert json.loads((eu / "elf.json").read_text())["pitch_semitones"] == 4


def test_handler_reads_its_environment(h, s3, tmp_path):
    root = tmp_path / "voices"
    root.mkdir()
    _voice(root, "orc", -7)
    counts = h.handler({}, s3=s3, environ={"BUCKET": "voxhost-voices", "VOICES_DIR": str(root),
                                           "BUCKET_REGION": "us-east-1"})
    assert counts["uploaded"] == 1
