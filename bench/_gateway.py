"""Shared by the gateway benchmarks: an upstream `voxhost serve` (whisper-base,
hibari) and a gateway `voxhost serve` (whisper-tiny.en) in front of it, as
separate processes, as in production."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

from _ready import wait_ready  # bench/ is on sys.path when run as a script

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(**env: str):
    """`voxhost serve` with VOXHOST_* `env` (lower-case names); yields its base URL."""
    port = free_port()
    full = {**os.environ, "PYTHONPATH": str(SRC), "VOXHOST_PORT": str(port), "VOXHOST_LOG_LEVEL": "warning",
            **{f"VOXHOST_{k.upper()}": v for k, v in env.items()}}
    proc = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve"], env=full,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_ready(f"http://127.0.0.1:{port}"):
            raise SystemExit("server did not become ready")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@contextlib.contextmanager
def upstream_and_gateway(**gateway_env: str):
    """(upstream base URL, gateway base URL): base upstream, tiny.en gateway."""
    with serve(stt_models="whisper-base", tts_engines="hibari") as upstream, \
            serve(stt_models="whisper-tiny.en", tts_engines="hibari", upstream_url=upstream + "/v1",
                  **gateway_env) as gateway:
        yield upstream, gateway
