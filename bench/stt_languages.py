"""Speech-to-text per language: the server (REST and live) against raw faster-whisper, side by side.

    .venv/bin/python bench/stt_languages.py                      # the 37 non-English eval clips
    .venv/bin/python bench/stt_languages.py --langs ja,ko,zh     # some languages
    .venv/bin/python bench/stt_languages.py --no-mixed           # skip the mixed-language session
    .venv/bin/python bench/stt_languages.py --live-only --langs es,fr,ja   # raw, raw on the turns, live

For every clip, back to back (so machine load hits all paths alike), with `language`
unset and set to the clip's language:
  - raw: faster-whisper's own API set up as voxhost sets up its engine
    (voxhost.evaluation.raw_engine), in this process, from its own model instance;
  - REST: POST /v1/audio/transcriptions through the `openai` SDK, response_format json
    (the path games use: on a CPU engine a clip-sized text-only window, stt/service.py),
    language from the response's `languages`; and verbose_json with language unset, to
    check its `language` (a name, as OpenAI gives it) and its text;
  - live: one WebSocket /v1/realtime session per clip (OpenAI's GA protocol, 24 kHz PCM16,
    server VAD with OpenAI's defaults, 0.5 s of silence before and 1.5 s after), streamed
    faster than real time (a final's text depends on where turns fall, not on pacing);
    the language of each turn from its completed event's `languages`;
  - raw on the live turns: raw faster-whisper (as above) on each turn the live session cut, one
    by one (from its speech start less the server's decode lead to its speech stop, on the same
    stream), joined: the same segmentation without the server, so live against it is what the
    server adds and raw against it what cutting a clip into turns costs Whisper.
Then, unless --no-mixed, one live session with every clip back to back in an order where
neighbours differ in language, language unset: a party whose players speak different
languages, each turn decoded after the previous turn's tail when it follows within 2 s.

Error rate: WER, or CER for ja, ko and zh (voxhost.stt.wer: the same normalisation
both sides, numbers spelled in the clip's language). Detection: clips whose detected
language is the clip's (REST, raw); for live, turns with text whose language is right,
and clips all of whose turns are. The server runs in this process (uvicorn in a thread,
as bench/realtime_latency.py does) with production defaults, except that finals may wait
(an unpaced stream commits turns faster than two cores decode them).

Prints the table (markdown) and writes bench/results/stt_languages.json with every transcript.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import defaultdict
from pathlib import Path

from _machine import cpu_model
from _ready import wait_ready  # bench/ is on sys.path when run as a script
from rich.progress import Progress

from voxhost.audio.decode import decode_audio
from voxhost.audio.pcm import WHISPER_RATE
from voxhost.evaluation.dataset import Utterance, load_manifest
from voxhost.evaluation.raw_engine import transcribe_raw
from voxhost.loadtest.realtime_client import load_pcm, session_update, stream
from voxhost.stt.languages import language_name
from voxhost.stt.wer import error_rate, metric_name

ROOT = Path(__file__).resolve().parents[1]
RATE = 24_000
LEAD, TAIL = 0.5, 1.5  # seconds of silence around each clip in a live stream
PATHS = ("raw", "rest", "live", "raw_turns")
LIVE_ONLY_PATHS = ("raw", "live", "raw_turns")
# The server decodes a turn from this long before its detected start, which it reports as
# prefix_padding_ms (300) before that start: realtime/session.py MIN_DECODE_LEAD_MS.
DECODE_LEAD_BEFORE_REPORTED_S = 0.3


def start_server(model: str):
    """The app under uvicorn in a thread of this process (see bench/realtime_latency.py)."""
    import socket
    import threading

    import uvicorn

    from voxhost.api.app import create_app
    from voxhost.ops.settings import Settings

    settings = Settings(stt_models=[model], tts_engines=["hibari"], realtime_max_final_wait_seconds=600.0,
                        realtime_max_pending_turns=256, max_audio_seconds=600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", ws_ping_interval=None))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    if not wait_ready(base):
        raise SystemExit("server did not become ready")
    return server, base, settings


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/v1/realtime?intent=transcription"


def turn_language(turn) -> str | None:
    done = turn.first("conversation.item.input_audio_transcription.completed")
    languages = done[1].get("languages") if done else None
    return languages[0]["code"] if languages else None


def live_turns(result) -> list[dict]:
    turns = []
    for turn in result.ordered_turns:
        started = turn.first("input_audio_buffer.speech_started")
        stopped = turn.first("input_audio_buffer.speech_stopped")
        turns.append({"start_ms": started[1]["audio_start_ms"] if started else None,
                      "end_ms": stopped[1]["audio_end_ms"] if stopped else None,
                      "text": turn.transcript or "", "language": turn_language(turn),
                      "failed": turn.transcript is None})
    return turns


async def live(base: str, pcm: bytes, language: str | None) -> list[dict]:
    result = await stream(ws_url(base), pcm, rate=RATE, realtime=False, settle_timeout=900,
                          update=session_update(rate=RATE, model="whisper-1", language=language))
    if result.errors:
        raise RuntimeError(result.errors)
    return live_turns(result)


def raw_on_turns(raw_model, settings, streamed, turns: list[dict], language: str | None) -> dict:
    """Raw faster-whisper on each turn the live session cut from `streamed` (16 kHz, the same
    lead and tail silence as the stream), one by one."""
    texts, languages = [], []
    for turn in turns:
        if turn["start_ms"] is None or turn["end_ms"] is None:
            continue
        lo = max(0, int((turn["start_ms"] / 1000 - DECODE_LEAD_BEFORE_REPORTED_S) * WHISPER_RATE))
        hi = int(turn["end_ms"] / 1000 * WHISPER_RATE)
        segments, info = transcribe_raw(raw_model, streamed[lo:hi], settings, language)
        text = "".join(s.text for s in segments).strip()
        if text:
            texts.append(text)
            languages.append(info.language if info else None)
    return {"text": " ".join(texts), "languages": languages}


def run_clip(utt: Utterance, raw_model, settings, client, base: str, live_only: bool = False) -> dict:
    import numpy as np

    audio = decode_audio(utt.audio.read_bytes())
    pcm = load_pcm(utt.audio, RATE, lead_silence=LEAD, tail_silence=TAIL)
    streamed = np.concatenate([np.zeros(int(LEAD * WHISPER_RATE), np.float32), audio,
                               np.zeros(int(TAIL * WHISPER_RATE), np.float32)])
    out: dict = {"id": utt.id, "lang": utt.lang, "duration": utt.duration, "reference": utt.text}
    for mode, language in (("unset", None), ("set", utt.lang)):
        segments, info = transcribe_raw(raw_model, audio, settings, language)
        text = "".join(s.text for s in segments).strip()
        out[f"raw_{mode}"] = {"text": text, "languages": [info.language] if info and text else []}
        if not live_only:
            with open(utt.audio, "rb") as f:
                body = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="json",
                                                          **({"language": language} if language else {}))
            out[f"rest_{mode}"] = {"text": body.text, "languages": [x.code for x in body.languages or []]}
        turns = asyncio.run(live(base, pcm, language))
        out[f"live_{mode}"] = {"text": " ".join(t["text"] for t in turns).strip(), "turns": turns,
                               "languages": [t["language"] for t in turns if t["text"]]}
        out[f"raw_turns_{mode}"] = raw_on_turns(raw_model, settings, streamed, turns, language)
    if live_only:
        return out
    with open(utt.audio, "rb") as f:
        verbose = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json")
    out["verbose_unset"] = {"text": verbose.text, "language_name": verbose.language}
    return out


def mixed_order(rows: list[Utterance]) -> list[Utterance]:
    """Every clip once, each time from the language with most clips left that differs from the
    last one's, so neighbours differ in language wherever the mix allows."""
    queues: dict[str, list[Utterance]] = defaultdict(list)
    for row in rows:
        queues[row.lang].append(row)
    order: list[Utterance] = []
    while any(queues.values()):
        left = [lang for lang in sorted(queues) if queues[lang]]
        others = [lang for lang in left if not order or lang != order[-1].lang] or left
        order.append(queues[max(others, key=lambda lang: len(queues[lang]))].pop(0))
    return order


