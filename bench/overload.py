"""Overload, before and after admission control, side by side in one run.

Two real `voxhost serve` processes on the default model, unpinned: one from
an older source tree (`--before`, a git revision, extracted to a temporary
directory) and one from this tree. Both use the same virtual environment.

- `wait`: closed-loop players post short real clips (1-5 s of read English)
  for `--seconds` at 1x, 2x and 3x load (`--clients-1x` players is 1x), each
  retrying a 429 after its Retry-After as the openai SDK does (retry-after-ms
  first). Per load and tree: requests answered 200 and their latency (p50,
  p95), 429s and how fast they came, the Retry-After they gave, errors, the
  server's CPU. Levels alternate before/after so machine noise hits both.
  Then the burst: `--burst-clients` players for `--burst-seconds`; when it
  ends, one fresh request at a time (0.5 s apart) until one is answered 200
  within twice the idle latency: the seconds that took.
- `memory`: `--uploads` (8 and 32) concurrent POSTs of a FLAC of 59 minutes of
  silence (~645 KB): peak RSS while they run (sampled every 0.2 s), statuses,
  and RSS `--idle-seconds` after each. The after tree runs twice: as it
  ships, and with the wait budgets off (the memory budget alone). A server whose RSS passes `--rss-cap-mb` is
  stopped there and reported as "over the cap" (the machine is shared).

    PYTHONPATH=src:bench .venv/bin/python bench/overload.py wait   # writes bench/results/overload.json
    PYTHONPATH=src:bench .venv/bin/python bench/overload.py memory # bench/results/overload_memory.json
    PYTHONPATH=src:bench .venv/bin/python bench/overload.py vad    # bench/results/overload_vad.json

- `vad`: what Silero VAD allocates over 59 minutes of silence, as faster-whisper
  runs it (one pass) and in windows (engines/stt/vad.py), each in a process of
  its own (peak RSS over the audio, and seconds); and, on 9.5 minutes of the
  eval set's speech with gaps, the speech each finds.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from _machine import cpu_model  # bench/ is on sys.path when run as a script
from _ready import wait_ready  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from voxhost.evaluation.dataset import load_manifest  # noqa: E402
from voxhost_testing import free_port, silent_flac  # noqa: E402  (the tests' helpers)

URL = "/v1/audio/transcriptions"
MODEL = "whisper-base"  # the default model: whisper-1 maps to it


def extract_tree(rev: str, into: Path) -> Path:
    """`src/` of git revision `rev`, extracted under `into`."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


