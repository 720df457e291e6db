"""`voxhost cache publish` against a local S3 (moto's server): real rendering with the bundled
hibari voice, content-addressed uploads, the manifest a game reads, and the second run reusing
the phrase cache and the bucket."""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from typer.testing import CliRunner

from voxhost_testing import free_port

BUCKET = "studio-voxhost-lines"


@pytest.fixture
def s3_server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def published_env(monkeypatch, tmp_path, s3_server):
    from voxhost.ops.settings import get_settings

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "VOXHOST_TTS_ENGINES": "hibari",
                        "VOXHOST_TTS_CACHE_PATH": str(tmp_path / "phrases")}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket=BUCKET)
    yield s3
    get_settings.cache_clear()


def _publish(runner, lines, endpoint, *extra):
    from voxhost.cli.main import app

    return runner.invoke(app, ["cache", "publish", str(lines), "--to", f"s3://{BUCKET}/game/v1.2",
                               "--endpoint-url", endpoint, *extra])


def test_publish_renders_uploads_content_addressed_and_writes_the_manifest(published_env, s3_server, tmp_path):
    s3 = published_env
    lines = tmp_path / "lines.csv"
    lines.write_text("voice,text\nalloy,Halt! Who goes there?\nonyx,The bridge is out. Take the river road.\n")
    runner = CliRunner()
    first = _publish(runner, lines, s3_server)
    assert first.exit_code == 0, first.output
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    audio = [k for k in keys if k.startswith("game/v1.2/lines/")]
    assert len(audio) == 2 and all(k.endswith(".mp3") for k in audio)
    assert "game/v1.2/manifest.json" in keys and any(k.startswith("game/v1.2/manifests/") for k in keys)
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="game/v1.2/manifest.json")["Body"].read())
    by_text = {e["text"]: e for e in manifest["lines"]}
    halt = by_text["Halt! Who goes there?"]
    assert (halt["voice"], halt["model"], halt["format"], halt["engine"]) == ("alloy", "tts-1", "mp3", "hibari")
    assert halt["voice_fingerprint"] and halt["phrase_key"] and halt["engine_version"]
    # What a game does: look the line up, fetch the URL (relative to the prefix), check the bytes.
    obj = s3.get_object(Bucket=BUCKET, Key=f"game/v1.2/{halt['url']}")
    body = obj["Body"].read()
    assert hashlib.sha256(body).hexdigest() == halt["sha256"] == halt["url"].split("/")[-1].split(".")[0]
    assert len(body) == halt["bytes"] > 1000 and body[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    assert obj["ContentType"] == "audio/mpeg" and "immutable" in obj["CacheControl"]
    # The content-addressed manifest is the same document.
    (snapshot,) = [k for k in keys if k.startswith("game/v1.2/manifests/")]
    snap_body = s3.get_object(Bucket=BUCKET, Key=snapshot)["Body"].read()
    assert hashlib.sha256(snap_body).hexdigest() in snapshot
    # Again: every line from the phrase cache, nothing uploaded twice.
    second = _publish(runner, lines, s3_server)
    assert second.exit_code == 0 and "0 new files" in second.output and "from the phrase cache 2" in second.output
    assert len([o for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"] if "/lines/" in o["Key"]]) == 2


def test_a_bad_row_is_reported_and_the_rest_published(published_env, s3_server, tmp_path):
    s3 = published_env
    lines = tmp_path / "lines.csv"
    lines.write_text("alloy,Reinforcements are coming.\nno-such-voice,Hello there.\n")
    result = _publish(CliRunner(), lines, s3_server)
    assert result.exit_code == 1 and "no-such-voice" in result.output
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="game/v1.2/manifest.json")["Body"].read())
    assert [e["text"] for e in manifest["lines"]] == ["Reinforcements are coming."]
    assert manifest["failed"][0]["voice"] == "no-such-voice"


def test_destination_must_be_s3():
    from voxhost.cache.publish import Destination

    assert Destination.parse("s3://b/p/q/").key("manifest.json") == "p/q/manifest.json"
    assert Destination.parse("s3://b").key("x") == "x"
    with pytest.raises(ValueError):
        Destination.parse("https://example.com/x")
