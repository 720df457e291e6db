"""How a live session without a language should decide it: four policies, side by side.

The live session's own code (server VAD turns, lead audio, context, final decodes) is fed the
non-English eval clips as fast as they decode, with the engine called directly (as
bench/realtime_replay.py does), language unset, in two settings:
  - one session per clip (one speaker, one language: the common case);
  - one session with every clip back to back, neighbours in different languages (a party whose
    players answer each other in different languages; turns after a gap under 2 s are decoded
    after the previous turn's tail).
Policies (the session's decode options rewritten on the way to the engine):
  - hint: as shipped: detection on the turn after its context, the session's last language kept
    unless Whisper is sure of another, a context in another language left out;
  - after-context: detection on the turn after its context, no hint;
  - whole: faster-whisper's own detection on what is decoded (context + turn), no hint;
  - no-context: turns decoded alone (no context), no hint;
  - set: the clip's language set on the session (the reference: nothing to detect; per clip only).
With --no-short-window, finals decode in Whisper's 30 s window instead of one sized to the turn.
Per language: error rate (WER; CER for ja, ko, zh), turns whose language was right, turns empty.

    .venv/bin/python bench/live_language_policies.py                       # all four
    .venv/bin/python bench/live_language_policies.py --policies hint,whole --langs es,pt
    .venv/bin/python bench/live_language_policies.py --policies set --no-mixed [--no-short-window]

Writes bench/results/live_language_policies.json (every turn's text and language).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stt_languages import LEAD, TAIL, cpu_model, mixed_order  # noqa: E402

from voxhost.evaluation.dataset import load_manifest  # noqa: E402
from voxhost.loadtest.realtime_client import load_pcm  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.realtime import events as ev  # noqa: E402
from voxhost.realtime import session as live  # noqa: E402
from voxhost.realtime.config import SessionConfig, SessionLimits  # noqa: E402
from voxhost.realtime.vad import TurnDetection  # noqa: E402
from voxhost.services import build_services  # noqa: E402
from voxhost.stt.wer import error_rate, metric_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RATE = 16_000
POLICIES = ("hint", "after-context", "whole", "no-context")  # the default run; "set" on request


class Decoder:
    """The engine in a worker thread, the policy applied to every decode's options."""

    def __init__(self, engine, policy: str):
        self._engine, self._policy = engine, policy

    def engine(self, model):
        return self._engine

    async def transcribe(self, engine, audio, options):
        if self._policy != "hint":
            options = replace(options, language_hint=None)
        if self._policy == "whole":
            options = replace(options, detect_language_from=0.0)
        return await asyncio.to_thread(engine.transcribe, audio, options)

    def busy(self, engine=None) -> bool:
        return True  # no partials or speculative finals: only finals decide the text


async def replay(engine, pcm: bytes, policy: str, limits: SessionLimits, language: str | None = None) -> list[dict]:
    turns: list[dict] = []
    starts: dict[str, int] = {}

    async def emit(event):
        if isinstance(event, ev.SpeechStarted):
            starts[event.item_id] = event.audio_start_ms
        elif isinstance(event, ev.TranscriptCompleted):
            turns.append({"start_ms": starts.get(event.item_id, 0), "text": event.transcript,
                          "language": event.language})
        elif isinstance(event, ev.TranscriptFailed):
            turns.append({"start_ms": starts.get(event.item_id, 0), "text": "", "language": None,
                          "failed": event.error.message})

    config = SessionConfig(input_rate=RATE, language=language, turn_detection=TurnDetection())
    session = live.TranscriptionSession(config, limits, Decoder(engine, policy), emit)
    for offset in range(0, len(pcm), 3200):  # 100 ms appends, as a client sends them
        await session.append(pcm[offset:offset + 3200])
    await asyncio.gather(*session._finals)
    return turns


