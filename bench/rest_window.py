"""REST short clips: Whisper's 30 s encoder window vs shorter windows, side by side.

Each clip is decoded every way in turn (so machine load hits all alike) with the
REST defaults (options from settings, as `stt/service.py` builds them). Reports,
per window policy, WER (pooled and per category), how many clips' text changed,
the total decode time, the audio-seconds decoded per second (one decode at a time: with one CTranslate2
worker that is also the server's throughput ceiling at any concurrency) and its
ratio to the 30 s window, and the median of each clip's time ratio (steadier
on a loaded machine). `--json` keeps every clip's text and time for analysis.

  python bench/rest_window.py --model whisper-base            # all English clips < 6 s
  python bench/rest_window.py --model whisper-base --windows 30,15,20,25 --json out.json
  python bench/rest_window.py --model whisper-base --encode-batch 8   # batched encoder on CPU?
  python bench/rest_window.py --windows 30,30+text,25+text,30+beam1 --max-seconds 0   # decoding levers, all English
  python bench/rest_window.py --windows 30,25+text --language unset   # as clients that send no language
  python bench/rest_window.py --clips-lang other --language clip --max-seconds 30 --windows 30,25+text,30+text \
      --no-language-rule          # what the short window does outside English (the service keeps it to English)

A variant is a window in seconds, optionally with decoding changes joined by '+':
`text` (no timestamp tokens, as VOXHOST_STT_TEXT_ONLY does for json/text up to 30 s),
`beamN` (beam size N), `nofallback` (no temperature-fallback retries).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from voxhost.engines.threads import configure_environment

configure_environment()  # the server's thread environment, before numpy and CTranslate2 load

import numpy as np  # noqa: E402

from voxhost.audio.decode import decode_audio  # noqa: E402
from voxhost.audio.pcm import WHISPER_RATE  # noqa: E402
from voxhost.engines.stt.base import TranscriptionOptions  # noqa: E402
from voxhost.engines.stt.windows import WHISPER_WINDOW_S  # noqa: E402
from voxhost.evaluation.dataset import load_manifest  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.realtime.decoding import final_window_seconds  # noqa: E402
from voxhost.services import build_services  # noqa: E402
from voxhost.stt.service import REST_SHORT_WINDOW_LANGUAGES, options_from  # noqa: E402
from voxhost.stt.wer import metric_name, wer  # noqa: E402


def variant_options(spec: str, base: TranscriptionOptions, seconds: float) -> TranscriptionOptions:
    """`spec` ("25+text+beam1") applied to the REST defaults for a clip of `seconds`. The
    window is a floor, as in SttService.request_options: a clip gets at least itself + 5 s."""
    window, *changes = spec.split("+")
    sized = max(int(window), final_window_seconds(seconds))
    options = base if sized >= 30 else replace(base, chunk_length=sized)
    for change in changes:
        if change == "text":
            # As SttService.request_options: text-only only within one 30 s window.
            options = replace(options, without_timestamps=seconds <= WHISPER_WINDOW_S)
        elif change.startswith("beam"):
            options = replace(options, beam_size=int(change[4:]))
        elif change == "nofallback":
            options = replace(options, temperature_fallback=False)
        else:
            raise SystemExit(f"unknown change {change!r} in {spec!r}")
    return options


def encode_batch(engine, rows, size: int, rounds: int) -> None:
    """Whisper's encoder alone on the CPU: one call on `size` clips' 30 s windows against
    `size` calls of one, alternated `rounds` times so load hits both alike."""
    from faster_whisper.audio import pad_or_trim

    model = engine.model
    feats = [model.feature_extractor(decode_audio(r.audio.read_bytes())) for r in rows[:size]]
    stack = np.stack([pad_or_trim(f[:, : f.shape[-1] - 1]) for f in feats])
    model.encode(stack[:1])  # warm-up
    batched, single = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        model.encode(stack)
        batched.append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(len(stack)):
            model.encode(stack[i : i + 1])
        single.append(time.perf_counter() - t)
    print(f"encoder, {len(stack)} clips' 30 s windows, load avg {os.getloadavg()[0]:.1f}: one batched call "
          f"{np.median(batched):.2f} s, {len(stack)} single calls {np.median(single):.2f} s "
          f"(batched/single {np.median(np.array(batched) / np.array(single)):.2f}x, median of {rounds} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--clips", type=int, default=0, help="first N short clips (0: all)")
    parser.add_argument("--max-seconds", type=float, default=6.0, help="clips shorter than this (0: all)")
    parser.add_argument("--min-seconds", type=float, default=0.0, help="and at least this long")
    parser.add_argument("--windows", default="30,15,20,25",
                        help="variants (window[+text][+beamN][+nofallback]); the first is the reference")
    parser.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "rest_window.json"),
                        help="write per-clip texts and times here")
    parser.add_argument("--encode-batch", type=int, default=0,
                        help="instead: time one encoder call on N clips against N calls of one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--language", default="en",
                        help="the request's language ('unset': detected; 'clip': each clip's own)")
    parser.add_argument("--clips-lang", default="en", help="eval clips of this language ('other': all but English)")
    parser.add_argument("--no-language-rule", action="store_true",
                        help="short windows in every language (the service keeps them to English): to study them")
    args = parser.parse_args()

    settings = Settings(stt_models=[args.model])
    engine = build_services(settings).stt_engines.load(args.model)
    rows = [r for r in load_manifest(lang=None if args.clips_lang == "other" else args.clips_lang)
            if (args.clips_lang != "other" or r.lang != "en")
            and (not args.max_seconds or r.duration < args.max_seconds) and r.duration >= args.min_seconds]
    rows = rows[: args.clips] if args.clips else rows
    if args.encode_batch:
        encode_batch(engine, rows, args.encode_batch, args.rounds)
        return
    def base_for(row):
        language = {"unset": None, "clip": row.lang}.get(args.language, args.language)
        base = options_from(settings, language=language)  # REST json (the variants add its policy)
        # As SttService.request_options asks for the short window: English only, detected first when unset.
        return base if args.no_language_rule else replace(base, shortcut_languages=REST_SHORT_WINDOW_LANGUAGES)

    windows = [w.strip() for w in args.windows.split(",")]
    hyps: dict[str, list[str]] = {w: [] for w in windows}
    times: dict[str, list[float]] = {w: [] for w in windows}
    cpu: dict[str, list[float]] = {w: [] for w in windows}  # process CPU: steadier than wall on a loaded box
    loads = [os.getloadavg()[0]]
    for row in rows:
        audio = decode_audio(row.audio.read_bytes())
        done: dict[TranscriptionOptions, tuple[str, float, float]] = {}
        for w in windows:
            options = variant_options(w, base_for(row), len(audio) / WHISPER_RATE)
            if options not in done:  # e.g. a long file, which no window or text-only change touches
                started, cpu_started = time.perf_counter(), time.process_time()
                text = engine.transcribe(audio, options).text
                done[options] = text, time.perf_counter() - started, time.process_time() - cpu_started
            hyps[w].append(done[options][0])
            times[w].append(done[options][1])
            cpu[w].append(done[options][2])
        loads.append(os.getloadavg()[0])
    refs = [r.text for r in rows]
    audio_s = sum(r.duration for r in rows)
    ref_time = sum(times[windows[0]])
    within = f"< {args.max_seconds:g} s" if args.max_seconds else "(all)"
    languages = sorted({r.lang for r in rows})
    print(f"\n{args.model}, {len(rows)} {'English' if languages == ['en'] else '/'.join(languages)} clips {within} "
          f"({audio_s:.0f} s of audio), language {args.language}"
          f"{', short windows in every language' if args.no_language_rule else ''}, "
          f"load avg {min(loads):.1f}-{max(loads):.1f}\n")
    if languages != ["en"]:  # error rate (WER; CER for ja, ko, zh) per language
        print("| variant | " + " | ".join(f"{lang} {metric_name(lang)}" for lang in languages)
              + " | clips changed | decode s |")
        print("|---|" + "---|" * len(languages) + "---|---|")
        for w in windows:
            cells = []
            for lang in languages:
                pairs = [(r.text, h) for r, h in zip(rows, hyps[w]) if r.lang == lang]
                cells.append(f"{100 * wer([p[0] for p in pairs], [p[1] for p in pairs], lang):.2f}%")
            changed = sum(a.strip() != b.strip() for a, b in zip(hyps[w], hyps[windows[0]]))
            print(f"| {w} | " + " | ".join(cells) + f" | {changed} | {sum(times[w]):.1f} |")
        categories = []
    else:
        categories = sorted({r.category for r in rows})
    short = [i for i, r in enumerate(rows) if r.duration < 6.0]
    if categories:
        print("| variant | WER | WER < 6 s | " + " | ".join(categories)
              + " | clips changed | decode s | audio-s/s | speed | median clip time vs first | CPU s | CPU vs first |")
        print("|---|---|---|" + "---|" * len(categories) + "---|---|---|---|---|---|---|")
    for w in windows if languages == ["en"] else []:
        per_cat = []
        for cat in categories:
            pairs = [(r.text, h) for r, h in zip(rows, hyps[w]) if r.category == cat]
            per_cat.append(f"{100 * wer([p[0] for p in pairs], [p[1] for p in pairs]):.1f}%")
        changed = sum(a.strip() != b.strip() for a, b in zip(hyps[w], hyps[windows[0]]))
        total = sum(times[w])
        short_wer = wer([refs[i] for i in short], [hyps[w][i] for i in short])
        print(f"| {w} | {100 * wer(refs, hyps[w]):.2f}% | {100 * short_wer:.2f}% | " + " | ".join(per_cat)
              + f" | {changed} | {total:.1f} | {audio_s / total:.2f} | {ref_time / total:.2f}x"
              # Per clip, the same moment's load hits both: steadier than the totals on a busy box.
              + f" | {np.median(np.array(times[w]) / np.array(times[windows[0]])):.2f}x"
              + f" | {sum(cpu[w]):.1f} | {sum(cpu[w]) / sum(cpu[windows[0]]):.2f}x |")
    if args.json:
        clips = [{"audio": r.audio.name, "lang": r.lang, "category": r.category, "duration": r.duration, "ref": r.text,
                  **{f"hyp_{w}": hyps[w][i] for w in windows}, **{f"s_{w}": times[w][i] for w in windows},
                  **{f"cpu_{w}": cpu[w][i] for w in windows}}
                 for i, r in enumerate(rows)]
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "loadavg": [min(loads), max(loads)], "clips": clips}, f, indent=1)


if __name__ == "__main__":
    main()
