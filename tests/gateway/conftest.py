"""Gateway fixtures: a second real `voxhost serve` process as the upstream,
a fault-injecting upstream, and gateways (real apps on real ports) sharing
the session server's loaded models."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from faulty_upstream import UPSTREAM_KEY, FaultyUpstream

from voxhost_testing import LiveServer, free_port

SRC = Path(__file__).resolve().parents[2] / "src"



@pytest.fixture(scope="session")
def upstream_process(tmp_path_factory):
    """`voxhost serve` in its own process: whisper-base and hibari, the
    upstream of a tiny.en-first gateway. It requires UPSTREAM_KEY, as a
    cloud API would."""
    import hashlib

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "VOXHOST_PORT": str(port), "VOXHOST_STT_MODELS": "whisper-base",
           "VOXHOST_TTS_ENGINES": "hibari", "VOXHOST_TTS_CACHE_ENABLED": "false", "VOXHOST_LOG_LEVEL": "warning",
           # Realtime finals through the gateway must not be dropped as late on a loaded CI box.
           "VOXHOST_REALTIME_MAX_FINAL_WAIT_SECONDS": "120",
           "VOXHOST_API_KEYS": "gateway:" + hashlib.sha256(UPSTREAM_KEY.encode()).hexdigest()}
    log = tmp_path_factory.mktemp("upstream") / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        yield base + "/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.fixture(scope="session")
def faulty():
    upstream = FaultyUpstream()
    with LiveServer(upstream.app) as live:
        upstream.base_url = live.base_url + "/v1"
        yield upstream


@pytest.fixture
def gateway(server, settings):
    """gateway(setup=fn(app), **settings) -> a running gateway app (LiveServer) with the
    session's engines, tiny.en as its default model."""
    stack = contextlib.ExitStack()

    def start(*, setup=None, **overrides):
        from pydantic import SecretStr

        from voxhost.api.app import create_app

        overrides.setdefault("stt_models", ["whisper-tiny.en", "whisper-base"])
        if isinstance(overrides.get("upstream_api_key"), str):  # as the environment would give it
            overrides["upstream_api_key"] = SecretStr(overrides["upstream_api_key"])
        app = create_app(settings.model_copy(update=overrides), load_models=False)
        state, loaded = app.state.voxhost, server.app.state.voxhost
        state.services.stt_engines.engines = loaded.services.stt_engines.engines
        state.services.tts_engines.engines = loaded.services.tts_engines.engines
        state.services.tts_engines.unavailable = loaded.services.tts_engines.unavailable
        state.ready.set()
        live = stack.enter_context(LiveServer(app))
        if setup is not None:  # after start: some (not ready, draining) would fail the start-up probe
            setup(app)
        return live

    with stack:
        yield start