def run_mixed(rows: list[Utterance], base: str) -> dict:
    import numpy as np

    order = mixed_order(rows)
    pcms = [load_pcm(u.audio, RATE, lead_silence=LEAD, tail_silence=TAIL) for u in order]
    bounds = np.cumsum([0] + [len(p) // 2 * 1000 // RATE for p in pcms])  # ms where each clip starts
    turns = asyncio.run(live(base, b"".join(pcms), None))
    clips = {u.id: {"lang": u.lang, "turns": []} for u in order}
    for turn in turns:
        index = int(np.searchsorted(bounds, turn["start_ms"] or 0, side="right")) - 1
        clips[order[min(index, len(order) - 1)].id]["turns"].append(turn)
    return {"order": [u.id for u in order], "clips": clips}


def score(rows: list[Utterance], clips: dict, mixed: dict | None, paths=PATHS) -> list[dict]:
    table = []
    for lang in sorted({r.lang for r in rows}):
        mine = [r for r in rows if r.lang == lang]
        refs = [r.text for r in mine]
        line: dict = {"lang": lang, "clips": len(mine), "metric": metric_name(lang),
                      "audio_s": round(sum(r.duration for r in mine), 1)}
        for path in paths:
            for mode in ("unset", "set"):
                line[f"{path}_{mode}"] = error_rate(refs, [clips[r.id][f"{path}_{mode}"]["text"] for r in mine], lang)
        for path in ("raw", "rest"):
            if path in paths:
                line[f"detect_{path}"] = sum(clips[r.id][f"{path}_unset"]["languages"] == [lang]
                                             for r in mine) / len(mine)
        if "rest" in paths:
            line["verbose_unset"] = error_rate(refs, [clips[r.id]["verbose_unset"]["text"] for r in mine], lang)
            line["detect_verbose"] = sum(clips[r.id]["verbose_unset"]["language_name"] == language_name(lang)
                                         for r in mine) / len(mine)
        raw_turn_langs = [code for r in mine for code in clips[r.id]["raw_turns_unset"]["languages"]]
        line["detect_raw_turns"] = sum(c == lang for c in raw_turn_langs) / len(raw_turn_langs) if raw_turn_langs \
            else 0.0
        turn_langs = [code for r in mine for code in clips[r.id]["live_unset"]["languages"]]
        line["detect_live_turns"] = sum(c == lang for c in turn_langs) / len(turn_langs) if turn_langs else 0.0
        line["live_turns"] = len(turn_langs)
        line["detect_live_clips"] = sum(bool(clips[r.id]["live_unset"]["languages"]) and all(
            c == lang for c in clips[r.id]["live_unset"]["languages"]) for r in mine) / len(mine)
        if mixed:
            texts = [" ".join(t["text"] for t in mixed["clips"][r.id]["turns"]).strip() for r in mine]
            line["mixed"] = error_rate(refs, texts, lang)
            codes = [t["language"] for r in mine for t in mixed["clips"][r.id]["turns"] if t["text"]]
            line["detect_mixed_turns"] = sum(c == lang for c in codes) / len(codes) if codes else 0.0
        table.append(line)
    return table


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


NAMES = {"raw": "raw", "rest": "REST", "live": "live", "raw_turns": "raw on live turns"}


def markdown(table: list[dict], mixed: bool, paths=PATHS) -> str:
    head = ["lang", "clips", "metric", *(f"{NAMES[p]} {m}" for m in ("unset", "set") for p in paths)]
    head += ["verbose unset", "detect raw", "detect REST", "detect verbose"] if "rest" in paths else ["detect raw"]
    head += ["detect live turns (clips)", "detect raw on live turns"]
    if mixed:
        head += ["mixed session", "detect mixed turns"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in table:
        cells = [t["lang"], str(t["clips"]), t["metric"]]
        cells += [pct(t[f"{p}_{m}"]) for m in ("unset", "set") for p in paths]
        cells += [pct(t["verbose_unset"]), pct(t["detect_raw"]), pct(t["detect_rest"]), pct(t["detect_verbose"])] \
            if "rest" in paths else [pct(t["detect_raw"])]
        cells += [f"{pct(t['detect_live_turns'])} of {t['live_turns']} ({pct(t['detect_live_clips'])})",
                  pct(t["detect_raw_turns"])]
        if mixed:
            cells += [pct(t["mixed"]), pct(t["detect_mixed_turns"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--langs", help="comma-separated (default: every language but English)")
    parser.add_argument("--limit", type=int, default=0, help="at most N clips per language")
    parser.add_argument("--no-mixed", action="store_true", help="skip the mixed-language session")
    parser.add_argument("--live-only", action="store_true",
                        help="raw, live and raw on the live turns only (no REST, no mixed session)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stt_languages.json")
    args = parser.parse_args()

    from faster_whisper import WhisperModel
    from openai import OpenAI

    from voxhost.engines.stt.bundled import resolve_stt_model

    wanted = set(args.langs.split(",")) if args.langs else None
    rows = [r for r in load_manifest() if r.lang != "en" and (wanted is None or r.lang in wanted)]
    if args.limit:
        per: dict[str, int] = defaultdict(int)
        rows = [r for r in rows if (per.__setitem__(r.lang, per[r.lang] + 1) or per[r.lang]) <= args.limit]
    server, base, settings = start_server(args.model)
    raw_model = WhisperModel(resolve_stt_model(args.model, settings.models_dir), device="cpu", compute_type="int8")
    client = OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=900)
    loads = [os.getloadavg()[0]]
    started = time.perf_counter()
    clips: dict[str, dict] = {}
    with Progress() as progress:
        task = progress.add_task("clips: raw, REST, live, raw on the live turns; unset and set", total=len(rows))
        for utt in rows:
            clips[utt.id] = run_clip(utt, raw_model, settings, client, base, live_only=args.live_only)
            loads.append(os.getloadavg()[0])
            progress.advance(task)
    mixed = None
    if not (args.no_mixed or args.live_only):
        print("mixed-language session ...", flush=True)
        mixed = run_mixed(rows, base)
        loads.append(os.getloadavg()[0])
    server.should_exit = True
    paths = LIVE_ONLY_PATHS if args.live_only else PATHS
    table = score(rows, clips, mixed, paths)
    result = {
        "model": args.model, "clips": len(rows), "audio_seconds": round(sum(r.duration for r in rows), 1),
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "loadavg": [min(loads), max(loads)],
        "seconds": round(time.perf_counter() - started, 1), "table": table, "per_clip": clips, "mixed": mixed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(f"\n{args.model}, {len(rows)} clips ({result['audio_seconds']} s), {result['cpu']} x{os.cpu_count()}, "
          f"load avg {min(loads):.1f}-{max(loads):.1f}, {result['seconds']:.0f} s\n"
          "error rate % (WER; CER for ja, ko, zh), then language detected right % (language unset)\n")
    print(markdown(table, mixed is not None, paths))
    print(f"\nwritten to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
