"""Shared fixtures: one real server (real models) per test session.

Models load once; every API test talks to it over real HTTP with real
clients (the official openai SDK, httpx, websockets).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from voxhost.evaluation.dataset import eval_dir, load_manifest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn serving an app in a background thread on a free port."""

    def __init__(self, app, ready_path: str = "/ready", timeout: float = 300.0):
        self.app = app
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", ws_ping_interval=20)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.ready_path = ready_path
        self.timeout = timeout

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base_url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {self.timeout}s")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    from voxhost.ops.settings import Settings

    return Settings(stt_models=["whisper-base", "whisper-tiny.en"], max_upload_bytes=25 * 1024 * 1024,
                    max_audio_seconds=600,
                    # TTS: all three bundled engines; a fresh phrase cache per session.
                    tts_engines=["hibari", "kokoro", "piper"],
                    tts_cache_path=tmp_path_factory.mktemp("tts-cache"))


@pytest.fixture(scope="session")
def server(settings):
    from voxhost.api.app import create_app

    with LiveServer(create_app(settings)) as live:
        yield live


@pytest.fixture(scope="session")
def base_url(server) -> str:
    return server.base_url


@pytest.fixture(scope="session")
def openai_client(base_url):
    from openai import OpenAI

    return OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="session")
def english():
    return load_manifest(lang="en")


@pytest.fixture(scope="session")
def eval_audio() -> Path:
    return eval_dir() / "audio"


@pytest.fixture(scope="session")
def short_clip(eval_audio) -> Path:
    """~2 s of clear read speech: 'in being comparatively modern.'"""
    return eval_audio / "lj_LJ001-0002.wav"
