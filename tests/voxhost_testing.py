"""Test helpers importable from any test module (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import io
import socket
import ssl
import threading
import time

import av
import httpx
import numpy as np
import uvicorn
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def metric_sum(base_url: str, name: str, **labels: str) -> float:
    """Sum of the /metrics samples called `name` whose labels include `labels`."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def wait_until(check, timeout: float, what: str) -> None:
    """Poll `check` until it holds; a server still starting (connection refused) counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Gate:
    """Scheduler work that holds its worker until released (from the event loop)."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self):
        self.started.set()
        assert self.release.wait(10), "gate never released"
        return "gate"


async def until(predicate, timeout: float = 5.0) -> None:
    """Poll `predicate` on the event loop until it holds (a condition, not a timing)."""
    import asyncio

    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


class LiveServer:
    """uvicorn serving an app in a background thread on a free port; with `tls` (ops/tls.py's
    ServerTls) over https and wss, as `voxhost serve --ssl-certfile/--ssl-keyfile` serves."""

    def __init__(self, app, ready_path: str = "/ready", timeout: float = 300.0, tls=None):
        self.app = app
        self.port = free_port()
        self.tls = tls
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        tls_files = {"ssl_certfile": str(tls.certfile), "ssl_keyfile": str(tls.keyfile)} if tls else {}
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", ws_ping_interval=20,
                                **tls_files)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.ready_path = ready_path
        self.timeout = timeout

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                verify = ssl.create_default_context(cafile=str(self.tls.ca_file)) if self.tls else True
                response = httpx.get(self.base_url + self.ready_path, timeout=2, verify=verify)
                if response.status_code == 200:
                    return self
                if response.headers.get("content-type", "").startswith("application/json") and \
                        response.json().get("status") == "failed":
                    raise RuntimeError(f"server failed to start: {response.json().get('error')}")
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {self.timeout}s")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None,
                        code: str | None = None, *, check_param: bool = True) -> dict:
    """`response` is `status` with OpenAI's error body; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == "invalid_request_error"
    if check_param:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


def silent_flac(seconds: int, rate: int = 8000) -> bytes:
    """A real FLAC of `seconds` of silence: tiny on the wire, long when decoded
    (a decompression bomb). Its header declares the length."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        silence = np.zeros((1, rate * 60), dtype=np.int16)
        for _ in range(seconds // 60):
            frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def median_f0(pcm, rate: int = 24_000) -> float:
    """Median pitch (Hz) of the voiced frames, by WORLD's harvest (pyworld)."""
    import numpy as np
    import pyworld

    f0, _ = pyworld.harvest(np.asarray(pcm, np.float64), rate, f0_floor=60.0, f0_ceil=500.0, frame_period=10.0)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else 0.0


def open_request(base_url: str, path: str, **httpx_kwargs) -> socket.socket:
    """Send a whole request (as httpx would build it) over a raw socket and return the
    socket unread: a client that can hang up at the moment the caller chooses."""
    request = httpx.Request("POST", base_url + path, **httpx_kwargs)
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in request.headers.items()) + "\r\n"
    sock = socket.create_connection((request.url.host, request.url.port), timeout=30)
    sock.sendall(head.encode() + request.read())
    return sock


def long_speech_wav(utterances, seconds: float) -> bytes:
    """Eval utterances end to end, cut to `seconds`, as one 16 kHz WAV (a long file of real speech)."""
    import wave

    from voxhost.audio.decode import decode_audio

    speech = np.concatenate([decode_audio(u.audio.read_bytes()) for u in utterances])
    assert len(speech) >= seconds * 16_000, "not enough speech"
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((np.clip(speech[: int(seconds * 16_000)], -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def power_spectrogram(audio: np.ndarray) -> np.ndarray:
    """|STFT|^2, 1024-sample Hann frames every 256: for comparing two renderings of one line."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::256] * np.hanning(1024)
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2


def whisper_hears(whisper, waves: list[np.ndarray], rate: int) -> str:
    """What Whisper hears of `waves` spoken 0.3 s apart, in one call (it pads every call to 30 s)."""
    from voxhost.audio.pcm import from_pcm16, resample_pcm16, to_pcm16
    from voxhost.engines.stt.base import TranscriptionOptions

    gap = np.zeros(int(0.3 * rate), np.float32)
    wave = np.concatenate([part for w in waves for part in (w, gap)])
    pcm16k = from_pcm16(resample_pcm16(to_pcm16(wave), rate, 16_000))
    return whisper.transcribe(pcm16k, TranscriptionOptions(language="en", beam_size=5, vad_filter=False)).text


def kokoro_feed(kokoro, text: str, voice_id: str) -> dict:
    """The inputs of one Kokoro model call for `text` in `voice_id`, as the engine builds them."""
    from voxhost.engines.tts.g2p import shared_g2p

    voice = kokoro.resolve_voice(voice_id)
    tokens = [kokoro._vocab[c] for c in shared_g2p(voice.data.british)(text) if c in kokoro._vocab]
    return {"tokens": np.array([[0, *tokens, 0]], np.int64), "style": voice.data.rows[len(tokens) - 1].reshape(1, 256),
            "speed": np.array([1.0], np.float32)}


def assert_sounds_alike(a: np.ndarray, b: np.ndarray, what: str, *, correlation: float, spectrum_db: float,
                        loudness: float) -> None:
    """Two renderings of one line: log-power spectrograms correlating >= `correlation`, long-term
    average spectra within a median `spectrum_db`, loudness (RMS) within `loudness` (a fraction)."""
    n = min(a.size, b.size)
    power_a, power_b = power_spectrogram(a[:n]), power_spectrogram(b[:n])
    r = np.corrcoef(np.log10(power_a + 1e-8).ravel(), np.log10(power_b + 1e-8).ravel())[0, 1]
    assert r >= correlation, (what, r)
    apart = np.median(10 * np.abs(np.log10(power_a.mean(0) + 1e-12) - np.log10(power_b.mean(0) + 1e-12)))
    assert apart <= spectrum_db, (what, apart)
    assert abs(np.sqrt(np.mean(b ** 2) / np.mean(a ** 2)) - 1) <= loudness, what
