"""Word (and character) error rate with fair normalisation (shared/eval/README.md).

Both sides the same way: lower case, numbers spelled as words in the text's
language, symbols spoken, punctuation stripped, fillers dropped. Nothing is
dropped from the set: the one reference with symbols is normalised, not excluded.

English keeps its own rules (ordinals, "eighteen thirteen" years, x and = spoken).
Other languages get no English spelling: their numbers are spelled in their own
language where num2words knows it (de, es, fr, it, pt, ja, ko), else left as digits,
and only the fillers that are not words in them are dropped. Japanese, Korean and
Chinese are scored by characters (`uses_cer`), spaces and punctuation removed:
Japanese and Chinese write no spaces, and Korean spacing varies between writers.
Chinese is folded to Simplified characters on both sides (OpenCC's t2s): Whisper
writes Mandarin in either script, and a character in the other script is the same
word, as an upper-case letter is in English. Japanese is compared on its kana reading
(MeCab with unidic-lite): Whisper writes a word in kanji or kana as it likes, and the
reading is what both spellings share. Letters keep their combining marks (Devanagari's
vowel signs are marks: dropping them would cut every Hindi word apart).

One set of functions: `error_rate` (= `wer`) is the figure reported per language (CER for
`CER_LANGUAGES`, WER for the others); `cer` is the character error rate in any language,
for reports that give both.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache

import jiwer
from num2words import num2words

FILLERS = {"uh", "um", "umm", "uhm", "hmm", "mm", "mhm", "er", "erm", "ah", "eh", "oh", "huh"}
# Hesitations that are not words in any of these languages ("eh", "ah", "oh" are in some).
_OTHER_FILLERS = {"äh", "ähm", "öhm", "euh", "hmm", "mm", "mhm", "uhm", "umm", "ehm"}
# Written without spaces between words (Korean's spacing varies between writers): scored by characters.
CER_LANGUAGES = frozenset({"ja", "ko", "zh"})
_SYMBOLS = {"%": " percent ", "×": " times ", "=": " equals ", "+": " plus ", "&": " and ", "$": " dollars "}
_PERCENT = {"de": "prozent", "es": "por ciento", "fr": "pour cent", "it": "per cento", "pt": "por cento"}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_DIGITS = re.compile(r"\d+")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
# Languages whose 4-digit years num2words speaks as people read them (German "achtzehnhundert..."),
# and whose years are plain cardinals anyway; Japanese years would come out as imperial eras.
_YEAR_LANGUAGES = {"de", "es", "fr", "it", "pt"}


@lru_cache(maxsize=1)
def _to_simplified():
    import opencc  # a few MB of dictionaries: loaded only when Chinese is scored

    return opencc.OpenCC("t2s")


def uses_cer(lang: str) -> bool:
    """Whether `lang` is scored by characters (CER) rather than words."""
    return lang in CER_LANGUAGES


def metric_name(lang: str) -> str:
    return "CER" if uses_cer(lang) else "WER"


def _spell_number(match: re.Match) -> str:
    token = match.group(0).replace(",", "")
    try:
        if "." in token:
            return " " + num2words(float(token)) + " "
        value = int(token)
        if len(token) == 4 and 1100 <= value <= 2099 and value % 100:
            # "1813" is read "eighteen thirteen" in speech and in the references.
            return " " + num2words(value, to="year") + " "
        return " " + num2words(value) + " "
    except (ValueError, OverflowError):
        return " " + token + " "


def _spell_in(lang: str):
    def spell(match: re.Match) -> str:
        value = int(match.group(0))
        year = lang in _YEAR_LANGUAGES and len(match.group(0)) == 4 and 1100 <= value <= 2099
        try:
            return " " + num2words(value, lang=lang, to="year" if year else "cardinal") + " "
        except (NotImplementedError, OverflowError, ValueError):  # a language num2words lacks
            return " " + match.group(0) + " "
    return spell


def _normalize_english(text: str) -> str:
    text = _ORDINAL.sub(lambda m: " " + num2words(int(m.group(1)), to="ordinal") + " ", text)
    # "1,000" and "2.5" are numbers, not separators.
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    return _NUMBER.sub(_spell_number, text)


def _normalize_other(text: str, lang: str) -> str:
    # "1.000" (most of Europe) and "1,000": thousands, written either way by Whisper.
    text = re.sub(r"(?<=\d)[.,](?=\d{3}\b)", "", text)
    if lang in _PERCENT:
        text = text.replace("%", f" {_PERCENT[lang]} ")
    # A decimal comma or point: each side spelled (rare in speech; the same on both sides).
    return _DIGITS.sub(_spell_in(lang), text)


def normalize(text: str, lang: str = "en") -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    if lang == "zh":
        text = _to_simplified().convert(text)
    if lang == "en":
        text = _normalize_english(text)
        fillers = FILLERS
    else:
        # Elisions ("l'accident", "qu’« on") split at the apostrophe, typed or typographic,
        # so a reference and a transcript that differ only in spacing around it agree.
        text = re.sub(r"['’]", " ", _normalize_other(text, lang))
        fillers = _OTHER_FILLERS
    text = text.replace("-", " ")
    # Punctuation and symbols out; letters, digits and combining marks stay.
    text = "".join(c if c.isalnum() or c.isspace() or c == "'" or unicodedata.category(c)[0] == "M" else " "
                   for c in text)
    text = text.replace("'", "")
    words = [w for w in text.split() if w not in fillers]
    if uses_cer(lang):
        return "".join(words)
    return " ".join(words)


def wer(references: Iterable[str], hypotheses: Iterable[str], lang: str = "en") -> float:
    """Word error rate, or the character error rate (`cer`) for languages scored by characters."""
    if uses_cer(lang):
        return cer(references, hypotheses, lang)
    pairs = [(r, h) for r, h in zip((normalize(r, lang) for r in references),
                                    (normalize(h, lang) for h in hypotheses)) if r]
    if not pairs:
        return 0.0
    return jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])


error_rate = wer  # the name to use where the language may be scored by characters


def wer_by(groups: Iterable[tuple[str, str, str]], lang: str = "en") -> dict[str, float]:
    """WER per group key, plus 'pooled'. Items are (key, reference, hypothesis)."""
    by_key: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key, ref, hyp in groups:
        by_key[key].append((ref, hyp))
    out = {k: wer([r for r, _ in v], [h for _, h in v], lang) for k, v in sorted(by_key.items())}
    out["pooled"] = wer([r for v in by_key.values() for r, _ in v], [h for v in by_key.values() for _, h in v], lang)
    return out


@lru_cache(maxsize=1)
def _tagger():
    from fugashi import Tagger  # MeCab with unidic-lite: loaded only when Japanese is scored

    return Tagger()


def _kana(text: str) -> str:
    import jaconv

    return "".join(jaconv.kata2hira(getattr(w.feature, "kana", None) or w.surface) for w in _tagger()(text))


def _characters(text: str, lang: str) -> str:
    text = normalize(text, lang).replace(" ", "")
    return _kana(text) if lang == "ja" else text


def cer(references: Iterable[str], hypotheses: Iterable[str], lang: str = "en") -> float:
    """Character error rate after the same normalisation, spaces removed (Mandarin in Simplified
    characters, Japanese as its kana reading)."""
    pairs = [(_characters(r, lang), _characters(h, lang)) for r, h in zip(references, hypotheses)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return 0.0
    return jiwer.cer([r for r, _ in pairs], [h for _, h in pairs])
