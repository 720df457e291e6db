"""What each loaded model costs in resident memory: the default server's models
loaded (and warmed up) one by one in this process, RSS and anonymous memory after each.

  python bench/server_memory.py                  # the defaults (VOXHOST_STT_MODELS, VOXHOST_TTS_ENGINES)
  python bench/server_memory.py --languages all  # then each Kokoro language's reader, built and speaking

The issue's goal is the whole default server <= 800 MB RSS after warm-up; this says
where the memory goes (py-spy samples CPU, not memory). Figures: docs/benchmarks.md.

`--serve` measures the goal itself: the default server (`voxhost serve`, default settings)
ready, then every engine used once (a transcription; a line from each TTS engine, Kokoro a
paragraph, American and British), then idle until its trim ran: VmRSS and VmHWM after each
step. `--baseline REV` runs the same on that git ref's tree first, so one command gives
before and after (writes bench/results/server_memory.json):

  python bench/server_memory.py --serve --baseline 3164650
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IDLE_S = 12.0  # the server trims after 10 s without requests (api/app.py TRIM_INTERVAL_S)
PARAGRAPH = ("Welcome back, traveler. The old bridge to the northern village collapsed during last night's storm. "
             "You owe the guild 250 gold coins, and the debt is due by Friday. Meet me at the tavern at 9 o'clock, "
             "and bring the map. Three goblins were seen near the mill, two hours ago.")


def memory() -> dict[str, float]:
    """MB, from /proc/self/smaps_rollup (Rss: resident; Anonymous: heap and arenas,
    not file-backed pages such as mapped model files and shared libraries)."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {"rss": fields["Rss"], "anonymous": fields["Anonymous"], "hwm": int(status["VmHWM"].split()[0]) / 1024}


def main() -> None:
    import argparse
    import json
    import os
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--languages", default="", help="'all' or comma-separated codes (es,ja,zh,...)")
    args = parser.parse_args()
    from voxhost.ops.memory import configure_allocator, trim

    configure_allocator()  # as the server does at start-up
    rows = [("python + numpy", memory())]
    from voxhost.api.app import create_app  # noqa: F401 - everything the server imports
    from voxhost.ops.settings import Settings
    from voxhost.services import build_services
    rows.append(("voxhost imported", memory()))
    settings = Settings()
    services = build_services(settings)
    stt, tts = services.stt_engines, services.tts_engines
    for name in settings.stt_models:
        stt.load(name)
        gc.collect()
        rows.append((f"+ STT {name} (warmed up)", memory()))
    for name in settings.tts_engines:
        tts.load(name)
        gc.collect()
        rows.append((f"+ TTS {name} (warmed up)", memory()))
    services.speech.load()  # language identification, as Services.load does (no VOXHOST_TTS_LANGUAGES: nothing else)
    gc.collect()
    rows.append(("+ language identification (lingua)", memory()))
    trim()  # the server trims when idle (ops/memory.py)
    rows.append(("after malloc_trim (as the idle server)", memory()))
    kokoro = tts.engines.get("kokoro")
    wanted = sorted(kokoro.languages - {"en"}) if args.languages == "all" and kokoro else \
        [c for c in args.languages.split(",") if c]
    for code in wanted:  # each language's reader built and one line spoken in a native voice
        from voxhost.engines.tts.kokoro_g2p import WARM_UP
        from voxhost.engines.tts.kokoro_voices import VOICES

        native = next(v for v, info in VOICES.items() if info.code == code)
        kokoro.load_language(code)
        kokoro.synthesize(WARM_UP[code], kokoro.resolve_voice(native), language=code)
        gc.collect()
        trim()
        rows.append((f"+ language {code} (reader built, one line spoken, trimmed)", memory()))
    print("| after | RSS MB | step MB | anonymous MB | VmHWM MB |\n|---|---|---|---|---|")
    previous = 0.0
    out = []
    for label, m in rows:
        print(f"| {label} | {m['rss']:.0f} | {m['rss'] - previous:+.0f} | {m['anonymous']:.0f} | {m['hwm']:.0f} |")
        out.append({"after": label, "rss_mb": round(m["rss"], 1), "step_mb": round(m["rss"] - previous, 1),
                    "anonymous_mb": round(m["anonymous"], 1), "hwm_mb": round(m["hwm"], 1)})
        previous = m["rss"]
    if args.languages:
        result = Path(__file__).resolve().parent / "results" / "server_memory_languages.json"
        result.write_text(json.dumps({"command": "python " + " ".join(sys.argv), "load_avg": os.getloadavg(),
                                      "rows": out}, indent=1))
        print(f"wrote {result}")


