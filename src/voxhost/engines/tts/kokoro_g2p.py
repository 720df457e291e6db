"""Kokoro's phonemes for each of its languages: one reader per language.

Kokoro v1.0 was trained on misaki's phoneme alphabet, written by a different
front end per language (hexgrad's `KPipeline`); each reader here writes the
same symbols from the same libraries, so the model hears what it learned:

| language | reader | libraries (licence) |
|---|---|---|
| en | hibari's G2P (misaki's lexicons, American or British) | hibari-tts (Apache-2.0) |
| ja | misaki's `cutlet` romaniser, KPipeline's default for `j` | misaki, fugashi + unidic-lite (MeCab, BSD), jaconv, mojimoji (MIT) |
| zh | misaki's `ZHG2P` for Kokoro v1.0 (jieba words, pypinyin, pinyin to IPA) | misaki, jieba, pypinyin, cn2an (MIT), ordered-set (MIT) |
| es fr hi it pt | misaki's `EspeakG2P` (espeak-ng) | phonemizer-fork, espeakng-loader: GPL-3.0, so only with the `espeak` extra |
| es fr it, without espeak-ng | gruut's espeak-style lexicon (`espeak=True`) | gruut + its language packs (MIT): the `gruut` extra |

docs/benchmarks.md ("Languages") measures each against Whisper and gruut
(MIT) against espeak-ng, which decided the table. Every dictionary is read from
the installed packages: none of these readers touches the network.

A reader spells a sentence as one phoneme string plus the word each phoneme
belongs to (lip-sync). What a "word" is follows the language's own tokenizer:
a space-separated word in the alphabetic languages (espeak-ng's word
boundaries), a MeCab morpheme group (cutlet's) in Japanese, a jieba word in
Mandarin. Latin-script runs inside Japanese or Mandarin text (a character's
English name) are read by the English reader and spliced in, since neither
front end can read them; inside the alphabetic languages a foreign name is
read by that language's rules, as its speakers would.

Readers are built on first use (a language costs memory only once asked for,
or at start when VOXHOST_TTS_LANGUAGES lists it), once per process, and each
call holds the reader's lock: MeCab's tagger and the espeak-ng library are not
safe to call from two synthesis threads at once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from voxhost.engines.tts.base import LanguageUnavailable
from voxhost.engines.tts.g2p import shared_g2p
from voxhost.ops.memory import loading

log = logging.getLogger("voxhost.tts.kokoro")


@dataclass
class Spelled:
    """A sentence as Kokoro reads it: `phonemes`, and for each character of it the index of
    the word in `words` that it belongs to (-1: a space or punctuation)."""

    phonemes: str = ""
    owner: list[int] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    def add(self, phonemes: str, word: str | None = None) -> None:
        """Append a word's phonemes (or, with no word, spaces and punctuation)."""
        if not phonemes:
            return
        index = -1
        if word is not None and any(c.isalnum() for c in word):
            index = len(self.words)
            self.words.append(word)
        self.phonemes += phonemes
        self.owner.extend([index] * len(phonemes))

    def extend(self, other: Spelled) -> None:
        base = len(self.words)
        self.phonemes += other.phonemes
        self.owner.extend(o + base if o >= 0 else -1 for o in other.owner)
        self.words.extend(other.words)

    def strip(self) -> Spelled:
        while self.phonemes.endswith(" "):
            self.phonemes, self.owner = self.phonemes[:-1], self.owner[:-1]
        while self.phonemes.startswith(" "):
            self.phonemes, self.owner = self.phonemes[1:], self.owner[1:]
        return self


Reader = Callable[[str], Spelled]

# --- English ------------------------------------------------------------------------------------


def english(british: bool) -> Reader:
    g2p = shared_g2p(british)

    def spell(text: str) -> Spelled:
        from hibari.g2p import normalize

        out = Spelled()
        for token in g2p.phonemize_tokens(g2p.tokenize(normalize(text))):
            out.add(g2p.unk if token.phonemes is None else token.phonemes, token.text)
            if token.whitespace:
                out.add(" ")
        return out.strip()

    return spell


# Latin-script words (with apostrophes and inner hyphens) inside CJK text.
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z'\-]*(?:\s+[A-Za-z][A-Za-z'\-]*)*")


def _with_english(text: str, native: Callable[[str], Spelled]) -> Spelled:
    """Japanese or Mandarin text whose Latin-script runs are read by the American reader."""
    out = Spelled()
    at = 0
    reader = None
    for match in _LATIN_RUN.finditer(text):
        if match.start() > at:
            out.extend(native(text[at:match.start()]))
        reader = reader or english(british=False)
        if out.phonemes and not out.phonemes.endswith(" "):
            out.add(" ")
        out.extend(reader(match.group(0)))
        out.add(" ")
        at = match.end()
    if at < len(text):
        out.extend(native(text[at:]))
    return out.strip()


# --- Japanese -----------------------------------------------------------------------------------


