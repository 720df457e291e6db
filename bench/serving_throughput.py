"""Serving under load: cross-request batching on vs off, and latency under 3x overload.

Two real `voxhost serve` processes with the same model: one batches across
requests, the other decodes one request at a time (the clients run in this
process, so they never share a GIL or event loop with a server). Short
real clips (push-to-talk length) are posted concurrently over HTTP at each
concurrency level, alternating on/off per level so machine noise hits both
alike. Then the batching server, with a small admission bound, is offered
3x its capacity by closed-loop clients: we report the latency of accepted
requests next to the same at 1x, and the share shed with 429.

    PYTHONPATH=src python bench/serving_throughput.py --model whisper-tiny.en

`--compare` instead runs several servers configured differently side by side on the
REST short-clip workload (the first 24 English clips under 6 s, each posted once per
pass, json): audio-seconds per second at each concurrency, as a ratio to the first
server, interleaved per round (the order rotates) and the median over rounds, with each
server's WER on the clips it answered. A server may run another source tree: `rev=REV`
among its settings serves that git ref's src/ (e.g. main before a change).

`--raw` adds raw faster-whisper as the reference: its own defaults (one worker, its default
threads, the 30 s window with timestamp tokens, beam 5, the same VAD gate; in its own process,
without the server's thread environment), one clip at a time, once per round beside the
servers. Each server's rate at each concurrency is then also given as a ratio to raw's
sequential rate of the same round: the issue-19 goals (one clip at a time >= 0.95x raw,
8 at once >= 1.5x raw, WER unchanged).

    PYTHONPATH=src:bench python bench/serving_throughput.py --model whisper-base --levels 1,8 --rounds 3 \
        --clips 24 --raw --compare "before=rev=3164650;after="
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from _machine import cpu_model  # bench/ is on sys.path when run as a script
from _ready import wait_ready  # bench/ is on sys.path when run as a script

from voxhost.evaluation.dataset import load_manifest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Native pools are sized by each server's own thread policy, never inherited from this shell.
NATIVE_POOL_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "GOMP_SPINCOUNT")


class Server:
    """`voxhost serve` in a subprocess, configured through VOXHOST_* env; `src`: another tree's src/."""

    def __init__(self, model: str, src: str | None = None, **env: object):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if k not in NATIVE_POOL_ENV}
        # Throughput, not admission's refusals: no wait budget unless a config sets one (ignored by trees
        # without admission by expected wait).
        self.env = {**inherited, "VOXHOST_LOG_LEVEL": "warning", "VOXHOST_STT_WAIT_BUDGET_S": "0",
                    **({"PYTHONPATH": src} if src else {}),
                    **{f"VOXHOST_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                       for k, v in env.items()}}
        self.cmd = [sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(self.port), "--stt-model", model]

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_ready(self.url, timeout=120, interval=0.1):
            return self
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux): robust to other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post(url: str, clip: bytes, model: str, retry_after: list | None = None,
         texts: dict | None = None) -> tuple[int, float]:
    start = time.perf_counter()
    r = httpx.post(url + "/v1/audio/transcriptions", files={"file": ("clip.wav", clip)},
                   data={"model": model, "language": "en"}, timeout=600)
    if retry_after is not None:
        retry_after.append(float(r.headers.get("retry-after", 1)))
    if texts is not None and r.status_code == 200:
        texts[id(clip)] = r.json()["text"]
    return r.status_code, time.perf_counter() - start


def throughput(srv: Server, clips: list[bytes], model: str, concurrency: int, requests: int,
               durations: list[float] | None = None, texts: dict | None = None) -> dict:
    """`durations` (seconds per clip): also audio-seconds answered (200) per second.
    `texts`: filled with each answered clip's text (keyed by id of the clip's bytes)."""
    url = srv.url
    work = [clips[i % len(clips)] for i in range(requests)]
    cpu0 = cpu_seconds(srv.proc.pid)
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda c: post(url, c, model, texts=texts), work))
    wall = time.perf_counter() - start
    cpu = cpu_seconds(srv.proc.pid) - cpu0
    lat = [t for status, t in results if status == 200]
    return {"rps": len(lat) / wall, "not_200": [status for status, _ in results if status != 200], "p50_s": float(np.percentile(lat, 50)), "p95_s": float(np.percentile(lat, 95)),
            "cpu_s_per_request": cpu / requests,
            **({"audio_s_per_s": sum(durations[i % len(clips)] for i, (status, _) in enumerate(results)
                                     if status == 200) / wall} if durations else {})}


