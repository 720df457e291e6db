"""Round trip per language: Kokoro speaks ten NPC lines per language
(src/voxhost/evaluation/game_lines.py) with each chosen voice, the bundled
Whisper base transcribes them in that language, and the error (WER; CER for ja
and zh) is set beside the same Whisper's error on the evaluation set's human
speech in that language, measured in the same run. The bar (issue 20): the
round trip is no worse than the human speech's error + 5 points.

Both sides use raw faster-whisper (beam 5, language given, no VAD) on the same
model, so the comparison is of the speech, not of the serving. Each line is
normalised and cut into chunks as the server does; the time to the first
chunk's audio (the engine's part of the first byte) and the real-time factor
are reported per language beside English, measured in the same run.

    PYTHONPATH=src python bench/tts_languages.py                       # shipped readers, 2 voices a language
    PYTHONPATH=src python bench/tts_languages.py --g2p gruut           # gruut (MIT) for es fr it pt instead
    PYTHONPATH=src python bench/tts_languages.py --voices all          # every voice (picks the OpenAI map)
    PYTHONPATH=src python bench/tts_languages.py --languages fr --voices ff_siwis,im_nicola,em_alex

Writes bench/results/tts_languages[_<g2p>].json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402

from voxhost.audio.pcm import from_pcm16, resample_pcm16, to_pcm16  # noqa: E402
from voxhost.engines.stt.registry import resolve_stt_model  # noqa: E402
from voxhost.engines.tts import kokoro_g2p  # noqa: E402
from voxhost.engines.tts import text as frontend  # noqa: E402
from voxhost.engines.tts.kokoro import KokoroEngine  # noqa: E402
from voxhost.engines.tts.kokoro_voices import VOICES  # noqa: E402
from voxhost.evaluation.dataset import load_manifest  # noqa: E402
from voxhost.evaluation.game_lines import LINES  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.stt.wer import cer, error_rate  # noqa: E402
from voxhost.tts.matching import measure  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TWO_VOICES = {
    "en": ["af_heart", "am_michael"], "es": ["ef_dora", "em_alex"], "fr": ["ff_siwis"],
    "hi": ["hf_alpha", "hm_omega"], "it": ["if_sara", "im_nicola"], "ja": ["jf_alpha", "jm_kumo"],
    "pt": ["pf_dora", "pm_alex"], "zh": ["zf_xiaobei", "zm_yunjian"],
}
BAR_POINTS = 5.0
GRUUT_LANGUAGES = {"es": "es", "fr": "fr-fr", "it": "it", "pt": "pt"}


def gruut_reader(language: str, espeak: bool = False):
    """gruut (MIT) in the reader shape of kokoro_g2p: per word phonemes, ties to Kokoro's
    single affricate symbols (as misaki's espeak mapping does), breaks to punctuation.
    espeak=True: gruut's espeak-style lexicon and G2P model (phonemes as espeak-ng writes
    them, without running espeak-ng)."""
    import gruut

    affricates = {"t͡ʃ": "ʧ", "d͡ʒ": "ʤ", "t͡s": "ʦ", "d͡z": "ʣ", "tʃ": "ʧ", "dʒ": "ʤ"}
    if language == "it":
        affricates.update({"ts": "ʦ", "dz": "ʣ", "tsː": "ʦː", "dzː": "ʣː"})

    def joined(phones: list[str]) -> str:
        """Adjacent stop + fricative pairs that espeak-ng ties (t^ʃ) as one affricate symbol."""
        out: list[str] = []
        for phone in phones:
            pair = (out[-1] if out else "") + phone
            if out and pair in affricates:
                out[-1] = affricates[pair]
            else:
                out.append(phone)
        return "".join(out)

    def spell(text: str) -> kokoro_g2p.Spelled:
        out = kokoro_g2p.Spelled()
        for sentence in gruut.sentences(text, lang=GRUUT_LANGUAGES[language], espeak=espeak):
            for word in sentence:
                if word.is_break or word.is_punctuation or not word.phonemes:
                    mark = {"‖": ".", "|": ","}.get("".join(word.phonemes or []), word.text)
                    out.add("".join(c for c in mark if c in ',.!?;:'))
                    continue
                phonemes = joined(word.phonemes)
                for tie, single in affricates.items():
                    phonemes = phonemes.replace(tie, single) if "\u0361" in tie else phonemes
                if out.phonemes:
                    out.add(" ")
                out.add(phonemes.replace("\u0361", ""), word.text)
        return out.strip()

    return spell


def whisper_model(settings: Settings):
    import faster_whisper

    return faster_whisper.WhisperModel(str(resolve_stt_model("whisper-base", settings.models_dir)),
                                       device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)


# Whisper base writes Hindi speech in Urdu's Arabic script unless told otherwise (the same spoken
# language, written two ways); a Devanagari prompt keeps it to the script the text is in. Hindi only.
PROMPTS = {"hi": "यह हिंदी में है।"}


def transcribe(model, audio16: np.ndarray, language: str) -> str:
    segments, _ = model.transcribe(audio16, language=language, beam_size=5, vad_filter=False,
                                   condition_on_previous_text=False, initial_prompt=PROMPTS.get(language))
    return " ".join(s.text.strip() for s in segments)


def human_baseline(model, languages: list[str]) -> dict[str, dict]:
    """Whisper's error on the evaluation set's human speech, per language (none for Hindi)."""
    from voxhost.audio.decode import decode_audio

    out = {}
    for lang in languages:
        clips = load_manifest(lang)
        if not clips:
            continue
        refs, hyps = [], []
        for clip in clips:
            refs.append(clip.text)
            hyps.append(transcribe(model, decode_audio(clip.audio.read_bytes()), lang))
        out[lang] = {"clips": len(clips), "seconds": round(sum(c.duration for c in clips), 1),
                     "error": error_rate(refs, hyps, lang), "transcripts": list(zip(refs, hyps))}
        print(f"  human speech {lang}: {len(clips)} clips, error {out[lang]['error']:.1%}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--languages", default="es,fr,hi,it,ja,pt,zh,en")
    parser.add_argument("--voices", default="", help="'all', or comma-separated ids (default: two a language)")
    parser.add_argument("--g2p", choices=["shipped", "gruut", "gruut-espeak"], default="shipped",
                        help="gruut: read es, fr, it, pt with gruut instead of espeak-ng; gruut-espeak: with "
                             "gruut's espeak-style lexicon (espeak=True)")
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--out", default="")
    parser.add_argument("--rescore", default="", help="a results JSON: score its transcripts again, print")
    args = parser.parse_args()
    if args.rescore:
        return rescore(Path(args.rescore))
    languages = [c for c in args.languages.split(",") if c]
    settings = Settings()
    engine = KokoroEngine(threads=os.cpu_count() or 1, models_dir=settings.models_dir)
    engine.load()
    engine.warm_up()
    if args.g2p.startswith("gruut"):
        for code in GRUUT_LANGUAGES:
            shipped = args.g2p == "gruut-espeak" and code in kokoro_g2p.GRUUT_LANGUAGES  # the `gruut` extra's
            kokoro_g2p._readers[code] = kokoro_g2p.gruut(code) if shipped else \
                gruut_reader(code, espeak=args.g2p == "gruut-espeak")
    for code in languages:  # readers built before any timing: a first use is not a first byte
        kokoro_g2p.reader(code)(kokoro_g2p.WARM_UP[code])
    model = whisper_model(settings)
    print(f"CPU {platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.2f}", flush=True)
    human = human_baseline(model, [c for c in languages if c != "en"])  # English is not the question here
    rows = []
    for lang in languages:
        if args.voices == "all":
            voices = [v for v, info in VOICES.items() if info.code == lang]
        elif args.voices:
            voices = args.voices.split(",")
        else:
            voices = TWO_VOICES[lang]
        lines = LINES[lang][:args.lines]
        for voice in voices:
            selection = engine.resolve_voice(voice)
            hyps, seconds, compute, f0, first = [], 0.0, 0.0, [], []
            for line in lines:
                # As the server reads it: normalised and cut into chunks for its language, each
                # synthesised in turn; the first chunk's PCM is when the first audio could leave.
                chunks = frontend.split(frontend.normalize(line, lang), language=lang)
                started = time.perf_counter()
                parts = []
                for pcm in engine.stream(chunks, selection, 1.0):
                    if not parts:
                        first.append(time.perf_counter() - started)
                    parts.append(pcm)
                compute += time.perf_counter() - started
                audio = np.concatenate(parts)
                seconds += audio.size / engine.sample_rate
                audio16 = from_pcm16(resample_pcm16(to_pcm16(audio), engine.sample_rate, 16_000))
                f0.append(measure(audio16).f0_hz)
                hyps.append(transcribe(model, audio16, lang))
            error = error_rate(lines, hyps, lang)
            baseline = human.get(lang, {}).get("error")
            row = {"language": lang, "voice": voice, "g2p": args.g2p, "lines": len(lines), "error": error,
                   "cer": cer(lines, hyps, lang),
                   "metric": "CER" if lang in ("ja", "zh") else "WER", "human_error": baseline,
                   "meets_bar": None if baseline is None else error <= baseline + BAR_POINTS / 100,
                   "median_f0_hz": float(np.median(f0)), "audio_s": round(seconds, 2),
                   "rtf": round(compute / seconds, 3) if seconds else None,
                   "first_audio_ms_median": round(float(np.median(first)) * 1000),
                   "transcripts": list(zip(lines, hyps))}
            rows.append(row)
            print(f"  {lang} {voice}: {row['metric']} {error:.1%} (human {baseline if baseline is None else f'{baseline:.1%}'}), "
                  f"f0 {row['median_f0_hz']:.0f} Hz", flush=True)
    print_table(rows)
    out = Path(args.out) if args.out else RESULTS / (f"tts_languages{'' if args.g2p == 'shipped' else '_' + args.g2p}"
                                                    f"{'_all' if args.voices == 'all' else ''}.json")
    out.write_text(json.dumps({"command": " ".join(sys.argv), "load_avg": os.getloadavg(),
                               "cpu": _cpu(), "human": human, "rows": rows}, indent=1, ensure_ascii=False))
    print(f"\nwrote {out}")


def rescore(path: Path) -> None:
    """The stored transcripts scored with the current normalisation (stt/wer.py), written back."""
    data = json.loads(path.read_text())
    for lang, human in data["human"].items():
        refs, hyps = zip(*human["transcripts"])
        human["error"] = error_rate(refs, hyps, lang)
    for row in data["rows"]:
        lines, hyps = zip(*row["transcripts"])
        row["error"], row["cer"] = error_rate(lines, hyps, row["language"]), cer(lines, hyps, row["language"])
        row["human_error"] = data["human"].get(row["language"], {}).get("error")
        row["meets_bar"] = None if row["human_error"] is None else row["error"] <= row["human_error"] + BAR_POINTS / 100
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    print_table(data["rows"])


def print_table(rows: list[dict]) -> None:
    print(f"\n| language | voice | G2P | round trip | (CER) | Whisper on human speech | bar (+{BAR_POINTS:g}) | "
          "median F0 | first audio (engine, median) | RTF |\n|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        human_s = "-" if r["human_error"] is None else f"{r['human_error']:.1%}"
        bar = "-" if r["meets_bar"] is None else ("meets" if r["meets_bar"] else "FAILS")
        print(f"| {r['language']} | {r['voice']} | {r['g2p']} | {r['metric']} {r['error']:.1%} | "
              f"{r.get('cer', r['error']):.1%} | {human_s} | {bar} | {r['median_f0_hz']:.0f} Hz | "
              f"{r.get('first_audio_ms_median', '-')} ms | {r['rtf']:.2f} |")


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    main()