class Server:
    """`voxhost serve` from the source tree `src`, configured through VOXHOST_* env."""

    def __init__(self, name: str, src: Path, **env):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(src), "VOXHOST_LOG_LEVEL": "warning",
                    "VOXHOST_TTS_ENGINES": "hibari",  # STT under test; Kokoro and piper only slow the start
                    **{f"VOXHOST_{k.upper()}": str(v) for k, v in env.items()}}

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(self.port)],
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_ready(self.url, timeout=300):
            raise RuntimeError(f"{self.name}: server did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except FileNotFoundError:
            pass
        return 0.0


def post(client: httpx.Client, url: str, audio: bytes, name: str = "clip.wav") -> dict:
    start = time.perf_counter()
    try:
        r = client.post(url + URL, files={"file": (name, audio)}, data={"model": "whisper-1", "language": "en"})
        status, headers = r.status_code, r.headers
    except httpx.HTTPError as exc:
        return {"status": type(exc).__name__, "seconds": time.perf_counter() - start, "sent": start}
    out = {"status": status, "seconds": time.perf_counter() - start, "sent": start}
    if status == 200 and "x-queue-ms" in headers:  # the server's own split: waiting vs the work
        out["queue_s"] = float(headers["x-queue-ms"]) / 1000
    if status == 429:
        ms = headers.get("retry-after-ms")
        out["retry_after"] = int(ms) / 1000 if ms else float(headers.get("retry-after", 1))
    return out


def players(url: str, clips: list[bytes], clients: int, seconds: float) -> list[dict]:
    """`clients` players, each: post, wait for the answer, post again; a 429 waits its Retry-After."""
    end = time.perf_counter() + seconds
    results: list[dict] = []
    lock = threading.Lock()

    def player(i: int) -> None:
        n = i
        with httpx.Client(timeout=600) as client:
            while time.perf_counter() < end:
                result = post(client, url, clips[n % len(clips)])
                n += clients
                with lock:
                    results.append(result)
                if result["status"] == 429:
                    time.sleep(max(0.0, min(result["retry_after"], end - time.perf_counter())))

    with cf.ThreadPoolExecutor(clients) as pool:
        list(pool.map(player, range(clients)))
    return results


def summary(results: list[dict], seconds: float) -> dict:
    """`seconds`: the offered load's length; the level lasts until its last answer (`wall_s`)."""
    ok = [r["seconds"] for r in results if r["status"] == 200]
    wall = max((r["sent"] + r["seconds"] for r in results), default=0.0) - min((r["sent"] for r in results),
                                                                                default=0.0)
    refused = [r for r in results if r["status"] == 429]

    def pct(values, q):
        return round(float(np.percentile(values, q)), 2) if values else None

    return {"sent": len(results), "ok": len(ok), "refused_429": len(refused),
            "errors": sum(r["status"] not in (200, 429) for r in results),
            "wall_s": round(wall, 1), "ok_per_wall_s": round(len(ok) / wall, 3) if wall else None,
            "ok_p50_s": pct(ok, 50), "ok_p95_s": pct(ok, 95), "ok_max_s": round(max(ok), 2) if ok else None,
            "queue_p50_s": pct([r["queue_s"] for r in results if "queue_s" in r], 50),
            "queue_p95_s": pct([r["queue_s"] for r in results if "queue_s" in r], 95),
            "refusal_p50_s": pct([r["seconds"] for r in refused], 50),
            "retry_after_p50_s": pct([r["retry_after"] for r in refused], 50)}


def idle_latency(srv: Server, clip: bytes) -> float:
    with httpx.Client(timeout=600) as client:
        return float(np.median([post(client, srv.url, clip)["seconds"] for _ in range(3)]))


def burst_recovery(srv: Server, clips: list[bytes], clients: int, seconds: float, normal_s: float,
                   give_up_s: float = 600.0) -> dict:
    """The burst, then fresh requests one at a time until one is served normally."""
    done = threading.Event()
    burst: list[dict] = []

    def run_burst():
        burst.extend(players(srv.url, clips, clients, seconds))
        done.set()

    thread = threading.Thread(target=run_burst)
    thread.start()
    time.sleep(seconds)
    ended = time.perf_counter()
    probes = []
    recovered = None
    with httpx.Client(timeout=600) as client:
        while time.perf_counter() - ended < give_up_s:
            result = post(client, srv.url, clips[len(probes) % len(clips)])
            result["after_end_s"] = round(result["sent"] - ended, 2)
            probes.append(result)
            if result["status"] == 200 and result["seconds"] <= normal_s:
                recovered = round(result["sent"] + result["seconds"] - ended, 1)
                break
            time.sleep(0.5)
    thread.join()
    return {"clients": clients, "seconds": seconds, "normal_s": round(normal_s, 2),
            "recovered_after_s": recovered, "probes": len(probes),
            "first_probe": {k: probes[0][k] for k in ("status", "seconds")} if probes else None,
            "burst": summary(burst, seconds), "burst_drained_after_s": round(time.perf_counter() - ended, 1)}


def wait_part(args, trees: dict[str, Path]) -> dict:
    clips = [u.audio.read_bytes() for u in load_manifest(lang="en") if 1.0 <= u.duration <= 5.0][:16]
    levels = [int(x) for x in args.levels.split(",")]
    result = {"model": MODEL, "clients_1x": args.clients_1x, "seconds": args.seconds, "cpu": cpu_model(),
              "cores": os.cpu_count(), "levels": {}, "burst": {}, "loadavg": {}}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(Server(name, src)) for name, src in trees.items()}
        normal = {}
        for name, srv in servers.items():
            normal[name] = idle_latency(srv, clips[0])
        result["idle_latency_s"] = {k: round(v, 2) for k, v in normal.items()}
        for i, level in enumerate(levels):
            order = list(servers) if i % 2 == 0 else list(servers)[::-1]
            for name in order:
                srv = servers[name]
                cpu0 = srv.cpu_s()
                rows = players(srv.url, clips, level * args.clients_1x, args.seconds)
                row = summary(rows, args.seconds)
                row["server_cpu_s"] = round(srv.cpu_s() - cpu0, 1)
                row["ok_per_cpu_s"] = round(row["ok"] / row["server_cpu_s"], 3) if row["server_cpu_s"] else None
                row["loadavg"] = os.getloadavg()[0]
                result["levels"].setdefault(f"{level}x", {})[name] = row
                print(f"{level}x ({level * args.clients_1x} players) {name:>6}: ok {row['ok']:4d} "
                      f"p50 {row['ok_p50_s']}s p95 {row['ok_p95_s']}s (queued p50 {row['queue_p50_s']}s "
                      f"p95 {row['queue_p95_s']}s)  429 {row['refused_429']:4d} "
                      f"(answered p50 {row['refusal_p50_s']}s, Retry-After p50 {row['retry_after_p50_s']}s)  "
                      f"errors {row['errors']}  {row['ok_per_wall_s']} ok/s over {row['wall_s']}s  "
                      f"cpu {row['server_cpu_s']}s  load {row['loadavg']:.1f}", flush=True)
        for name, srv in servers.items():
            result["burst"][name] = burst_recovery(srv, clips, args.burst_clients, args.burst_seconds,
                                                   2 * normal[name])
            b = result["burst"][name]
            print(f"burst {args.burst_clients} x {args.burst_seconds:g}s {name:>6}: a fresh request served normally "
                  f"{b['recovered_after_s']} s after the burst ended (burst: ok {b['burst']['ok']}, "
                  f"429 {b['burst']['refused_429']}, p50 {b['burst']['ok_p50_s']}s)", flush=True)
    return result