def japanese() -> Reader:
    try:
        from misaki.cutlet import Cutlet
    except ImportError as exc:
        raise LanguageUnavailable(f"Japanese needs misaki, fugashi and unidic-lite ({exc.name} is missing); "
                                  "reinstall voxhost.") from exc

    class _Cutlet(Cutlet):
        """misaki's romaniser, keeping the words it romanised (surface, then its romaji token)."""

        surfaces: list[str]
        tokens: list

        def _romaji_word(self, word):
            self.surfaces.append(word.surface)
            return super()._romaji_word(word)

        def _romaji_tokens(self, words):
            self.tokens = super()._romaji_tokens(words)
            return self.tokens

    cutlet = _Cutlet()  # fugashi's Tagger() reads unidic-lite's dictionary from the install

    def native(text: str) -> Spelled:
        cutlet.surfaces, cutlet.tokens = [], []
        phonemes, _ = cutlet(text)
        pieces = [(surface, token.surface) for surface, token in zip(cutlet.surfaces, cutlet.tokens)]
        return _align(phonemes, pieces)

    return lambda text: _with_english(text, native)


def _align(phonemes: str, pieces: list[tuple[str, str]]) -> Spelled:
    """Spelled from a reader's finished phoneme string and its words' own phonemes, in order: each
    word owns the characters it contributed (the reader only changed spaces and brackets between)."""
    owner = [-1] * len(phonemes)
    words: list[str] = []
    at = 0
    for word, spelled in pieces:
        index = -1
        if any(c.isalnum() for c in word):
            index = len(words)
            words.append(word)
        for c in spelled.replace("(", "«").replace(")", "»"):
            if c == " ":
                continue
            found = phonemes.find(c, at)
            if found < 0:
                break
            owner[found] = index
            at = found + 1
    return Spelled(phonemes, owner, words)


# --- Mandarin -----------------------------------------------------------------------------------

_HAN = re.compile(r"[\u4E00-\u9FFF]+")
_ASCII_PUNCT_GAP = re.compile(r"([,.!?;:])(?=[^\s,.!?;:])")


def mandarin() -> Reader:
    try:
        import cn2an
        import jieba
        from misaki.zh import ZHG2P
    except ImportError as exc:
        raise LanguageUnavailable(f"Mandarin needs misaki, jieba, pypinyin and cn2an ({exc.name} is missing); "
                                  "reinstall voxhost.") from exc
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()  # its dictionary now (from the install), not on the first request

    def native(text: str) -> Spelled:
        # ZHG2P's legacy reader (Kokoro v1.0's), word by word: numbers to Chinese, punctuation
        # mapped, each jieba word of a Han run spelled with its tones; other runs kept as they are.
        text = ZHG2P.map_punctuation(cn2an.transform(text, "an2cn"))
        text = _ASCII_PUNCT_GAP.sub(r"\1 ", text)  # the text front end's NFKC made '，' a ','
        out = Spelled()
        at = 0
        for run in _HAN.finditer(text):
            out.add(text[at:run.start()])
            for i, word in enumerate(jieba.lcut(run.group(0), cut_all=False)):
                if i:
                    out.add(" ")
                out.add(ZHG2P.word2ipa(word).replace(chr(815), ""), word)
            at = run.end()
        out.add(text[at:])
        return out.strip()

    return lambda text: _with_english(text, native)


# --- espeak-ng (es, fr, hi, it, pt) -------------------------------------------------------------

ESPEAK_LANGUAGES = {"es": "es", "fr": "fr-fr", "hi": "hi", "it": "it", "pt": "pt-br"}


def espeak(language: str) -> Reader:
    try:
        from misaki.espeak import EspeakG2P
    except ImportError as exc:
        raise LanguageUnavailable(missing_extra(language)) from exc
    g2p = EspeakG2P(language=ESPEAK_LANGUAGES[language])

    def spell(text: str) -> Spelled:
        phonemes, _ = g2p(text)
        return _pair_words(text, phonemes)

    return spell


_PUNCTUATION = set('!"(),.:;?—…“”¡¿«»।॥')
# A written word: a run of anything but spaces and punctuation (Python's \w would split Devanagari
# at its vowel signs, which are combining marks).
_WORD = re.compile(r"[^\s" + re.escape("".join(_PUNCTUATION)) + r"]+")