def closed_loop(url: str, clips: list[bytes], model: str, clients: int, seconds: float, polite: bool) -> dict:
    """`clients` each send, wait, send again. A rejected one retries after
    Retry-After (polite, as the OpenAI SDK does) or after 250 ms (impatient)."""
    end = time.perf_counter() + seconds
    statuses: list[int] = []
    accepted: list[float] = []
    lock = threading.Lock()

    def client(i: int):
        n = i
        while time.perf_counter() < end:
            hint: list = []
            status, t = post(url, clips[n % len(clips)], model, hint)
            n += clients
            with lock:
                statuses.append(status)
                if status == 200:
                    accepted.append(t)
            if status != 200:
                time.sleep(hint[0] if polite else 0.25)

    with cf.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return {
        "clients": clients, "polite": polite, "sent": len(statuses), "ok": statuses.count(200), "rejected_429": statuses.count(429),
        "5xx": sum(s >= 500 for s in statuses), "other": sum(s not in (200, 429) and s < 500 for s in statuses),
        "ok_rps": statuses.count(200) / seconds,
        "p50_s": float(np.percentile(accepted, 50)), "p95_s": float(np.percentile(accepted, 95)),
        "p99_s": float(np.percentile(accepted, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--levels", default="1,4,8,16")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--overload-seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="Repeat each level, alternating on/off; median.")
    parser.add_argument("--out", type=Path, default=Path("bench/results/serving_throughput.json"))
    parser.add_argument("--compare", help="name=setting=value,...;name=... : servers to compare (VOXHOST_* "
                                          "settings without the prefix); the first is the reference")
    parser.add_argument("--clips", type=int, default=24, help="with --compare: the first N English clips < 6 s")
    parser.add_argument("--raw", action="store_true",
                        help="with --compare: raw faster-whisper, one clip at a time, as the reference")
    parser.add_argument("--raw-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_child:
        return raw_child(args.model, args.clips)
    if args.compare:
        return compare(args)

    clips = [u.audio.read_bytes() for u in load_manifest(lang="en") if 1.0 <= u.duration <= 5.0][:16]
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    rows = []
    if levels:
        throughput_levels(args, clips, levels, rows)
    overload(args, clips, rows)


def throughput_levels(args, clips, levels, rows) -> None:
    with Server(args.model, stt_batching=True, stt_max_batch_size=args.max_batch) as batched, \
            Server(args.model, stt_batching=False) as single:
        post(batched.url, clips[0], args.model)  # warm both paths
        post(single.url, clips[0], args.model)
        for c in levels:
            n = max(8, 2 * c)
            runs = []
            for r in range(args.rounds):  # alternate which goes first: machine noise hits both
                pair = [("b", batched), ("s", single)] if r % 2 == 0 else [("s", single), ("b", batched)]
                runs.append({k: throughput(srv, clips, args.model, c, n) for k, srv in pair})
            b = {k: float(np.median([run["b"][k] for run in runs])) for k in runs[0]["b"] if k != "not_200"}
            s = {k: float(np.median([run["s"][k] for run in runs])) for k in runs[0]["s"] if k != "not_200"}
            b["not_200"] = sum(len(run["b"]["not_200"]) for run in runs)
            s["not_200"] = sum(len(run["s"]["not_200"]) for run in runs)
            rows.append({"concurrency": c, "requests": n, "rounds": args.rounds, "batched": b, "sequential": s,
                         "ratio": b["rps"] / s["rps"],
                         "cpu_ratio": s["cpu_s_per_request"] / b["cpu_s_per_request"]})
            print(f"c={c:2d}  batched {b['rps']:.2f} req/s p50 {b['p50_s']:.2f}s cpu/req {b['cpu_s_per_request']:.3f}s"
                  f"  sequential {s['rps']:.2f} req/s p50 {s['p50_s']:.2f}s cpu/req {s['cpu_s_per_request']:.3f}s"
                  f"  ratio {b['rps'] / s['rps']:.2f}x (cpu {s['cpu_s_per_request'] / b['cpu_s_per_request']:.2f}x)",
                  flush=True)



def parse_configs(spec: str) -> dict[str, dict[str, str]]:
    """"a=;b=stt_rest_text_only=true,stt_beam_size=1" -> {"a": {}, "b": {...}}."""
    configs = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, _, settings = part.partition("=")
        configs[name] = dict(kv.split("=", 1) for kv in settings.split(",") if kv)
    return configs


class RawWhisper:
    """Raw faster-whisper in its own process (its own default threads, no server environment),
    decoding the clips one at a time on request: the reference side of `--raw`."""

    def __init__(self, model: str, clips: int):
        env = {k: v for k, v in os.environ.items() if k not in NATIVE_POOL_ENV}
        self.proc = subprocess.Popen([sys.executable, __file__, "--raw-child", "--model", model,
                                      "--clips", str(clips)], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.texts: list[str] = json.loads(self.proc.stdout.readline())["texts"]  # after its warm-up

    def sequential(self) -> float:
        """One pass over the clips, one at a time: audio-seconds per second."""
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["audio_s_per_s"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def raw_child(model: str, clips: int) -> None:
    """faster-whisper's public API as voxhost's own reference sets it up (evaluation/raw_engine.py:
    beam 5, the VAD gate, the 30 s window with timestamps), on faster-whisper's default threads."""
    from faster_whisper import WhisperModel

    from voxhost.audio.decode import decode_audio
    from voxhost.engines.stt.bundled import resolve_stt_model
    from voxhost.evaluation.raw_engine import transcribe_like_voxhost
    from voxhost.ops.settings import Settings

    settings = Settings()
    rows = short_clips(clips)
    audios = [decode_audio(u.audio.read_bytes()) for u in rows]
    engine = WhisperModel(resolve_stt_model(model, settings.models_dir), device="cpu", compute_type="int8")

    def run() -> list[str]:
        return ["".join(s.text for s in transcribe_like_voxhost(engine, a, settings, language="en")).strip()
                for a in audios]

    texts = run()  # warm-up, and the words
    print(json.dumps({"texts": texts}), flush=True)
    seconds = sum(u.duration for u in rows)
    for _ in sys.stdin:
        started = time.perf_counter()
        run()
        print(json.dumps({"audio_s_per_s": seconds / (time.perf_counter() - started)}), flush=True)


def short_clips(count: int):
    return [u for u in load_manifest(lang="en") if u.duration < 6.0][:count]


def compare(args) -> None:
    from voxhost.stt.wer import wer

    configs = parse_configs(args.compare)
    rows_ = short_clips(args.clips)
    clips = [u.audio.read_bytes() for u in rows_]
    audio_s = sum(u.duration for u in rows_)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    names = list(configs)
    texts: dict[str, dict] = {name: {} for name in names}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        servers = {}
        for name in names:  # one at a time: loading is CPU-bound too
            settings = dict(configs[name])
            rev = settings.pop("rev", None)
            src = baseline_src(rev, Path(tmp) / name) if rev else None
            servers[name] = stack.enter_context(Server(args.model, src, **settings))
        raw = RawWhisper(args.model, args.clips) if args.raw else None
        if raw:
            stack.callback(raw.close)
        for srv in servers.values():
            for clip in clips[:2]:
                post(srv.url, clip, args.model)  # warm up
        result = {"model": args.model, "clips": len(clips), "audio_s": audio_s, "configs": configs,
                  "cpu": cpu_model(), "cores": os.cpu_count(), "levels": {}, "loadavg": []}
        for c in levels:
            runs: dict[str, list[dict]] = {name: [] for name in names}
            raw_runs: list[float] = []
            for r in range(args.rounds):
                order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
                if raw and r % 2 == 0:
                    raw_runs.append(raw.sequential())
                for name in order:
                    runs[name].append(throughput(servers[name], clips, args.model, c, len(clips),
                                                 [u.duration for u in rows_], texts[name]))
                if raw and r % 2 == 1:
                    raw_runs.append(raw.sequential())
                result["loadavg"].append(os.getloadavg()[0])
            med = {name: {k: float(np.median([run[k] for run in runs[name]]))
                          for k in ("audio_s_per_s", "p50_s", "p95_s", "cpu_s_per_request")} for name in names}
            # Ratio per round (both measured under the same moment's load), then the median.
            ratio = {name: float(np.median([a["audio_s_per_s"] / b["audio_s_per_s"]
                                            for a, b in zip(runs[name], runs[names[0]])])) for name in names}
            errors = {name: sum(len(run["not_200"]) for run in runs[name]) for name in names}
            level = {"median": med, "ratio": ratio, "not_200": errors}
            if raw:
                level["raw_sequential_audio_s_per_s"] = float(np.median(raw_runs))
                level["vs_raw"] = {name: float(np.median([a["audio_s_per_s"] / b for a, b in zip(runs[name], raw_runs)]))
                                   for name in names}
            result["levels"][c] = level
            print(f"c={c}  load {os.getloadavg()[0]:.1f}  " + "  ".join(
                f"{name} {med[name]['audio_s_per_s']:.2f} audio-s/s ({ratio[name]:.2f}x"
                + (f", {level['vs_raw'][name]:.2f}x raw" if raw else "")
                + f", p95 {med[name]['p95_s']:.1f}s{f', {errors[name]} not 200' if errors[name] else ''})"
                for name in names) + (f"  raw sequential {level['raw_sequential_audio_s_per_s']:.2f}" if raw else ""),
                flush=True)
        refs = [u.text for u in rows_]
        result["wer"] = {name: wer(refs, [texts[name].get(id(c), "") for c in clips]) for name in names}
        if raw:
            result["wer"]["raw"] = wer(refs, raw.texts)
    summary(result, names, levels, bool(raw))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


def summary(result: dict, names: list[str], levels: list[int], raw: bool) -> None:
    loads = result["loadavg"]
    print(f"\n{result['model']}, {result['clips']} English clips < 6 s ({result['audio_s']:.0f} s), "
          f"{result['cores']} cores ({result['cpu']}), unpinned, load avg {min(loads):.1f}-{max(loads):.1f}\n")
    head = " | ".join(f"{c} at once: audio-s/s{' (vs raw sequential)' if raw else ''}" for c in levels)
    print(f"| server | {head} | WER |\n|---|" + "---|" * len(levels) + "---|")
    for name in names:
        cells = " | ".join(f"{result['levels'][c]['median'][name]['audio_s_per_s']:.2f}"
                           + (f" ({result['levels'][c]['vs_raw'][name]:.2f}x)" if raw else "") for c in levels)
        print(f"| {name} | {cells} | {100 * result['wer'][name]:.2f}% |")
    if raw:
        cells = " | ".join(f"{result['levels'][c]['raw_sequential_audio_s_per_s']:.2f} (sequential)" for c in levels)
        print(f"| raw faster-whisper, one at a time | {cells} | {100 * result['wer']['raw']:.2f}% |")


def baseline_src(rev: str, into: Path) -> str:
    """The src/ tree of git ref `rev`, extracted under `into`."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=Path(__file__).resolve().parent.parent, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return str(into / "src")


def overload(args, clips, rows) -> None:
    # Overload: capacity = one batch running + the admission bound queued.
    max_batch, queue = 4, 4
    capacity = max_batch + queue
    with Server(args.model, stt_batching=True, stt_max_batch_size=max_batch, queue_max_per_lane=queue) as srv:
        post(srv.url, clips[0], args.model)
        at_1x = closed_loop(srv.url, clips, args.model, capacity, args.overload_seconds, polite=True)
        at_3x = closed_loop(srv.url, clips, args.model, 3 * capacity, args.overload_seconds, polite=True)
        at_3x_rude = closed_loop(srv.url, clips, args.model, 3 * capacity, args.overload_seconds, polite=False)
        recovered = post(srv.url, clips[0], args.model)[0]
    for name, r in (("1x", at_1x), ("3x polite", at_3x), ("3x impatient", at_3x_rude)):
        print(f"{name}: {r['clients']} clients  ok {r['ok']} ({r['ok_rps']:.2f}/s)  429 {r['rejected_429']}  "
              f"5xx {r['5xx']}  "
              f"accepted p50 {r['p50_s']:.2f}s p95 {r['p95_s']:.2f}s p99 {r['p99_s']:.2f}s", flush=True)
    print(f"after overload: {recovered}")
    if not rows and args.out.exists():  # overload-only run: keep the throughput rows on file
        rows.extend(json.loads(args.out.read_text()).get("throughput", []))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "max_batch": args.max_batch, "throughput": rows,
                                    "overload": {"capacity": capacity, "1x": at_1x, "3x": at_3x, "3x_impatient": at_3x_rude,
                                                 "recovered_status": recovered},
                                    "cpu_count": __import__("os").cpu_count(),
                                    "loadavg": __import__("os").getloadavg()}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
