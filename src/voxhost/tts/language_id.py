"""Which language a sentence is in, from its text: OpenAI's speech API has no
language field, so the text has to say.

The writing system decides first, since it is certain where a model guesses:
kana is Japanese, Han without kana is Mandarin (Japanese if the line has kana
elsewhere), Devanagari is Hindi. Latin script goes to lingua (Apache-2.0, its
models ship in the wheel; nothing is downloaded) in its low-accuracy mode,
restricted to the Latin-script languages Kokoro speaks: with these rules it
was as accurate as its high-accuracy mode or py3langid, at a tenth of their
memory. A short sentence that py3langid is unsure of takes the
language of its whole line: "Merci." alone is a coin toss, inside a French line
it is French. docs/benchmarks.md ("Language identification") measures this
against py3langid and lingua alone, on NPC lines, their clauses and the
evaluation set's transcripts.

Text in a script no engine reads (Korean, Arabic, Cyrillic, ...) is a 400,
before any synthesis.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter

from voxhost.errors import InvalidRequest

LATIN_LANGUAGES = ("en", "es", "fr", "it", "pt")
SPOKEN = ("en", "es", "fr", "hi", "it", "ja", "pt", "zh")
# A sentence of up to SHORT_WORDS words whose most likely language scores below CONFIDENT (or
# below CONFIDENT_3 with three words or more) takes its line's language (docs/benchmarks.md).
CONFIDENT = 0.9
CONFIDENT_3 = 0.7
SHORT_WORDS = 4


class UnreadableScript(InvalidRequest):
    code = "unsupported_language"

    def __init__(self, message: str):
        super().__init__(message, param="input")


def _script(c: str) -> str | None:
    """The writing system of one letter, by its Unicode name; None for anything not a letter."""
    if not unicodedata.category(c).startswith("L"):
        return None
    name = unicodedata.name(c, "")
    if name.startswith(("HIRAGANA", "KATAKANA")) or c == "ー":
        return "kana"
    if name.startswith("CJK UNIFIED") or name.startswith("CJK COMPATIBILITY IDEOGRAPH"):
        return "han"
    return name.split(" ", 1)[0].lower() or None  # latin, devanagari, hangul, arabic, cyrillic, ...


_READABLE = {"latin", "kana", "han", "devanagari"}
_LATIN_WORD = re.compile(r"[A-Za-z\u00C0-\u024F]+")
_SCRIPT_NAMES = {"hangul": "Korean (Hangul)", "arabic": "Arabic", "cyrillic": "Cyrillic", "hebrew": "Hebrew",
                 "thai": "Thai", "greek": "Greek"}


def scripts(text: str) -> Counter:
    return Counter(s for s in map(_script, text) if s is not None)


_lock = threading.Lock()
_detector = None
_CODES = {"ENGLISH": "en", "SPANISH": "es", "FRENCH": "fr", "ITALIAN": "it", "PORTUGUESE": "pt"}


def _lingua():
    global _detector
    with _lock:
        if _detector is None:
            from lingua import Language, LanguageDetectorBuilder

            _detector = (LanguageDetectorBuilder.from_languages(*(getattr(Language, name) for name in _CODES))
                         .with_low_accuracy_mode().with_preloaded_language_models().build())
        return _detector


def load() -> None:
    """Read the models now (at start), not on the first request."""
    _latin("warm up")


def _latin(text: str) -> tuple[str, float]:
    """The most likely Latin-script language and its confidence (0-1)."""
    best = _lingua().compute_language_confidence_values(text)[0]
    return _CODES[best.language.name], float(best.value)


def detect(sentence: str, line: str | None = None) -> str:
    """The ISO 639-1 code of the language `sentence` is in (one of SPOKEN). `line` is the whole
    input it came from: the context for CJK and for short, uncertain sentences. Raises
    UnreadableScript if its letters are mostly in a script no engine reads."""
    counts = scripts(sentence)
    if not counts:
        return detect(line) if line and line != sentence and scripts(line) else "en"
    readable = sum(n for s, n in counts.items() if s in _READABLE)
    if readable * 2 < sum(counts.values()):
        script = max(counts, key=lambda s: counts[s])
        raise UnreadableScript(f"'input' is written in {_SCRIPT_NAMES.get(script, script.capitalize())} script, "
                               f"which no engine here reads; languages spoken: {', '.join(SPOKEN)}.")
    if counts["kana"]:
        return "ja"
    # A Han character is about a word, a Latin word several letters: "你见过Gareth吗" is Mandarin with
    # an English name, "I met 李明 at the gate" English with a Chinese one.
    if counts["han"] and counts["han"] >= len(_LATIN_WORD.findall(sentence)):
        return "ja" if line and scripts(line)["kana"] else "zh"
    if counts["devanagari"] >= counts["latin"]:
        return "hi"
    language, probability = _latin(sentence)
    if _sure(sentence, probability):
        return language
    # Short and uncertain: the line's language if the line says more, else English, the
    # language most game text is written in ('language' forces another).
    if line and line != sentence and scripts(line)["latin"] >= sum(scripts(line).values()) / 2:
        language, probability = _latin(line)
        if _sure(line, probability):
            return language
    return "en"


def _sure(text: str, probability: float) -> bool:
    words = len(text.split())
    return words > SHORT_WORDS or probability >= (CONFIDENT_3 if words >= 3 else CONFIDENT)


NAMES = {"en": "English", "es": "Spanish", "fr": "French", "hi": "Hindi", "it": "Italian", "ja": "Japanese",
         "pt": "Brazilian Portuguese", "zh": "Mandarin Chinese"}


def spoken_language(tag: str | None, *, param: str = "language") -> str | None:
    """The ISO 639-1 code of a client's language tag (`es`, `pt-BR`, `zh-Hans`, `ja_JP`), None for
    none (detect it); a 400 for a tag that is not a language spoken here."""
    if tag is None:
        return None
    code = None
    cleaned = tag.strip().lower().replace("_", "-")[:35]
    if cleaned in SPOKEN:
        code = cleaned
    elif cleaned:
        import langcodes

        try:
            code = langcodes.Language.get(cleaned, normalize=True).language
        except (ValueError, LookupError):
            code = None
        code = {"cmn": "zh"}.get(code or "", code)
    if code not in SPOKEN:
        shown = tag[:20] + ("..." if len(tag) > 20 else "")
        raise InvalidRequest(f"Unsupported language {shown!r} for speech: use one of "
                             f"{', '.join(SPOKEN)} (or a BCP 47 tag of one, such as 'pt-BR').",
                             param=param, code="unsupported_language")
    return code


def runs(text: str, forced: str | None = None) -> list[tuple[str, str]]:
    """`text` as (language, text) runs: consecutive sentences in one language together, each
    sentence's language detected (or `forced` for all)."""
    from voxhost.engines.tts.text import sentence_spans

    if forced is not None:
        return [(forced, text)]
    out: list[tuple[str, int, int]] = []
    for start, end in sentence_spans(text):
        language = detect(text[start:end], text)
        if out and out[-1][0] == language:
            out[-1] = (language, out[-1][1], end)
        else:
            out.append((language, start, end))
    return [(language, text[start:end]) for language, start, end in out]