def _pair_words(text: str, phonemes: str) -> Spelled:
    """A phoneme string whose words are space-separated, paired with the text's words. espeak-ng keeps
    one phoneme word per written word for ordinary text; where the counts differ (a number read as
    several words), each phoneme word takes the written word at its relative position."""
    written = _WORD.findall(text)
    spoken = phonemes.split(" ")
    out = Spelled()
    for i, group in enumerate(spoken):
        if i:
            out.add(" ")
        if not written:
            out.add(group)
            continue
        word = written[i] if len(written) == len(spoken) else written[min(len(written) - 1,
                                                                          i * len(written) // len(spoken))]
        # Punctuation around a word stays outside it: it moves no lip.
        core = group.strip("".join(_PUNCTUATION))
        lead = group[:len(group) - len(group.lstrip("".join(_PUNCTUATION)))]
        out.add(lead)
        out.add(core, word)
        out.add(group[len(lead) + len(core):])
    return out.strip()


_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "hi": "Hindi", "it": "Italian", "ja": "Japanese",
          "pt": "Brazilian Portuguese", "zh": "Mandarin Chinese"}


# --- gruut (es, fr, it), where espeak-ng is not installed --------------------------------------

# gruut's language packs carry an espeak-style lexicon and G2P model (`espeak=True`): phonemes as
# espeak-ng writes them, made without running espeak-ng. It met the round-trip bar in these three
# languages (docs/benchmarks.md, "Languages"); espeak-ng scored better, so it is used when installed.
GRUUT_LANGUAGES = {"es": "es", "fr": "fr-fr", "it": "it"}
_AFFRICATES = {"tʃ": "ʧ", "dʒ": "ʤ", "tʃː": "ʧː", "dʒː": "ʤː"}
_ITALIAN_AFFRICATES = {**_AFFRICATES, "ts": "ʦ", "dz": "ʣ", "tsː": "ʦː", "dzː": "ʣː"}


def gruut(language: str) -> Reader:
    try:
        import gruut as gruut_package
    except ImportError as exc:
        raise LanguageUnavailable(missing_extra(language)) from exc
    affricates = _ITALIAN_AFFRICATES if language == "it" else _AFFRICATES

    def joined(phones: list[str]) -> str:
        """A stop and fricative that espeak-ng ties (t^ʃ) as Kokoro's one affricate symbol (ʧ)."""
        out: list[str] = []
        for phone in phones:
            if out and out[-1] + phone in affricates:
                out[-1] = affricates[out[-1] + phone]
            else:
                out.append(phone)
        return "".join(out)

    def spell(text: str) -> Spelled:
        out = Spelled()
        for sentence in gruut_package.sentences(text, lang=GRUUT_LANGUAGES[language], espeak=True):
            for word in sentence:
                if word.is_break or word.is_punctuation or not word.phonemes:
                    mark = word.text if word.text in _PUNCTUATION else {"‖": ".", "|": ","}.get(
                        "".join(word.phonemes or []), "")
                    out.add("".join(c for c in mark if c in ",.!?;:"))
                    continue
                if out.phonemes:
                    out.add(" ")
                out.add(joined(word.phonemes), word.text)
        return out.strip()

    return spell


def missing_extra(language: str) -> str:
    """The 400's message for a language whose reader is not installed: the extra(s) that add it."""
    extras = "'voxhost[espeak]' (espeak-ng, GPL-3.0; the Docker images include it)"
    if language in GRUUT_LANGUAGES:
        extras += " or 'voxhost[gruut]' (MIT)"
    return f"{_NAMES[language]} needs a reader that is not in the default install: pip install {extras}."


# --- the readers by language --------------------------------------------------------------------

LANGUAGES = ("en", "es", "fr", "hi", "it", "ja", "pt", "zh")
# One short line per language: building a reader and reading this loads its dictionaries.
WARM_UP = {
    "en": "Warm up, traveler.", "es": "Bienvenido, viajero.", "fr": "Bienvenue, voyageur.",
    "hi": "स्वागत है, यात्री।", "it": "Benvenuto, viaggiatore.", "ja": "ようこそ、旅の人。",
    "pt": "Bem-vindo, viajante.", "zh": "欢迎你，旅行者。",
}

_lock = threading.Lock()
_readers: dict[str, Reader] = {}


def _build(key: str) -> Reader:
    if key in ("en-us", "en-gb"):
        return english(british=key == "en-gb")
    if key == "ja":
        return japanese()
    if key == "zh":
        return mandarin()
    if key in ESPEAK_LANGUAGES:
        if _found("phonemizer", "espeakng_loader") or not (key in GRUUT_LANGUAGES and _found("gruut")):
            return espeak(key)
        return gruut(key)
    raise LanguageUnavailable(f"Kokoro cannot speak '{key[:16]}'.")


def reader(language: str, british: bool = False) -> Reader:
    """The process's reader for `language` (ISO 639-1), built on first call; calls are serialised
    per reader. English takes the voice's accent."""
    key = ("en-gb" if british else "en-us") if language == "en" else language
    with _lock:
        if key not in _readers:
            with loading():  # its dictionaries out of the serving heap (ops/memory.py)
                built = _build(key)
            guard = threading.Lock()

            def spell(text: str, _built=built, _guard=guard) -> Spelled:
                with _guard:
                    return _built(text)

            _readers[key] = spell
        return _readers[key]


def _found(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in modules)


def installed(language: str) -> bool:
    """Whether the language's reader can be built here (its packages are installed), without building it."""
    if language == "ja":
        return _found("misaki", "fugashi", "unidic_lite")
    if language == "zh":
        return _found("misaki", "jieba", "pypinyin", "cn2an")
    if language in ESPEAK_LANGUAGES:
        return _found("misaki", "phonemizer", "espeakng_loader") or (
            language in GRUUT_LANGUAGES and _found("gruut", f"gruut_lang_{language}"))
    return True