def memory_part(args, trees: dict[str, Path]) -> dict:
    flac = silent_flac(59 * 60)
    result = {"flac_bytes": len(flac), "flac_seconds": 59 * 60, "cpu": cpu_model(), "cores": os.cpu_count(),
              "rss_cap_mb": args.rss_cap_mb, "trees": {}}
    clip = next(u.audio.read_bytes() for u in load_manifest(lang="en") if 1.0 <= u.duration <= 5.0)
    # The memory budget alone, too: with the wait budgets on, most uploads are refused for the
    # wait first (each counts as a player's clip at the door), which hides what memory does.
    runs = [(name, src, {}) for name, src in trees.items()]
    runs.append(("after, memory budget only", trees["after"],
                 {"stt_wait_budget_s": 0, "bulk_wait_budget_s": 0}))
    for name, src, env in runs:
        with Server(name, src, **env) as srv:
            with httpx.Client(timeout=600) as client:
                for _ in range(2):
                    post(client, srv.url, clip)
            time.sleep(15)
            row = {"warm_mb": round(srv.rss_mb())}
            for n in [int(x) for x in args.uploads.split(",")]:
                peak = [srv.rss_mb()]
                stop = threading.Event()
                capped = threading.Event()

                def sample(peak=peak, stop=stop, capped=capped):
                    while not stop.wait(0.2):
                        rss = srv.rss_mb()
                        peak.append(rss)
                        if rss > args.rss_cap_mb and not capped.is_set():
                            capped.set()
                            srv.proc.kill()

                sampler = threading.Thread(target=sample)
                sampler.start()
                start = time.perf_counter()

                def upload(_):
                    with httpx.Client(timeout=600) as client:
                        return post(client, srv.url, flac, "silence.flac")

                with cf.ThreadPoolExecutor(n) as pool:
                    answers = list(pool.map(upload, range(n)))
                stop.set()
                sampler.join()
                statuses = [str(a["status"]) for a in answers]
                row[f"{n}_uploads"] = {
                    "peak_mb": round(max(peak)), "over_cap": capped.is_set(),
                    "seconds": round(time.perf_counter() - start, 1),
                    "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
                    "ok_latency_max_s": round(max((a["seconds"] for a in answers if a["status"] == 200),
                                                  default=0.0), 1)}
                print(f"{name:>6} {n:2d} uploads: peak {row[f'{n}_uploads']['peak_mb']} MiB"
                      f"{' (stopped at the cap)' if capped.is_set() else ''}  {row[f'{n}_uploads']['statuses']}",
                      flush=True)
                if capped.is_set():
                    break
                time.sleep(args.idle_seconds)
                row[f"{n}_uploads"]["after_idle_mb"] = round(srv.rss_mb())
                print(f"{name:>6} RSS {args.idle_seconds:g} s after: {row[f'{n}_uploads']['after_idle_mb']} MiB "
                      f"(warm {row['warm_mb']} MiB)", flush=True)
            result["trees"][name] = row
    return result


