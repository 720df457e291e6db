"""Language identification for TTS: which library, measured on the text a game sends.

Accuracy on three sets: the NPC lines of src/voxhost/evaluation/game_lines.py
(whole lines), their clauses alone (cut at , . ! ? and their CJK forms: short
text, the hard case), and the evaluation set's human transcripts in the
languages Kokoro speaks. Each candidate is restricted to Kokoro's eight
languages. Memory is the resident growth of a fresh process that loads the
candidate and classifies once; latency the mean per call, all in one run.

    PYTHONPATH=src python bench/tts_language_id.py

Candidates: voxhost's (script rules, then lingua's low-accuracy mode on Latin
text; short uncertain sentences take their line's language: tts/language_id.py),
the same rules with py3langid on Latin text, py3langid alone, lingua alone
(high and low accuracy mode). py3langid is not a dependency: `pip install
py3langid` to include its rows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voxhost.evaluation.dataset import load_manifest  # noqa: E402
from voxhost.evaluation.game_lines import LINES  # noqa: E402
from voxhost.tts.language_id import LATIN_LANGUAGES, SPOKEN  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
_CLAUSE = re.compile(r"(?<=[,.!?;、。，！？])\s*")
_LINGUA = {"en": "ENGLISH", "es": "SPANISH", "fr": "FRENCH", "hi": "HINDI", "it": "ITALIAN", "ja": "JAPANESE",
           "pt": "PORTUGUESE", "zh": "CHINESE"}


def candidate(name: str):
    """(classify(sentence, line) -> code) for a candidate, loaded."""
    if name.startswith("voxhost"):
        from voxhost.tts import language_id

        if name == "voxhost+py3langid":  # the same rules with py3langid deciding Latin text
            language_id._latin = candidate("py3langid-latin")
        else:
            language_id.load()
        return language_id.detect
    if name.startswith("py3langid"):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if name == "py3langid-latin":
            identifier.set_languages(list(LATIN_LANGUAGES))
            return lambda text: tuple(identifier.classify(text))
        identifier.set_languages(list(SPOKEN))
        return lambda sentence, line=None: identifier.classify(sentence)[0]
    from lingua import Language, LanguageDetectorBuilder

    builder = LanguageDetectorBuilder.from_languages(*(getattr(Language, _LINGUA[c]) for c in SPOKEN))
    if name == "lingua-low":
        builder = builder.with_low_accuracy_mode()
    detector = builder.with_preloaded_language_models().build()
    back = {v: k for k, v in _LINGUA.items()}

    def classify(sentence: str, line: str | None = None) -> str:
        found = detector.detect_language_of(sentence)
        return back.get(found.name, "?") if found is not None else "?"

    return classify


def cases() -> dict[str, list[tuple[str, str, str]]]:
    """set name -> [(language, sentence, its line)]."""
    lines = [(lang, line, line) for lang, rows in LINES.items() for line in rows]
    clauses = [(lang, c, line) for lang, rows in LINES.items() for line in rows for c in _CLAUSE.split(line)
               if c.strip(" ,.!?¡¿、。，！？")]
    human = [(u.lang, u.text, u.text) for u in load_manifest() if u.lang in SPOKEN]
    return {"game lines": lines, "clauses": clauses, "human transcripts": human}


def rss_kb() -> int:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    return 0


def measure(name: str) -> dict:
    before = rss_kb()
    started = time.perf_counter()
    classify = candidate(name)
    classify("warm up")
    load_s = time.perf_counter() - started
    loaded = rss_kb()
    out = {"name": name, "load_s": round(load_s, 3), "rss_mb": round((loaded - before) / 1024, 1)}
    calls, spent = 0, 0.0
    for set_name, rows in cases().items():
        right, wrong = 0, []
        for lang, sentence, line in rows:
            started = time.perf_counter()
            got = classify(sentence, line)
            spent += time.perf_counter() - started
            calls += 1
            if got == lang:
                right += 1
            else:
                wrong.append(f"{lang}->{got}: {sentence[:40]}")
        out[set_name] = {"n": len(rows), "accuracy": right / len(rows), "wrong": wrong[:8]}
    out["us_per_call"] = round(spent / calls * 1e6, 1)
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2])))
        return
    rows = []
    for name in ("voxhost", "voxhost+py3langid", "py3langid", "lingua-high", "lingua-low"):
        if name.endswith("py3langid") and importlib.util.find_spec("py3langid") is None:
            print(f"  {name}: skipped (pip install py3langid to compare it)")
            continue
        done = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {name}: done", flush=True)
    sets = ("game lines", "clauses", "human transcripts")
    print("\n| candidate | " + " | ".join(f"{s} (n={rows[0][s]['n']})" for s in sets)
          + " | added RSS | load | per call |\n|---|" + "---|" * (len(sets) + 3))
    for r in rows:
        print(f"| {r['name']} | " + " | ".join(f"{r[s]['accuracy']:.1%}" for s in sets)
              + f" | {r['rss_mb']:.0f} MB | {r['load_s']:.2f} s | {r['us_per_call']:.0f} µs |")
    out = RESULTS / "tts_language_id.json"
    out.write_text(json.dumps({"command": "PYTHONPATH=src python bench/tts_language_id.py",
                               "load_avg": os.getloadavg(), "rows": rows}, indent=1, ensure_ascii=False))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
