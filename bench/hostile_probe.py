"""The hostile tester's probe, rerunnable: bad inputs, orphaned work, bombs, memory.

Starts a real `voxhost serve` (from `--src`, so the same script measures an
older tree for before/after) and reports:

- bad inputs: how many were tried over REST, TTS and WebSocket, and how many
  got a 4xx, a 5xx, or crashed the server / connection;
- orphaned work: N clients post a clip and hang up while queued behind one
  busy decoder; then the time a fresh request takes (before the fix it
  waited behind every orphan);
- a running orphan: a 90 s request whose client hangs up 1 s in, mid-decode;
  the server CPU spent after the hang-up, and a fresh request's wait behind it;
- a 2-hour FLAC: how long until it is refused;
- memory: RSS series for a soak (mixed REST + live sessions, with some large
  decodes) and after a WebSocket flood, against the warm baseline.

    PYTHONPATH=src python bench/hostile_probe.py --out bench/results/hostile_probe.json
    PYTHONPATH=src python bench/hostile_probe.py --src /tmp/base/src --skip-memory   # an older tree
    PYTHONPATH=src python bench/hostile_probe.py --only-running-orphan [--src /tmp/base/src]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures as cf
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import websockets
from _ready import wait_ready  # bench/ is on sys.path when run as a script

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serving_throughput import cpu_seconds  # noqa: E402

from voxhost.evaluation.dataset import load_manifest
from voxhost_testing import free_port, long_speech_wav, open_request, silent_flac  # noqa: E402  (the tests' helpers)

URL = "/v1/audio/transcriptions"
MODEL = "whisper-tiny.en"
IDLE_S = 15.0  # after load stops: longer than the server's idle-trim interval (10 s)


class Server:
    def __init__(self, src: Path, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(src), "VOXHOST_LOG_LEVEL": "warning",
                    "VOXHOST_TTS_ENGINES": "hibari", **{f"VOXHOST_{k.upper()}": str(v) for k, v in env.items()}}

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(self.port), "--stt-model", MODEL],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_ready(self.url, timeout=180):
            raise RuntimeError("server did not start")
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


# ---- bad inputs -------------------------------------------------------------

def rest_cases(clip: bytes) -> list[tuple[str, dict]]:
    """(name, httpx.request kwargs) for hostile REST/TTS requests."""
    post = lambda **kw: {"method": "POST", "url": URL, **kw}  # noqa: E731
    speech = lambda body: {"method": "POST", "url": "/v1/audio/speech", "json": body}  # noqa: E731
    file = {"file": ("a.wav", clip)}
    cases = [
        ("no body", post()),
        ("json body", post(json={"file": "x"})),
        ("no file", post(data={"model": "whisper-1"}, files={"x": ("a", b"1")})),
        ("file as text", post(data={"file": "abc"})),
        ("two files", post(files=[("file", ("a.wav", clip)), ("file", ("b.wav", clip))])),
        ("empty file", post(files={"file": ("a.wav", b"")})),
        ("junk audio", post(files={"file": ("a.mp3", os.urandom(20_000))})),
        ("truncated header", post(files={"file": ("a.wav", clip[:30])})),
        ("huge model name", post(files=file, data={"model": "m" * 20_000})),
        ("unknown model", post(files=file, data={"model": "gpt-9"})),
        ("null byte model", post(files=file, data={"model": "whisper\x00-1"})),
        ("model as file", post(files={**file, "model": ("m", b"whisper-1")})),
        ("bad response_format", post(files=file, data={"response_format": "xml"})),
        ("temperature nan", post(files=file, data={"temperature": "nan"})),
        ("temperature inf", post(files=file, data={"temperature": "inf"})),
        ("temperature 5", post(files=file, data={"temperature": "5"})),
        ("beam 0", post(files=file, data={"beam_size": "0"})),
        ("beam 1e9", post(files=file, data={"beam_size": "1000000000"})),
        ("bad granularity", post(files=file, data={"timestamp_granularities[]": "char",
                                                   "response_format": "verbose_json"})),
        ("stream srt", post(files=file, data={"stream": "true", "response_format": "srt"})),
        ("stream maybe", post(files=file, data={"stream": "maybe"})),
        ("translate on .en", post(files=file, data={"model": MODEL}) | {"url": "/v1/audio/translations"}),
        ("prompt 1 MB", post(files=file, data={"prompt": "x" * 1_000_000})),
        ("hotwords 1 MB", post(files=file, data={"hotwords": "y " * 500_000})),
        ("bad multipart", {"method": "POST", "url": URL, "content": b"--x\r\nnonsense",
                           "headers": {"content-type": "multipart/form-data; boundary=x"}}),
        ("no boundary", {"method": "POST", "url": URL, "content": b"abc",
                         "headers": {"content-type": "multipart/form-data"}}),
        ("GET transcriptions", {"method": "GET", "url": URL}),
        ("unknown route", {"method": "GET", "url": "/v1/nothing"}),
        ("path traversal model", {"method": "GET", "url": "/v1/models/..%2F..%2Fetc%2Fpasswd"}),
        ("query api_key", {"method": "GET", "url": "/v1/models?api_key=vxh_wrong"}),
        ("tts no input", speech({"model": "tts-1", "voice": "alloy"})),
        ("tts empty input", speech({"model": "tts-1", "voice": "alloy", "input": ""})),
        ("tts huge input", speech({"model": "tts-1", "voice": "alloy", "input": "a" * 100_000})),
        ("tts null input", speech({"model": "tts-1", "voice": "alloy", "input": None})),
        ("tts bad voice", speech({"model": "tts-1", "voice": "nobody", "input": "hi"})),
        ("tts huge voice", speech({"model": "tts-1", "voice": "v" * 20_000, "input": "hi"})),
        ("tts bad model", speech({"model": "m" * 20_000, "voice": "alloy", "input": "hi"})),
        ("tts bad format", speech({"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "xm"})),
        ("tts speed 0", speech({"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 0})),
        ("tts speed nan", {"method": "POST", "url": "/v1/audio/speech",
                           "content": b'{"model":"tts-1","voice":"alloy","input":"hi","speed":NaN}',
                           "headers": {"content-type": "application/json"}}),
        ("tts invalid json", {"method": "POST", "url": "/v1/audio/speech", "content": b'{"input": "hi",,}',
                              "headers": {"content-type": "application/json"}}),
        ("tts list body", speech([1, 2, 3])),
        ("tts control chars", speech({"model": "tts-1", "voice": "alloy", "input": "\x00\x01\x02"})),
    ]
    for lang in ("en-US", "xx", "klingon", "en-", "zz-ZZ", "e" * 200, "en;drop"):
        for stream in ("false", "true"):
            expected_ok = lang == "en-US"
            cases.append((f"language {lang[:12]} stream={stream}" + (" (valid)" if expected_ok else ""),
                          post(files=file, data={"language": lang, "stream": stream, "model": "whisper-1"})))
    return cases


WS_CASES = [
    "{not json", "[1,2]", "null", '"str"', json.dumps({"type": "nope"}),
    json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}),
    json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()}),
    json.dumps({"type": "input_audio_buffer.commit"}),
    json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "transcription": {"model": "whisper-1", "language": "xx"}}}}}),
    json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "transcription": {"model": "m" * 20_000}}}}}),
    json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "threshold": 1e308}}}}}),
    json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": -1}}}}}),
    json.dumps({"type": "session.update", "session": "x"}),
    json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "transcription": {"model": "whisper-1", "language": 7}}}}}),
]


async def ws_probe(url: str) -> list[tuple[str, str]]:
    """(case, outcome): 'error-event', 'ok', 'closed:<code>' or 'crash:<exc>'."""
    outcomes = []
    ws_url = url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    async with websockets.connect(ws_url, max_size=None) as ws:
        await asyncio.wait_for(ws.recv(), 30)  # session.created
        for message in [*WS_CASES, b"\x00\x01\x02"]:
            try:
                await ws.send(message)
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                outcomes.append((str(message)[:40], "error-event" if event["type"] == "error" else "ok"))
            except websockets.ConnectionClosed as closed:
                outcomes.append((str(message)[:40], f"closed:{closed.rcvd.code if closed.rcvd else None}"))
                break
            except Exception as exc:
                outcomes.append((str(message)[:40], f"crash:{type(exc).__name__}"))
                break
    for query in ("intent=transcription&api_key=vxh_wrong", "intent=conversation", "intent=" + "x" * 5000):
        try:
            async with websockets.connect(url.replace("http://", "ws://") + "/v1/realtime?" + query) as ws:
                await asyncio.wait_for(ws.recv(), 10)
                outcomes.append((query[:40], "ok"))
        except websockets.InvalidStatus as exc:
            outcomes.append((query[:40], f"http:{exc.response.status_code}"))
        except websockets.ConnectionClosed as closed:
            outcomes.append((query[:40], f"closed:{closed.rcvd.code if closed.rcvd else None}"))
        except Exception as exc:
            outcomes.append((query[:40], f"crash:{type(exc).__name__}"))
    return outcomes


def bad_inputs(srv: Server, clip: bytes) -> dict:
    statuses: dict[str, int | str] = {}
    with httpx.Client(base_url=srv.url, timeout=120) as client:
        for name, kw in rest_cases(clip):
            try:
                statuses[name] = client.request(**kw).status_code
            except httpx.HTTPError as exc:
                statuses[name] = f"crash:{type(exc).__name__}"
    statuses["declared 1 TB"] = _raw_status(srv.port, b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                                            b"Content-Type: multipart/form-data; boundary=x\r\n"
                                            b"Content-Length: 1000000000000\r\n\r\nabc")
    ws = asyncio.run(ws_probe(srv.url))
    rest = list(statuses.values())
    return {
        "tried": len(rest) + len(ws),
        "rest_4xx": sum(isinstance(s, int) and 400 <= s < 500 for s in rest),
        "rest_5xx": sum(isinstance(s, int) and s >= 500 for s in rest),
        "rest_2xx": sum(isinstance(s, int) and s < 300 for s in rest),
        "ws_refused_cleanly": sum(o.startswith(("error-event", "closed:1008", "closed:1013", "http:4")) for _, o in ws),
        "crashes": sum(str(s).startswith("crash") for s in rest) + sum(o.startswith("crash") for _, o in ws),
        "server_alive": srv.alive,
        "5xx_cases": [n for n, s in statuses.items() if isinstance(s, int) and s >= 500],
        "2xx_cases": [n for n, s in statuses.items() if isinstance(s, int) and s < 300],
        "rest": statuses,
        "ws": ws,
    }


def _raw_status(port: int, request: bytes) -> int | str:
    """A request httpx won't send (a body shorter than its declared length)."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(request)
            return int(sock.recv(4096).split(b" ", 2)[1])
    except (OSError, ValueError, IndexError) as exc:
        return f"crash:{type(exc).__name__}"


