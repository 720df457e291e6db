"""The text front end every engine shares: validate, normalise, split.

Normalising here (not in each engine's G2P) means "250 gold" sounds the same
from every engine and the phrase cache keys on what is actually spoken.
Splitting into sentences (and a short first clause) is what lets audio start
after the first sentence instead of after the whole input.

English gets the full normalisation below (numbers, currency, times,
abbreviations in English words). Other languages get the language-neutral
part (NFKC, no emoji, tidy spaces): their readers spell numbers in their own
language (espeak-ng, misaki's Japanese kana numbers, cn2an), where English
words would be wrong. Japanese and Mandarin are split at their own
punctuation, which no space follows, into shorter pieces (their phonemes run
several to a character).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from num2words import num2words

from voxhost.errors import InvalidRequest

MAX_INPUT_CHARS = 4096
MAX_CHUNK_CHARS = 300  # keeps every engine inside its token limit (Kokoro: 510)
FIRST_CHUNK_CHARS = 80  # a longer first sentence is cut at its first clause: earlier first audio
# Then the first chunk is cut to at most this many words (0: no word limit). Kokoro's
# time to first audio grows with the first chunk's length (RTF ~0.55 on 2 cores), so a
# few words start the sound sooner; docs/benchmarks.md measures the first byte and WER.
FIRST_CHUNK_WORDS = 4


class Unpronounceable(InvalidRequest):
    code = "unpronounceable_input"


@dataclass(frozen=True)
class TextChunk:
    """One piece synthesised at once; `pause` is the silence (s) to put before it;
    `language` the ISO 639-1 code it is read in."""

    text: str
    pause: float
    language: str = "en"


# --- validation -------------------------------------------------------------------------------

_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def validate(text: str, max_chars: int = MAX_INPUT_CHARS) -> None:
    """Reject what no engine should be asked to say, before any work is queued."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest("'input' is empty; give the text to speak.", param="input", code="empty_input")
    if len(text) > max_chars:
        raise InvalidRequest(
            f"'input' is {len(text)} characters; the maximum is {max_chars}.",
            param="input", code="string_above_max_length",
        )
    bad = sorted({c for c in text if unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROLS})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        raise InvalidRequest(
            f"'input' contains control characters ({shown}); send plain text.",
            param="input", code="invalid_characters",
        )


# --- normalisation ----------------------------------------------------------------------------

_ABBREVIATIONS = {
    "Dr.": "Doctor", "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Prof.": "Professor",
    "Capt.": "Captain", "Sgt.": "Sergeant", "Lt.": "Lieutenant", "Col.": "Colonel", "Gen.": "General",
    "Cmdr.": "Commander", "Gov.": "Governor", "Rev.": "Reverend", "Hon.": "Honorable",
    "Jr.": "Junior", "Sr.": "Senior", "Mt.": "Mount", "Ft.": "Fort", "Ave.": "Avenue", "Rd.": "Road",
    "vs.": "versus", "etc.": "et cetera", "e.g.": "for example", "i.e.": "that is", "approx.": "approximately",
    "min.": "minutes", "hrs.": "hours", "lbs.": "pounds", "oz.": "ounces", "ft.": "feet",
}
_ABBREV_RE = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")(?=\s|$|[,;:!?])"
)
# "St." is Saint before a name ("St. Ives") and Street after one ("Baker St.").
_SAINT_RE = re.compile(r"\bSt\.(?=\s+[A-Z])")
_STREET_RE = re.compile(r"(?<=[A-Za-z] )St\.")
_NUMBER_SIGN_RE = re.compile(r"(?:\bNo\.|#)\s?(?=\d)")

