"""Word error rate with fair normalisation (shared/eval/README.md).

Both sides: lower case, numbers spelled as words, symbols spoken (x, %),
punctuation stripped, fillers (uh, um, ...) dropped. Nothing is dropped from
the set: the one reference with symbols is normalised, not excluded.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from typing import Iterable

import jiwer
from num2words import num2words

FILLERS = {"uh", "um", "umm", "uhm", "hmm", "mm", "mhm", "er", "erm", "ah", "eh", "oh", "huh"}
_SYMBOLS = {"%": " percent ", "×": " times ", "=": " equals ", "+": " plus ", "&": " and ", "$": " dollars "}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")


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


def normalize(text: str, lang: str = "en") -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _ORDINAL.sub(lambda m: " " + num2words(int(m.group(1)), to="ordinal") + " ", text)
    # "1,000" and "2.5" are numbers, not separators.
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    if lang == "en":
        text = _NUMBER.sub(_spell_number, text)
    text = text.replace("-", " ")
    text = re.sub(r"[^\w\s']", " ", text)
    text = text.replace("'", "")
    words = [w for w in text.split() if w not in FILLERS]
    return " ".join(words)


def wer(references: Iterable[str], hypotheses: Iterable[str], lang: str = "en") -> float:
    refs = [normalize(r, lang) for r in references]
    hyps = [normalize(h, lang) for h in hypotheses]
    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    if not pairs:
        return 0.0
    return jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])


def wer_by(groups: Iterable[tuple[str, str, str]], lang: str = "en") -> dict[str, float]:
    """WER per group key, plus 'pooled'. Items are (key, reference, hypothesis)."""
    by_key: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key, ref, hyp in groups:
        by_key[key].append((ref, hyp))
    out = {k: wer([r for r, _ in v], [h for _, h in v], lang) for k, v in sorted(by_key.items())}
    out["pooled"] = wer([r for v in by_key.values() for r, _ in v], [h for v in by_key.values() for _, h in v], lang)
    return out