VAD_CHILD = """
import json, sys, time
import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps
from voxhost.engines.stt.vad import speech_regions
def hwm():
    return int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024
get_speech_timestamps(np.zeros(16000, np.float32), VadOptions())  # the model loaded
audio = np.zeros(16000 * int(sys.argv[2]), np.float32)
audio[:] = 0.0  # resident
base, start, cpu = hwm(), time.perf_counter(), time.process_time()
regions = (get_speech_timestamps if sys.argv[1] == "one pass" else speech_regions)(audio, VadOptions())
print(json.dumps({"peak_over_audio_mb": round(hwm() - base), "seconds": round(time.perf_counter() - start, 1),
                  "cpu_s": round(time.process_time() - cpu, 1),
                  "audio_mb": round(audio.nbytes / 2**20), "regions": len(regions)}))
"""


def vad_part(args, trees: dict[str, Path]) -> dict:
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from voxhost.audio.decode import decode_audio
    from voxhost.engines.stt.vad import speech_regions

    result = {"cpu": cpu_model(), "cores": os.cpu_count(), "silence_s": 59 * 60}
    for how in ("one pass", "windows"):
        out = subprocess.run([sys.executable, "-c", VAD_CHILD, how, str(59 * 60)], check=True, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).stdout
        result[how] = json.loads(out)
        print(f"VAD over 59 min of silence, {how}: peak {result[how]['peak_over_audio_mb']} MiB over the "
              f"{result[how]['audio_mb']} MiB of audio, {result[how]['seconds']} s "
              f"({result[how]['cpu_s']} s of CPU)", flush=True)
    rng = np.random.default_rng(0)
    parts = []
    for u in load_manifest(lang="en")[:80]:
        parts += [decode_audio(u.audio.read_bytes()), np.zeros(int(rng.uniform(0.2, 4) * 16000), np.float32)]
    speech = np.concatenate(parts)
    masks = {}
    for how, regions in (("one pass", get_speech_timestamps(speech, VadOptions())),
                         ("windows", speech_regions(speech, VadOptions()))):
        mask = np.zeros(len(speech), bool)
        for r in regions:
            mask[r["start"]:r["end"]] = True
        masks[how] = mask
    result["speech"] = {"seconds": round(len(speech) / 16000, 1),
                        "found_one_pass_s": round(float(masks["one pass"].sum()) / 16000, 2),
                        "found_windows_s": round(float(masks["windows"].sum()) / 16000, 2),
                        "missed_by_windows_s": round(float((masks["one pass"] & ~masks["windows"]).sum()) / 16000, 2),
                        "added_by_windows_s": round(float((masks["windows"] & ~masks["one pass"]).sum()) / 16000, 2)}
    print(f"eval speech: {result['speech']}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["wait", "memory", "vad"])
    parser.add_argument("--before", default="3164650", help="git revision of the 'before' tree")
    parser.add_argument("--clients-1x", type=int, default=8, help="players at 1x load")
    parser.add_argument("--levels", default="1,2,3")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--burst-clients", type=int, default=100)
    parser.add_argument("--burst-seconds", type=float, default=20.0)
    parser.add_argument("--uploads", default="8,32")
    parser.add_argument("--idle-seconds", type=float, default=180.0)
    parser.add_argument("--rss-cap-mb", type=float, default=8192.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="voxhost-before-") as tmp:
        trees = {"before": extract_tree(args.before, Path(tmp)), "after": ROOT / "src"}
        result = {"wait": wait_part, "memory": memory_part, "vad": vad_part}[args.part](args, trees)
    result.update({"before": args.before, "loadavg_start": load_start, "loadavg_end": os.getloadavg()})
    out = args.out or ROOT / "bench" / "results" / f"overload{'' if args.part == 'wait' else '_' + args.part}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"cpu {result['cpu']} x{result['cores']}, load {load_start[0]:.1f} -> {os.getloadavg()[0]:.1f}; {out}")


if __name__ == "__main__":
    main()
