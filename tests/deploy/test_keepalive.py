"""The server's keep-alive is a setting the stack raises above the ALB idle timeout.

A real `voxhost serve`, a real TCP connection: with uvicorn's 5 s default the
server closes an idle connection the ALB would reuse (the ALB answers 502).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import httpx

from voxhost_testing import free_port

IDLE_S = 6.5  # past uvicorn's 5 s default, inside the 9 s configured here


def _get_health(sock: socket.socket) -> bytes:
    """One whole response on the open connection (b"" if the server closed it). Headers and
    body can arrive in separate reads: one recv could leave the body for the next request."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: voxhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)) and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body if head else b""


def test_idle_connection_survives_past_the_default_keepalive():
    port = free_port()
    env = {**os.environ, "VOXHOST_KEEPALIVE_TIMEOUT_S": "9", "VOXHOST_LOG_LEVEL": "warning",
           "VOXHOST_TTS_ENGINES": "hibari"}  # no TTS here: loading Kokoro and piper just slows the start
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(port), "--stt-model", "whisper-tiny.en"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            assert _get_health(sock).startswith(b"HTTP/1.1 200")
            time.sleep(IDLE_S)  # what an ALB connection does between requests
            # Same connection, reused: the server must still hold it open.
            assert _get_health(sock).startswith(b"HTTP/1.1 200")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