_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents")}
_CURRENCY_RE = re.compile(
    r"([$£€])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(?:\s?(thousand|million|billion|k|m|bn)\b)?", re.I
)
_TIME_RE = re.compile(r"\b(\d{1,2}):(\d{2})(?:\s?([ap])\.?\s?m\b\.?)?", re.I)
_CLOCK_RE = re.compile(r"\b(\d{1,2})\s?([ap])\.?m\b\.?", re.I)
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.I)
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_DECIMAL_RE = re.compile(r"(?<![\d.])(-?)(\d+)\.(\d+)(?![\d.])")
_GROUPED_RE = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_INT_RE = re.compile(r"(?<![\w.])(-?)(\d+)(?![\d])")
_RANGE_RE = re.compile(r"(?<=\d)\s?[-–]\s?(?=\d)")
_SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "°": " degrees "}
_SCALE = {"k": "thousand", "m": "million", "bn": "billion"}


def _cardinal(n: int) -> str:
    # American reading: "two hundred fifty", not "two hundred and fifty".
    return num2words(n).replace(" and ", " ").replace(",", "")


def _number(token: str) -> str:
    digits = token.replace(",", "")
    n = int(digits)
    if len(digits) == 4 and 1100 <= n <= 1999 and "," not in token:
        return num2words(n, to="year")  # 1999 -> nineteen ninety-nine
    return _cardinal(n)


def _currency(m: re.Match) -> str:
    symbol, whole, frac, scale = m.groups()
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    amount = int(whole.replace(",", ""))
    if scale:
        scale_word = _SCALE.get(scale.lower(), scale.lower())
        number = f"{_cardinal(amount)} point {' '.join(_cardinal(int(d)) for d in frac)}" if frac else _cardinal(amount)
        return f"{number} {scale_word} {many}"
    words = f"{_cardinal(amount)} {one if amount == 1 else many}"
    if frac and int(frac):
        cents = int(frac.ljust(2, "0"))
        words += f" and {_cardinal(cents)} {sub_one if cents == 1 else sub_many}"
    return words


def _time(m: re.Match) -> str:
    hour, minute, meridiem = int(m.group(1)), int(m.group(2)), m.group(3)
    if hour > 24 or minute > 59:
        return m.group(0)
    if minute == 0:
        spoken = f"{_cardinal(hour)} o'clock" if not meridiem else _cardinal(hour)
    elif minute < 10:
        spoken = f"{_cardinal(hour)} oh {_cardinal(minute)}"
    else:
        spoken = f"{_cardinal(hour)} {_cardinal(minute)}"
    if meridiem:
        spoken += f" {meridiem.upper()} M"
    return spoken


def _decimal(m: re.Match) -> str:
    sign, whole, frac = m.groups()
    words = f"{_cardinal(int(whole))} point {' '.join(_cardinal(int(d)) for d in frac)}"
    return ("minus " if sign else "") + words


def _is_speakable_char(c: str) -> bool:
    return unicodedata.category(c)[0] in "LN"


def _drop_unspeakable_symbols(text: str) -> str:
    # Emoji and other pictographs (So/Sk/Cf: variation selectors, ZWJ) carry no words.
    return "".join(" " if unicodedata.category(c) in ("So", "Sk", "Cf", "Co", "Cs") else c for c in text)


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _drop_unspeakable_symbols(text)
    return text.replace("\r\n", "\n").replace("\t", " ")


