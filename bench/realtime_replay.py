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

Prints pooled WER for the streamed finals and for one REST-style decode per file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from rich.progress import track

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.engines.stt.registry import SttRegistry
from voxhost.evaluation.dataset import load_manifest
from voxhost.evaluation.wer import wer
from voxhost.ops.settings import Settings
from voxhost.realtime import events as ev
from voxhost.realtime import session as live
from voxhost.loadtest.realtime_client import load_pcm
from voxhost.realtime.config import SessionConfig, SessionLimits
from voxhost.realtime.vad import TurnDetection


class DirectDecoder:
    """The engine in a worker thread; `busy` decides whether speculative finals run."""

    def __init__(self, engine, speculate: bool):
        self._engine = engine
        self._speculate = speculate

    def engine(self, model):
        return self._engine

    async def transcribe(self, engine, audio, options: TranscriptionOptions):
        return await asyncio.to_thread(engine.transcribe, audio, options)

    def busy(self) -> bool:
        return not self._speculate


async def replay(engine, path: Path, limits: SessionLimits, *, manual: bool, speculate: bool) -> list[str]:
    finals: list[str] = []

    async def emit(event):
        if isinstance(event, ev.TranscriptCompleted):
            finals.append(event.transcript)

    config = SessionConfig(input_rate=16_000, language="en", turn_detection=None if manual else TurnDetection())
    session = live.TranscriptionSession(config, limits, DirectDecoder(engine, speculate), emit)
    pcm = load_pcm(path, 16_000, lead_silence=0.5, tail_silence=0.5 if manual else 1.5)
    for offset in range(0, len(pcm), 3200):  # 100 ms appends, as a client sends them
        await session.append(pcm[offset:offset + 3200])
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
    parser.add_argument("--json", type=Path, help="write per-file finals here")
    args = parser.parse_args()

    if args.context_seconds <= 0:
        live.CONTEXT_MAX_GAP_S = -1.0
    else:
        live.CONTEXT_S = args.context_seconds
    engine = SttRegistry(Settings(stt_models=[args.model])).load(args.model)
    limits = SessionLimits(max_pending_turns=1000, partial_interval_ms=0, short_window=not args.no_short_window,
                           speculative_final_ms=200 if args.speculate else 0)
    rows = load_manifest(lang="en")[: args.limit]
    streamed, rest, per_file = [], [], {}
    started = time.perf_counter()
    for row in track(rows, description="replaying"):
        finals = asyncio.run(replay(engine, row.audio, limits, manual=args.manual, speculate=args.speculate))
        streamed.append(" ".join(finals))
        rest.append(engine.transcribe(decode_audio(row.audio.read_bytes()), TranscriptionOptions(language="en")).text)
        per_file[row.id] = {"reference": row.text, "finals": finals, "rest": rest[-1]}
    refs = [r.text for r in rows]
    result = {"model": args.model, "files": len(rows), "manual": args.manual, "speculate": args.speculate,
              "short_window": not args.no_short_window, "context_seconds": args.context_seconds,
              "streamed_wer": wer(refs, streamed), "rest_wer": wer(refs, rest),
              "seconds": time.perf_counter() - started}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps({**result, "per_file": per_file}, indent=1))


if __name__ == "__main__":
    main()