# ---- orphaned work ---------------------------------------------------------------

def orphans(srv: Server, clip: bytes, count: int) -> dict:
    """`count` clients hang up 0.3 s after sending; then a fresh request is timed."""
    def orphan(_):
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(srv.url + URL, files={"file": ("a.wav", clip)}, data={"model": MODEL},
                       timeout=httpx.Timeout(30, read=0.3))

    cpu0 = cpu_seconds(srv.proc.pid)
    with cf.ThreadPoolExecutor(count) as pool:
        list(pool.map(orphan, range(count)))
    start = time.perf_counter()
    fresh = httpx.post(srv.url + URL, files={"file": ("a.wav", clip)}, data={"model": MODEL}, timeout=600)
    # Server CPU for orphans + the fresh request: independent of other load on the machine.
    return {"orphans": count, "fresh_status": fresh.status_code, "fresh_s": round(time.perf_counter() - start, 2),
            "server_cpu_s": round(cpu_seconds(srv.proc.pid) - cpu0, 1)}


def _decoder_busy(srv: Server) -> bool:
    for line in httpx.get(srv.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("voxhost_in_flight{") and f'engine="stt:{MODEL}"' in line:
            return float(line.rsplit(" ", 1)[1]) > 0
    return False


def running_orphan(srv: Server, long_clip: bytes, clip: bytes, hang_up_s: float = 1.0) -> dict:
    """A long request whose client hangs up `hang_up_s` after its decode started: the
    server CPU spent after the hang-up until the decoder is free (before the fix, the
    rest of the file), then, in a second round, how long a fresh short request sent
    at the hang-up takes (one decoder: it waits behind the orphan)."""
    def hang_up() -> None:
        with open_request(srv.url, URL, files={"file": ("long.wav", long_clip)}, data={"model": MODEL}):
            while not _decoder_busy(srv):
                time.sleep(0.05)
            time.sleep(hang_up_s)

    hang_up()
    cpu0, start = cpu_seconds(srv.proc.pid), time.perf_counter()
    while _decoder_busy(srv):
        time.sleep(0.05)
    out = {"hang_up_s": hang_up_s, "decoder_busy_after_s": round(time.perf_counter() - start, 2),
           "server_cpu_after_s": round(cpu_seconds(srv.proc.pid) - cpu0, 2)}
    hang_up()
    start = time.perf_counter()
    fresh = httpx.post(srv.url + URL, files={"file": ("a.wav", clip)}, data={"model": MODEL}, timeout=600)
    return {**out, "fresh_status": fresh.status_code, "fresh_s": round(time.perf_counter() - start, 2),
            "fresh_queue_ms": fresh.headers.get("x-queue-ms")}


def bomb(srv: Server) -> dict:
    data = silent_flac(2 * 3600)
    start = time.perf_counter()
    r = httpx.post(srv.url + URL, files={"file": ("bomb.flac", data)}, data={"model": MODEL}, timeout=600)
    return {"bytes": len(data), "status": r.status_code, "refused_s": round(time.perf_counter() - start, 3)}


# ---- memory ---------------------------------------------------------------------------

def _pcm24k(audio_bytes: bytes) -> bytes:
    from voxhost.audio.decode import decode_audio
    from voxhost.loadtest.realtime_client import pcm16

    return pcm16(decode_audio(audio_bytes), 24_000)


async def _live_session(url: str, pcm: bytes) -> None:
    ws_url = url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    async with websockets.connect(ws_url, max_size=None) as ws:
        await ws.recv()
        for offset in range(0, len(pcm), 48_000):
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm[offset:offset + 48_000]).decode()}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        try:
            while json.loads(await asyncio.wait_for(ws.recv(), 60))["type"] not in (
                    "conversation.item.input_audio_transcription.completed", "error"):
                pass
        except (TimeoutError, websockets.ConnectionClosed):
            pass


