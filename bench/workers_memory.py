"""Memory of `voxhost serve` with VOXHOST_WORKERS=1 and 2 (the default server: every
model loaded), after each worker has served a transcription and both TTS models:
RSS and PSS (shared pages split between processes) of every process in the group.

    PYTHONPATH=src:bench python bench/workers_memory.py [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _ready import wait_ready  # bench/ is on sys.path when run as a script
from realtime_latency import free_port

from voxhost.evaluation.dataset import eval_dir


def tree(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [p for child in (task / "children").read_text().split() for p in tree(int(child))]
    return out


def memory(pid: int) -> dict:
    rollup = {line.split(":")[0]: int(line.split()[1])
              for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]}
    hwm = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
    return {"pid": pid, "command": Path(f"/proc/{pid}/cmdline").read_bytes()[:70].decode(errors="replace"),
            "rss_mb": rollup["Rss"] / 1024, "pss_mb": rollup["Pss"] / 1024, "hwm_mb": int(hwm.split()[1]) / 1024}


def measure(workers: int, clip: bytes) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VOXHOST_WORKERS": str(workers), "VOXHOST_LOG_LEVEL": "warning", "VOXHOST_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        if not wait_ready(base, timeout=900):
            raise RuntimeError("server not ready")
        ready_s = time.monotonic() - started
        for _ in range(2 * workers):  # a new connection each: the kernel spreads them over the workers
            httpx.post(base + "/v1/audio/transcriptions", files={"file": ("a.wav", clip)},
                       data={"model": "whisper-1"}, timeout=300)
            for model in ("tts-1", "tts-1-hd"):
                httpx.post(base + "/v1/audio/speech", timeout=300,
                           json={"model": model, "voice": "alloy", "input": "Hello there, traveller."})
        time.sleep(3)
        procs = [memory(pid) for pid in tree(proc.pid)]
    finally:
        proc.terminate()
        proc.wait(180)
    return {"workers": workers, "ready_s": round(ready_s, 1), "load_avg": round(os.getloadavg()[0], 1),
            "total_rss_mb": round(sum(p["rss_mb"] for p in procs)), "total_pss_mb": round(sum(p["pss_mb"] for p in procs)),
            "processes": procs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="VOXHOST_WORKERS values, one server each")
    args = parser.parse_args()
    clip = (eval_dir() / "audio" / "lj_LJ001-0002.wav").read_bytes()
    rows = [measure(int(w), clip) for w in args.workers.split(",")]
    for r in rows:
        print(json.dumps(r))
    print("\n| workers | processes | total RSS MB | total PSS MB | largest process RSS MB | ready after s | load avg |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {len(r['processes'])} | {r['total_rss_mb']} | {r['total_pss_mb']} | "
              f"{max(p['rss_mb'] for p in r['processes']):.0f} | {r['ready_s']} | {r['load_avg']} |")


if __name__ == "__main__":
    main()