def status(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


def serve_side(src: str | None) -> list[tuple[str, dict]]:
    """One default `voxhost serve`, used step by step; (step, memory) after each."""
    import httpx
    from _ready import wait_ready

    from voxhost.evaluation.dataset import load_manifest

    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXHOST_") and k not in
               ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        env |= {"VOXHOST_PORT": str(port), "VOXHOST_LOG_LEVEL": "warning", "VOXHOST_TTS_CACHE_PATH": tmp,
                **({"PYTHONPATH": src} if src else {})}
        proc = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            if not wait_ready(base, timeout=300):
                raise RuntimeError("server did not become ready")
            rows = [("ready", status(proc.pid))]
            clip = next(u for u in load_manifest(lang="en") if u.duration < 6)
            steps = [("+ one transcription", lambda c: c.post(
                        base + "/v1/audio/transcriptions", files={"file": ("a.wav", clip.audio.read_bytes())},
                        data={"model": "whisper-1"})),
                     ("+ one hibari line", lambda c: _speech(c, base, "tts-1", "alloy", "Halt! Who goes there?")),
                     ("+ a Kokoro paragraph (American)", lambda c: _speech(c, base, "tts-1-hd", "am_onyx", PARAGRAPH)),
                     ("+ a Kokoro line (British)", lambda c: _speech(c, base, "tts-1-hd", "bm_george",
                                                                    "Mind the gap, traveller.")),
                     ("+ one piper line", lambda c: _speech(c, base, "piper", "joe", "The gate opens at dawn."))]
            with httpx.Client(timeout=600) as client:
                for label, step in steps:
                    response = step(client)
                    if response.status_code == 200:
                        time.sleep(IDLE_S)
                        rows.append((label, status(proc.pid)))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return rows


def _speech(client, base: str, model: str, voice: str, text: str):
    return client.post(base + "/v1/audio/speech", json={"model": model, "voice": voice, "input": text})


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(baseline: str | None, out: Path) -> None:
    sides: dict[str, str | None] = {}
    tmp = tempfile.TemporaryDirectory()
    if baseline:
        archive = subprocess.run(["git", "archive", baseline, "src"], cwd=HERE.parent, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp.name], input=archive, check=True)
        sides[f"baseline {baseline}"] = str(Path(tmp.name) / "src")
    sides["this tree"] = None
    results = {name: serve_side(src) for name, src in sides.items()}
    names = list(results)
    print(f"\nthe default server (voxhost serve), {IDLE_S:.0f} s idle after each step, load avg "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| after | " + " | ".join(f"{n}: VmRSS MiB | {n}: VmHWM MiB" for n in names) + " |")
    print("|---|" + "---|---|" * len(names))
    for i, (label, _) in enumerate(results[names[-1]]):
        cells = " | ".join(f"{results[n][i][1]['VmRSS']:.0f} | {results[n][i][1]['VmHWM']:.0f}"
                           if i < len(results[n]) else " | " for n in names)
        print(f"| {label} | {cells} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({n: [{"step": label, **m} for label, m in rows] for n, rows in results.items()},
                              indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help="the running default server, step by step")
    parser.add_argument("--baseline", help="with --serve: also this git ref's tree, first")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "server_memory.json")
    args = parser.parse_args()
    if args.serve:
        sys.path.insert(0, str(HERE))
        serve(args.baseline, args.out)
    else:
        main()
