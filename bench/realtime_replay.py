"""Streamed WER without waiting for real time: the live session's own code
(server VAD turns, lead audio, context, final decodes) fed each eval file as
fast as it decodes, with the engine called directly.

A final's text depends only on where the turns fall and how they are decoded,
not on pacing, so this reproduces the server's finals (and runs ~10x faster
than bench/realtime_latency.py --full); use it to compare decoding choices on
the whole English set, then confirm with the paced benchmark or the test.

    python bench/realtime_replay.py                        # all English files, defaults
    python bench/realtime_replay.py --speculate            # finals from speculative decodes
    python bench/realtime_replay.py --no-short-window --context-seconds 0
    python bench/realtime_replay.py --manual               # one commit per file (push-to-talk)
    python bench/realtime_replay.py --speculate --language unset   # language detected per turn
    # speech from the first sample, resampled to 24 kHz by linear interpolation as some
    # clients do; finals with and without trailing silence, side by side:
    python bench/realtime_replay.py --speculate --lead-silence 0 --rate 24000 --client-resampler linear \
        --final-trailing-ms 0,500

Prints pooled WER for the streamed finals (one row per --final-trailing-ms value), for one
REST-style decode per file, and how many files' finals lost the reference's last word.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np
from _machine import machine
from rich.console import Console
from rich.progress import track
from rich.table import Table

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.evaluation.dataset import load_manifest
from voxhost.loadtest.realtime_client import load_pcm
from voxhost.ops.settings import Settings
from voxhost.realtime import events as ev
from voxhost.realtime import session as live
from voxhost.realtime.config import SessionConfig, SessionLimits
from voxhost.realtime.vad import TurnDetection
from voxhost.services import build_services
from voxhost.stt.wer import normalize, wer


class DirectDecoder:
    """The engine in a worker thread; `busy` decides whether speculative finals run."""

    def __init__(self, engine, speculate: bool):
        self._engine = engine
        self._speculate = speculate

    def engine(self, model):
        return self._engine

    async def transcribe(self, engine, audio, options: TranscriptionOptions):
        return await asyncio.to_thread(engine.transcribe, audio, options)

    def busy(self, engine=None) -> bool:
        return not self._speculate


def client_pcm(path: Path, rate: int, resampler: str, *, lead: float, tail: float) -> bytes:
    """PCM16 as a client would send it: resampled by PyAV (`av`), or by linear interpolation (`linear`)."""
    if resampler == "av" or rate == 16_000:
        return load_pcm(path, rate, lead_silence=lead, tail_silence=tail)
    pcm = np.frombuffer(load_pcm(path, 16_000, lead_silence=lead, tail_silence=tail), "<i2")
    n = pcm.size * rate // 16_000
    return np.interp(np.arange(n) * 16_000 / rate, np.arange(pcm.size), pcm).astype("<i2").tobytes()


async def replay(engine, pcm: bytes, rate: int, limits: SessionLimits, *, manual: bool,
                 speculate: bool, language: str | None = "en") -> list[str]:
    finals: list[str] = []

    async def emit(event):
        if isinstance(event, ev.TranscriptCompleted):
            finals.append(event.transcript)

    config = SessionConfig(input_rate=rate, language=language, turn_detection=None if manual else TurnDetection())
    session = live.TranscriptionSession(config, limits, DirectDecoder(engine, speculate), emit)
    step = rate // 5  # 100 ms appends, as a client sends them
    for offset in range(0, len(pcm), step):
        await session.append(pcm[offset:offset + step])
    if manual:
        await session.commit()
    await asyncio.gather(*session._finals)
    return finals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--manual", action="store_true", help="one commit per file instead of server VAD")
    parser.add_argument("--speculate", action="store_true", help="let speculative finals run (a free decoder)")
    parser.add_argument("--no-short-window", action="store_true", help="finals in Whisper's 30 s window")
    parser.add_argument("--context-seconds", type=float, default=live.CONTEXT_S,
                        help="previous-turn audio decoded before a continuing turn (0: none)")
    parser.add_argument("--limit", type=int, help="only the first N files")
    parser.add_argument("--lead-silence", type=float, default=0.5, help="seconds before the speech (0: from sample 0)")
    parser.add_argument("--rate", type=int, default=16_000, choices=(16_000, 24_000), help="client PCM16 rate")
    parser.add_argument("--client-resampler", choices=("av", "linear"), default="av",
                        help="how the client resamples to 24 kHz")
    parser.add_argument("--final-trailing-ms", default=str(SessionLimits.final_trailing_ms),
                        help="comma-separated: each value is one row of the table (0: only the audio heard)")
    parser.add_argument("--json", type=Path, help="write per-file finals here")
    parser.add_argument("--language", default="en", help="the session's language ('unset': detected per turn)")
    args = parser.parse_args()
    trailing = [int(v) for v in args.final_trailing_ms.split(",")]

    if args.context_seconds <= 0:
        live.CONTEXT_MAX_GAP_S = -1.0
    else:
        live.CONTEXT_S = args.context_seconds
    engine = build_services(Settings(stt_models=[args.model])).stt_engines.load(args.model)
    rows = load_manifest(lang="en")[: args.limit]
    refs = [r.text for r in rows]
    language = None if args.language == "unset" else args.language
    tail = 0.5 if args.manual else 1.5
    pcms = [client_pcm(r.audio, args.rate, args.client_resampler, lead=args.lead_silence, tail=tail) for r in rows]
    rest = [engine.transcribe(decode_audio(r.audio.read_bytes()), TranscriptionOptions(language=language)).text
            for r in track(rows, description="REST decodes")]
    results, per_file = [], {r.id: {"reference": r.text, "rest": h} for r, h in zip(rows, rest)}
    for trailing_ms in trailing:
        limits = SessionLimits(max_pending_turns=1000, partial_interval_ms=0, short_window=not args.no_short_window,
                               speculative_final_ms=200 if args.speculate else 0, final_trailing_ms=trailing_ms)
        streamed = []
        started = time.perf_counter()
        for row, pcm in track(list(zip(rows, pcms)), description=f"replaying, trailing {trailing_ms} ms"):
            finals = asyncio.run(replay(engine, pcm, args.rate, limits, manual=args.manual, speculate=args.speculate,
                                        language=language))
            streamed.append(" ".join(finals))
            per_file[row.id][f"finals_trailing_{trailing_ms}"] = finals
        results.append({
            "model": args.model, "files": len(rows), "language": args.language, "manual": args.manual,
            "speculate": args.speculate,
            "short_window": not args.no_short_window, "context_seconds": args.context_seconds,
            "lead_silence": args.lead_silence, "rate": args.rate, "client_resampler": args.client_resampler,
            "final_trailing_ms": trailing_ms, "streamed_wer": wer(refs, streamed), "rest_wer": wer(refs, rest),
            "last_word_lost": sum(_lost_last(ref, hyp) and not _lost_last(ref, r) for ref, hyp, r
                                  in zip(refs, streamed, rest)),
            "seconds": time.perf_counter() - started})
    table = Table(title=f"streamed finals, {args.model}, {len(rows)} English files, language {args.language}, "
                        f"lead silence {args.lead_silence:g} s, {args.rate} Hz ({args.client_resampler})")
    for column in ("final trailing ms", "streamed WER", "REST WER", "last word lost (REST kept it)", "seconds"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(str(r["final_trailing_ms"]), f"{r['streamed_wer']:.2%}", f"{r['rest_wer']:.2%}",
                      str(r["last_word_lost"]), f"{r['seconds']:.0f}")
    Console(width=100).print(table)
    out = args.json or Path(__file__).parent / "results" / "realtime_replay.json"
    out.write_text(json.dumps({**machine(), "results": results,
                               "per_file": per_file}, indent=1))
    print(f"wrote {out}")


def _lost_last(reference: str, hypothesis: str) -> bool:
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    return bool(ref) and (not hyp or hyp[-1] != ref[-1])


if __name__ == "__main__":
    main()