def run_policy(engine, rows, policy: str, mixed: bool, limits: SessionLimits) -> dict:
    gap = live.CONTEXT_MAX_GAP_S
    if policy == "no-context":
        live.CONTEXT_MAX_GAP_S = -1.0
    try:
        per_clip = {r.id: asyncio.run(replay(engine, load_pcm(r.audio, RATE, lead_silence=LEAD, tail_silence=TAIL),
                                             policy, limits, r.lang if policy == "set" else None)) for r in rows}
        together = None
        if mixed and policy != "set":
            order = mixed_order(rows)
            pcms = [load_pcm(u.audio, RATE, lead_silence=LEAD, tail_silence=TAIL) for u in order]
            bounds = np.cumsum([0] + [len(p) // 2 * 1000 // RATE for p in pcms])
            together = {u.id: [] for u in order}
            for turn in asyncio.run(replay(engine, b"".join(pcms), policy, limits)):
                index = int(np.searchsorted(bounds, turn["start_ms"], side="right")) - 1
                together[order[min(index, len(order) - 1)].id].append(turn)
    finally:
        live.CONTEXT_MAX_GAP_S = gap
    return {"per_clip": per_clip, "mixed": together}


def score(rows, turns_by_clip: dict) -> dict:
    out = {}
    for lang in sorted({r.lang for r in rows}):
        mine = [r for r in rows if r.lang == lang]
        hyps = [" ".join(t["text"] for t in turns_by_clip[r.id]).strip() for r in mine]
        spoken = [t for r in mine for t in turns_by_clip[r.id] if t["text"]]
        out[lang] = {"error": error_rate([r.text for r in mine], hyps, lang),
                     "right": sum(t["language"] == lang for t in spoken), "turns": len(spoken),
                     "empty": sum(1 for r in mine for t in turns_by_clip[r.id] if not t["text"])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--langs", help="comma-separated (default: every language but English)")
    parser.add_argument("--no-mixed", action="store_true")
    parser.add_argument("--no-short-window", action="store_true", help="finals in Whisper's 30 s window")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "live_language_policies.json")
    args = parser.parse_args()

    wanted = set(args.langs.split(",")) if args.langs else None
    rows = [r for r in load_manifest() if r.lang != "en" and (wanted is None or r.lang in wanted)]
    engine = build_services(Settings(stt_models=[args.model])).stt_engines.load(args.model)
    limits = SessionLimits(max_pending_turns=10_000, partial_interval_ms=0, speculative_final_ms=0,
                           short_window=not args.no_short_window)
    loads, started, results = [os.getloadavg()[0]], time.perf_counter(), {}
    for policy in args.policies.split(","):
        print(f"{policy} ...", flush=True)
        runs = run_policy(engine, rows, policy, not args.no_mixed, limits)
        results[policy] = {"turns": runs, "per_clip": score(rows, runs["per_clip"]),
                           "mixed": score(rows, runs["mixed"]) if runs["mixed"] else None}
        loads.append(os.getloadavg()[0])
    print(f"\n{args.model}, {len(rows)} clips{', finals in 30 s windows' if args.no_short_window else ''}, "
          f"{cpu_model()} x{os.cpu_count()}, load avg "
          f"{min(loads):.1f}-{max(loads):.1f}, {time.perf_counter() - started:.0f} s\n"
          "per language: error rate % / turns whose language was right (/ empty turns, if any)\n")
    langs = sorted({r.lang for r in rows})
    print("| policy | setting | " + " | ".join(f"{lang} ({metric_name(lang)})" for lang in langs)
          + " | language right, all turns |")
    print("|---|---|" + "---|" * len(langs) + "---|")
    for policy, result in results.items():
        for setting in ("per_clip", "mixed"):
            table = result[setting]
            if not table:
                continue
            cells = [f"{100 * t['error']:.1f} / {t['right']}/{t['turns']}" + (f" / {t['empty']} empty" if t["empty"]
                                                                                  else "")
                     for t in (table[lang] for lang in langs)]
            right, turns = sum(t["right"] for t in table.values()), sum(t["turns"] for t in table.values())
            print(f"| {policy} | {'one clip a session' if setting == 'per_clip' else 'all clips, one session'} | "
                  + " | ".join(cells) + f" | {right}/{turns} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "cpu": cpu_model(), "loadavg": [min(loads), max(loads)],
                                    "short_window": not args.no_short_window,
                                    "results": results}, indent=1, ensure_ascii=False))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
