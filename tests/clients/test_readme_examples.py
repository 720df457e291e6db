"""The README's examples, run as a newcomer would run them: each code block marked
`<!-- example: NAME -->` in README.md is written to NAME and run (Python with this venv's
interpreter, JavaScript with Node and the pinned openai SDK) against a real server, its
`127.0.0.1:8000` / `localhost:8000` pointed at the test's servers. Nothing else is changed;
TLS is trusted through the environment, as the README says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from voxhost.audio.decode import decode_audio
from voxhost.stt.wer import wer

README = Path(__file__).resolve().parents[2] / "README.md"
NODE_DIR = Path(__file__).resolve().parent / "node_modules" / ".readme-examples"  # resolves the pinned SDK
BLOCK = re.compile(r"<!-- example: (\S+) -->\n```\w+\n(.*?)```", re.S)
EXPECTED = {"transcribe.py", "speech_to_file.py", "speak.py", "designed_voice.py", "lip_sync.py", "live.py",
            "live.mjs"}


def examples() -> dict[str, str]:
    return dict(BLOCK.findall(README.read_text()))


def test_the_readme_shows_every_example_a_newcomer_needs():
    assert set(examples()) == EXPECTED


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, eval_audio, short_clip, speech_pcm) -> Path:
    """The files the examples read: a player's recording (player.wav), and a live turn as
    24 kHz 16-bit mono, as a WAV (player_24k.wav) and raw (player_24k.pcm)."""
    cwd = tmp_path_factory.mktemp("readme")
    (cwd / "player.wav").write_bytes(short_clip.read_bytes())
    pcm = Path(speech_pcm).read_bytes()
    (cwd / "player_24k.pcm").write_bytes(pcm)
    with wave.open(str(cwd / "player_24k.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(24_000)
        out.writeframes(pcm)
    return cwd


def test_transcribe(base_url, workdir):
    out = _run("transcribe.py", _local(examples()["transcribe.py"], base_url), workdir)
    assert wer(["in being comparatively modern."], [out.decode()]) == 0, out


def test_speech_to_a_file_and_to_a_player(base_url, workdir):
    _run("speech_to_file.py", _local(examples()["speech_to_file.py"], base_url), workdir)
    assert decode_audio((workdir / "gate.mp3").read_bytes()).size > 16_000  # over a second of speech
    pcm = _run("speak.py", _local(examples()["speak.py"], base_url), workdir)  # stdout: what a player gets
    audio = np.frombuffer(pcm, "<i2")
    assert audio.size > 24_000 * 2 and np.abs(audio).max() > 3000  # seconds of 24 kHz speech, not silence


def test_designed_voice(base_url, workdir):
    try:
        _run("designed_voice.py", _local(examples()["designed_voice.py"], base_url), workdir)
        voice = httpx.get(base_url + "/v1/audio/voices/grumpy_dwarf").json()
        assert (voice["pitch_semitones"], voice["effect"]) == (-3, "cave")
        assert decode_audio((workdir / "dwarf.mp3").read_bytes()).size > 8_000
    finally:
        httpx.delete(base_url + "/v1/audio/voices/grumpy_dwarf")


def test_lip_sync(base_url, workdir):
    out = _run("lip_sync.py", _local(examples()["lip_sync.py"], base_url), workdir).decode()
    words = [line.split()[-1] for line in out.splitlines() if " s  " in line]
    assert words[:3] == ["Welcome", "back", "traveller"], out
    assert re.search(r"\d\.\d\d s of audio for \$0\.\d{6}", out), out


def test_live_python(open_tls_server, workdir, reference):
    out = _run("live.py", _tls(examples()["live.py"], open_tls_server), workdir,
               env={"SSL_CERT_FILE": open_tls_server.ca_file}).decode()
    lines = out.strip().splitlines()
    assert any(line.startswith("...") for line in lines[:-1]), out  # partials while it was spoken
    assert wer([reference], [lines[-1]]) <= 0.1, out
    print("\n" + json.dumps({"client": "README live.py", "transcript": lines[-1]}))


def test_live_node(open_tls_server, workdir, reference, node_sdk):
    out = _run("live.mjs", _tls(examples()["live.mjs"], open_tls_server), workdir,
               env={"NODE_EXTRA_CA_CERTS": open_tls_server.ca_file}, node=node_sdk).decode()
    lines = out.strip().splitlines()
    assert any(line.startswith("...") for line in lines[:-1]), out
    assert wer([reference], [lines[-1]]) <= 0.1, out
    print("\n" + json.dumps({"client": "README live.mjs", "transcript": lines[-1]}))


def _run(name: str, code: str, cwd: Path, env: dict | None = None, node: Path | None = None) -> str:
    if name.endswith(".mjs"):
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        path = NODE_DIR / name
        command = [str(node), str(path)]
    else:
        path = cwd / name
        command = [sys.executable, str(path)]
    path.write_text(code)
    done = subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, timeout=240)
    assert done.returncode == 0, (name, done.stdout[-2000:], done.stderr.decode(errors="replace")[-3000:])
    return done.stdout


def _local(code: str, base_url: str) -> str:
    return code.replace("http://127.0.0.1:8000", base_url)


def _tls(code: str, server) -> str:
    port = server.base_url.rsplit(":", 1)[1]
    return code.replace("https://localhost:8000", f"https://localhost:{port}")