def _tidy(text: str) -> str:
    text = re.sub(r"[ \u00a0]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    text = re.sub(r" +([,.;:!?])", r"\1", text)
    return text.strip()


def normalize(text: str, language: str = "en") -> str:
    """Spoken form of `text`: in English, numbers, currency, times and abbreviations in words."""
    if language != "en":
        return _tidy(_clean(text))
    text = _clean(text)
    text = _SAINT_RE.sub("Saint", text)
    text = _STREET_RE.sub("Street", text)
    text = _ABBREV_RE.sub(lambda m: _ABBREVIATIONS[m.group(1)], text)
    text = _NUMBER_SIGN_RE.sub("number ", text)
    text = _CURRENCY_RE.sub(_currency, text)
    text = _TIME_RE.sub(_time, text)
    text = _CLOCK_RE.sub(lambda m: f"{_cardinal(int(m.group(1)))} {m.group(2).upper()} M", text)
    text = _PERCENT_RE.sub(lambda m: f"{m.group(1)} percent", text)
    text = _ORDINAL_RE.sub(lambda m: num2words(int(m.group(1)), to="ordinal"), text)
    text = _RANGE_RE.sub(" to ", text)
    text = _DECIMAL_RE.sub(_decimal, text)
    text = _GROUPED_RE.sub(lambda m: _number(m.group(0)), text)
    text = _INT_RE.sub(lambda m: ("minus " if m.group(1) else "") + _number(m.group(2)), text)
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    return _tidy(text)


def speakable(text: str) -> bool:
    return any(_is_speakable_char(c) for c in text)


def prepare(text: str, max_chars: int = MAX_INPUT_CHARS, language: str = "en") -> str:
    """Validate then normalise; raises InvalidRequest / Unpronounceable."""
    validate(text, max_chars)
    spoken = normalize(text, language)
    if not speakable(spoken):
        raise Unpronounceable(
            "'input' has nothing to pronounce (only emoji, symbols or punctuation).", param="input"
        )
    return spoken


# --- splitting ---------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?…।])[\"”’)\]]*\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:—])\s+")
SENTENCE_PAUSE = 0.12
CLAUSE_PAUSE = 0.04


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for para in text.split("\n"):
        para = para.strip()
        if para:
            out.extend(s.strip() for s in _SENTENCE_END.split(para) if s.strip())
    return out


def cut(sentence: str, limit: int, breaks: re.Pattern = _CLAUSE_END) -> list[str]:
    """Pieces of at most `limit` characters: whole parts between `breaks` (clauses
    by default) packed greedily, a part longer than `limit` cut at spaces."""
    if len(sentence) <= limit:
        return [sentence]
    pieces: list[str] = []
    current = ""
    for clause in breaks.split(sentence):
        while len(clause) > limit:  # a run-on clause: cut at the last space that fits
            at = clause.rfind(" ", 0, limit)
            at = at if at > 0 else limit
            if current:
                pieces.append(current)
                current = ""
            pieces.append(clause[:at].strip())
            clause = clause[at:].strip()
        if current and len(current) + 1 + len(clause) > limit:
            pieces.append(current)
            current = clause
        else:
            current = f"{current} {clause}".strip()
    if current:
        pieces.append(current)
    return [p for p in pieces if p]


# A cut before one of these words falls at a phrase edge ("the old bridge | to the
# village"), where a reader might pause anyway, rather than inside a noun phrase.
_PHRASE_STARTS = frozenset(
    ["a", "an", "the", "to", "of", "in", "on", "at", "by", "for", "from", "with", "into", "over", "under", "after", "before", "about", "and", "but", "or", "nor", "so", "yet", "that", "which", "who", "whom", "whose", "when", "where", "while", "if", "because", "than", "as", "is", "are", "was", "were", "will", "would", "can", "could", "should", "must", "may", "might", "has", "have", "had"]
)
_MIN_TAIL_WORDS = 2  # never leave a lone word to be said on its own after the head


def first_words(piece: str, limit: int) -> list[str]:
    """[piece] or [head, rest]: a head of 2 to `limit` words, cut after a clause's
    punctuation, else before a phrase-starting word, else after `limit` words."""
    words = piece.split(" ")
    if limit <= 0 or len(words) < limit + _MIN_TAIL_WORDS:
        return [piece]
    def starts_phrase(i: int) -> bool:
        return words[i].lower().strip("\"'“‘(") in _PHRASE_STARTS

    # A clause edge first ("Listen well, | the bridge"), then a phrase edge, but not
    # between two phrase-starting words ("to | the"): that splits the phrase they start.
    at = next((i for i in range(limit, 1, -1) if words[i - 1][-1:] in ",;:—"), None)
    if at is None:
        at = next((i for i in range(limit, 1, -1) if starts_phrase(i) and not starts_phrase(i - 1)), limit)
    return [" ".join(words[:at]), " ".join(words[at:])]


# --- sentences in any language -------------------------------------------------------------------

CJK_LANGUAGES = frozenset({"ja", "zh"})
CJK_CHUNK_CHARS = 60  # ~300 phonemes: within Kokoro's 510 tokens, as MAX_CHUNK_CHARS is in English
CJK_FIRST_CHARS = 16  # a longer first CJK sentence is cut at its first clause
_END = re.compile(r"[.!?…।。！？][\"”’)\]」』]*")
_CJK_CLAUSE_END = re.compile(r"(?<=[、，,;；:：])\s*")


def _is_cjk(c: str) -> bool:
    return "\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf"


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text` in any of the languages spoken here: an end mark
    followed by a space, or by nothing in Japanese and Mandarin (。, or ! ? before a CJK character)."""
    spans, start = [], 0
    for match in _END.finditer(text):
        end = match.end()
        after = text[end:end + 1]
        if not after or after.isspace() or match.group(0)[0] == "。" or _is_cjk(after):
            if text[start:end].strip():
                spans.append((start, end))
            start = end
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def _cjk_chunks(text: str, early: bool) -> list[tuple[str, bool]]:
    """(piece, starts a sentence) for Japanese or Mandarin text."""
    out: list[tuple[str, bool]] = []
    for start, end in sentence_spans(text):
        pieces = cut(text[start:end].strip(), CJK_CHUNK_CHARS, _CJK_CLAUSE_END)
        if early and not out and len(pieces[0]) > CJK_FIRST_CHARS:
            head = _CJK_CLAUSE_END.split(pieces[0], maxsplit=1)
            if len(head) == 2 and len(head[0]) >= 4:
                pieces[0:1] = head
        out.extend((piece, i == 0) for i, piece in enumerate(pieces))
    return out


def split(text: str, max_chars: int = MAX_CHUNK_CHARS, first_chars: int = FIRST_CHUNK_CHARS,
          first_word_limit: int = FIRST_CHUNK_WORDS, language: str = "en", leading: bool = True,
          early: bool = True) -> list[TextChunk]:
    """Normalised text in one language -> chunks to synthesise one at a time, in order.
    `leading`: these are the line's first chunks (no pause before the first).
    `early`: cut the first of them short (a clause, then a few words) so its sound starts
    sooner. Every cut is another model call, which speaks its own lead-in and utterance end
    again (Kokoro: 1.26-1.34x a 12-word line's frames, bench/kokoro_chunk_frames.py), so the service asks for it only
    when a listener is waiting on an idle server (tts/service.py `SpeechService.open`)."""
    early = early and leading
    if language in CJK_LANGUAGES:
        return [TextChunk(piece, (SENTENCE_PAUSE if starts else CLAUSE_PAUSE) if i or not leading else 0.0,
                          language) for i, (piece, starts) in enumerate(_cjk_chunks(text, early))]
    chunks: list[TextChunk] = []
    for sentence in _sentences(text):
        pieces = cut(sentence, max_chars)
        if not chunks and early and len(pieces[0]) > first_chars:
            # Time to first sound matters most: say the first clause on its own.
            head = _CLAUSE_END.split(pieces[0], maxsplit=1)
            if len(head) == 2 and len(head[0]) >= 12:
                pieces[0:1] = head
        if not chunks and early:
            # ... and of that clause, only its first few words.
            pieces[0:1] = first_words(pieces[0], first_word_limit)
        for i, piece in enumerate(pieces):
            pause = 0.0 if not chunks and leading else (CLAUSE_PAUSE if i > 0 else SENTENCE_PAUSE)
            if i == 1 and len(chunks) == 1 and leading and chunks[0].text[-1:].isalnum():
                pause = 0.0  # cut inside a clause: the engine's own edge silence is the only gap
            chunks.append(TextChunk(piece, pause, language))
    return chunks
