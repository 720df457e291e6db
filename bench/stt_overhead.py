"""Raw faster-whisper vs the same files through voxhost over HTTP, side by side.

    .venv/bin/python bench/stt_overhead.py [--lang en|all] [--limit N]

Starts `voxhost serve` as a separate process (as in production), then for each
eval file runs the raw engine in this process and the HTTP request back to
back, so background load hits both equally. Reports wall time, real-time
factor, the overhead ratio (goal <= 1.05x) and WER for whisper-base, then the
WER of whisper-tiny.en through the server. Writes bench/results/stt_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import faster_whisper
import httpx
from _ready import wait_ready  # bench/ is on sys.path when run as a script
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from voxhost.engines.stt.bundled import resolve_stt_model
from voxhost.evaluation.dataset import load_manifest
from voxhost.evaluation.raw_engine import transcribe_like_voxhost
from voxhost.ops.settings import Settings
from voxhost.stt.wer import wer_by

ROOT = Path(__file__).resolve().parents[1]
console = Console()


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "VOXHOST_PORT": str(port), "VOXHOST_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if wait_ready(f"http://127.0.0.1:{port}"):
        return proc
    proc.kill()
    raise SystemExit("server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lang", default="en", help="'en' (WER is scored on English) or 'all'")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    rows = load_manifest(None if args.lang == "all" else args.lang)
    if args.limit:
        rows = rows[: args.limit]
    settings = Settings()
    raw = faster_whisper.WhisperModel(resolve_stt_model("whisper-base", settings.models_dir),
                                      device="cpu", compute_type="int8")
    server = start_server(args.port)
    url = f"http://127.0.0.1:{args.port}/v1/audio/transcriptions"
    raw_s = served_s = audio_s = 0.0
    raw_rows, served_rows, tiny_rows = [], [], []
    try:
        with Progress(console=console) as progress, httpx.Client(timeout=600) as client:
            task = progress.add_task("raw vs HTTP (whisper-base)", total=len(rows))
            for utt in rows:
                data = utt.audio.read_bytes()
                started = time.perf_counter()
                segments = transcribe_like_voxhost(raw, faster_whisper.decode_audio(str(utt.audio)), settings)
                raw_text = "".join(s.text for s in segments)
                raw_s += time.perf_counter() - started

                started = time.perf_counter()
                response = client.post(url, files={"file": (utt.audio.name, data)}, data={"model": "whisper-base"})
                response.raise_for_status()
                served_s += time.perf_counter() - started
                audio_s += utt.duration
                if utt.lang == "en":
                    raw_rows.append((utt.category, utt.text, raw_text))
                    served_rows.append((utt.category, utt.text, response.json()["text"]))
                progress.advance(task)

            english = [u for u in rows if u.lang == "en"]
            task = progress.add_task("whisper-tiny.en over HTTP", total=len(english))
            for utt in english:
                response = client.post(url, files={"file": (utt.audio.name, utt.audio.read_bytes())},
                                       data={"model": "whisper-tiny.en"})
                response.raise_for_status()
                tiny_rows.append((utt.category, utt.text, response.json()["text"]))
                progress.advance(task)
    finally:
        server.terminate()
        server.wait(timeout=60)

    raw_wer, served_wer, tiny_wer = wer_by(raw_rows), wer_by(served_rows), wer_by(tiny_rows)
    result = {
        "files": len(rows), "audio_seconds": round(audio_s, 1),
        "raw_seconds": round(raw_s, 2), "http_seconds": round(served_s, 2),
        "overhead_ratio": round(served_s / raw_s, 3),
        "raw_rtf": round(raw_s / audio_s, 4), "http_rtf": round(served_s / audio_s, 4),
        "wer_base_raw": raw_wer, "wer_base_http": served_wer, "wer_tiny_en_http": tiny_wer,
        "cpu_count": os.cpu_count(),
        # Per file, so a WER swing can be traced to the line that caused it
        # (hard lines fall back to sampling, which is not deterministic).
        "transcripts": {
            utt.audio.name: {"reference": utt.text, "base_raw": raw[2], "base_http": served[2], "tiny_en_http": tiny[2]}
            for utt, raw, served, tiny in zip([u for u in rows if u.lang == "en"], raw_rows, served_rows, tiny_rows)
        },
    }
    out = ROOT / "bench" / "results" / "stt_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))

    table = Table(title=f"{len(rows)} files, {audio_s:.0f} s of audio")
    table.add_column("path")
    table.add_column("wall s", justify="right")
    table.add_column("RTF", justify="right")
    table.add_row("raw faster-whisper", f"{raw_s:.1f}", f"{raw_s / audio_s:.3f}")
    table.add_row("voxhost over HTTP", f"{served_s:.1f}", f"{served_s / audio_s:.3f}")
    console.print(table)
    console.print(f"overhead ratio: [bold]{served_s / raw_s:.3f}x[/bold] (goal <= 1.05x)")
    wer_table = Table("category", "base raw", "base HTTP", "tiny.en HTTP", title="WER (English)")
    for key in served_wer:
        wer_table.add_row(key, f"{raw_wer[key]:.1%}", f"{served_wer[key]:.1%}", f"{tiny_wer.get(key, 0):.1%}")
    console.print(wer_table)
    console.print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
