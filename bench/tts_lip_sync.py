"""Lip-sync accuracy: the word start times voxhost sends (`"timestamps": true`)
against an independent aligner, Whisper base's word timestamps on the same audio.

Each evaluation sentence is one line, spoken by each voice through the server's
renderer (so the events are exactly those the SSE stream carries); the median
absolute start error is over every word both sides agree on.

    PYTHONPATH=src python bench/tts_lip_sync.py [--voices af_heart,am_onyx,bf_emma,bm_george] [--speed 1.0]
    PYTHONPATH=src python bench/tts_lip_sync.py --languages es,fr,it,pt,en   # the NPC lines of each language,
                                              # two native voices each, in one run (bench/results/*.json)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402

from voxhost.audio.decode import decode_audio  # noqa: E402
from voxhost.engines.stt.base import TranscriptionOptions  # noqa: E402
from voxhost.engines.tts import text as frontend  # noqa: E402
from voxhost.evaluation.dataset import tts_sentences  # noqa: E402
from voxhost.evaluation.lipsync import start_errors  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.services import build_services  # noqa: E402
from voxhost.tts.service import _Renderer  # noqa: E402
from voxhost.tts.timing import Marks  # noqa: E402


def line_errors(engine, whisper, selection, sentence: str, speed: float, language: str = "en") -> list[float]:
    chunks = frontend.split(frontend.normalize(sentence, language), language=language)
    renderer = _Renderer(chunks, "wav", engine.sample_rate, None)
    audio, words = b"", []
    for chunk in chunks:
        for piece in renderer.feed(engine.synthesize_timed(chunk.text, selection, speed, language)):
            if isinstance(piece, Marks):
                words += [(e["word"], e["start"]) for e in piece if e["type"] == "speech.word"]
            else:
                audio += piece
    audio += renderer.close()
    options = TranscriptionOptions(language=language, beam_size=5, vad_filter=False, word_timestamps=True)
    transcript = whisper.transcribe(decode_audio(audio), options)
    reference = [(w.word, w.start) for s in transcript.segments for w in s.words]
    return start_errors(words, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", default="af_heart,am_onyx,bf_emma,bm_george")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--lead-frames", type=float, default=None, help="try another audio lead (calibration)")
    parser.add_argument("--languages", default="", help="per language instead: the NPC lines (game_lines.py)")
    args = parser.parse_args()
    if args.lead_frames is not None:
        import voxhost.engines.tts.kokoro as kokoro

        kokoro.AUDIO_LEAD_FRAMES = args.lead_frames
    settings = Settings(tts_engines=["kokoro"])
    services = build_services(settings)
    services.tts_engines.load_all(warm_up=False)
    engine = services.tts_engines.engines["kokoro"]
    whisper = services.stt_engines.load("whisper-base")
    if args.languages:
        return by_language(engine, whisper, args)
    sentences = tts_sentences()
    print(f"load average {os.getloadavg()[0]:.1f}; {len(sentences)} sentences; speed {args.speed}")
    print("| voice | words paired | median abs start error | p90 |\n|---|---|---|---|")
    pooled: list[float] = []
    for spec in args.voices.split(","):
        selection = engine.resolve_voice(spec)
        errors = [e for s in sentences for e in line_errors(engine, whisper, selection, s, args.speed)]
        pooled += errors
        print(f"| {spec} | {len(errors)} | {np.median(errors) * 1000:.0f} ms | "
              f"{np.percentile(errors, 90) * 1000:.0f} ms |", flush=True)
    print(f"| all | {len(pooled)} | {np.median(pooled) * 1000:.0f} ms | {np.percentile(pooled, 90) * 1000:.0f} ms |")


LANGUAGE_VOICES = {"en": "af_heart,am_michael", "es": "ef_dora,em_alex", "fr": "ff_siwis", "hi": "hf_alpha,hm_omega",
                   "it": "if_sara,im_nicola", "pt": "pf_dora,pm_alex"}


def by_language(engine, whisper, args) -> None:
    import json

    from voxhost.evaluation.game_lines import LINES

    rows = []
    print(f"load average {os.getloadavg()[0]:.1f}; speed {args.speed}")
    print("| language | voice | words paired / spoken | median abs start error | p90 |\n|---|---|---|---|---|")
    for language in args.languages.split(","):
        for spec in LANGUAGE_VOICES[language].split(","):
            selection = engine.resolve_voice(spec)
            errors = [e for s in LINES[language] for e in
                      line_errors(engine, whisper, selection, s, args.speed, language)]
            spoken = sum(len(s.split()) for s in LINES[language])
            row = {"language": language, "voice": spec, "paired": len(errors), "words": spoken,
                   "median_ms": round(float(np.median(errors)) * 1000), "p90_ms":
                   round(float(np.percentile(errors, 90)) * 1000)}
            rows.append(row)
            print(f"| {language} | {spec} | {len(errors)} / {spoken} | {row['median_ms']} ms | {row['p90_ms']} ms |",
                  flush=True)
    out = Path(__file__).resolve().parent / "results" / "tts_lip_sync_languages.json"
    out.write_text(json.dumps({"command": "PYTHONPATH=src python " + " ".join(sys.argv),
                               "load_avg": os.getloadavg(), "rows": rows}, indent=1, ensure_ascii=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