def _wav(pcm24k: bytes) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24_000)
        w.writeframes(pcm24k)
    return buf.getvalue()


def memory(srv: Server, clips: list[bytes], soak_s: float, flood: int) -> dict:
    """RSS (MB) at warm, then the peak during and the level IDLE_S after each
    phase: a soak of short requests and live sessions, large legitimate
    decodes, a burst of decompression bombs, and a WebSocket flood."""
    def post(clip: bytes) -> int | str:
        try:
            return httpx.post(srv.url + URL, files={"file": ("a.wav", clip)}, data={"model": MODEL},
                              timeout=300).status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    for clip in clips[:4]:  # warm: the first decodes allocate the model's working memory
        post(clip)
    asyncio.run(_live_session(srv.url, _pcm24k(clips[0])))
    time.sleep(IDLE_S)
    warm = srv.rss_mb()
    pcm = _pcm24k(clips[1])
    ten_minutes = _wav(np.zeros(24_000 * 600, dtype="<i2").tobytes())  # 29 MB at 24 kHz: a long decode
    bombs = silent_flac(2 * 3600)

    def soak():
        end = time.perf_counter() + soak_s
        n = 0
        while time.perf_counter() < end:
            with cf.ThreadPoolExecutor(3) as pool:
                list(pool.map(post, [clips[(n + i) % len(clips)] for i in range(3)]))
            asyncio.run(_live_session(srv.url, pcm))
            n += 3

    async def flood_sessions():
        await asyncio.gather(*[_live_session(srv.url, pcm) for _ in range(flood)], return_exceptions=True)

    phases = {
        "soak": soak,
        "large_decodes": lambda: _parallel(post, [ten_minutes[:20_000_000]] * 4),  # ~7 min each, under 25 MB
        "bombs": lambda: _parallel(post, [bombs] * 8),
        "ws_flood": lambda: asyncio.run(flood_sessions()),
    }
    out = {"warm_mb": round(warm), "idle_s": IDLE_S}
    for name, run in phases.items():
        peak = [srv.rss_mb()]
        stop = threading.Event()
        sampler = threading.Thread(target=lambda peak=peak, stop=stop: [peak.append(srv.rss_mb()) for _ in iter(lambda: stop.wait(0.2), True)])
        sampler.start()
        start = time.perf_counter()
        run()
        stop.set()
        sampler.join()
        seconds = time.perf_counter() - start
        time.sleep(IDLE_S)
        after = srv.rss_mb()
        out[name] = {"seconds": round(seconds, 1), "peak_mb": round(max(peak)), "after_mb": round(after),
                     "after_vs_warm": round(after / warm, 3)}
    return out


def _parallel(fn, items) -> list:
    with cf.ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(fn, items))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=Path("src"), help="the source tree to serve")
    parser.add_argument("--orphans", type=int, default=20)
    parser.add_argument("--soak-seconds", type=float, default=30.0)
    parser.add_argument("--flood", type=int, default=8)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only-memory", action="store_true")
    parser.add_argument("--only-orphans", action="store_true")
    parser.add_argument("--only-running-orphan", action="store_true")
    parser.add_argument("--long-seconds", type=float, default=90.0, help="the running orphan's length")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    english = load_manifest(lang="en")
    clips = [u.audio.read_bytes() for u in english if 2.0 <= u.duration <= 8.0][:12]

    result = {"src": str(args.src), "load_avg_start": os.getloadavg()}
    with Server(args.src, stt_num_workers=1, max_audio_seconds=3600) as srv:
        long_clip = lambda: long_speech_wav(english[:40], args.long_seconds)
        if args.only_orphans:
            result["orphans"] = orphans(srv, clips[-1], args.orphans)
        elif args.only_running_orphan:
            result["running_orphan"] = running_orphan(srv, long_clip(), clips[-1])
        elif not args.only_memory:
            result["bad_inputs"] = bad_inputs(srv, clips[0])
            result["bomb_2h_flac"] = bomb(srv)
            result["orphans"] = orphans(srv, clips[-1], args.orphans)
            result["running_orphan"] = running_orphan(srv, long_clip(), clips[-1])
        if not args.skip_memory and not (args.only_orphans or args.only_running_orphan):
            result["memory"] = memory(srv, clips, args.soak_seconds, args.flood)
        result["server_alive_at_end"] = srv.alive
    result["load_avg_end"] = os.getloadavg()
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
