"""Lip-sync events from the phonemes an engine spoke: words and visemes.

A voxhost extension of OpenAI's speech SSE stream (`"timestamps": true`):
`speech.word` {word, start, end} and `speech.viseme` {viseme, start}, in
seconds from the start of the audio. Visemes are the 15 of the Oculus
(Meta) Lipsync / MPEG-4 set, so a game engine's existing blend shapes
drive the mouth: sil PP FF TH DD kk CH SS nn RR aa E ih oh ou.

Phonemes are Kokoro's (misaki) alphabet in all its languages, where
diphthongs are one symbol (A = eɪ, I = aɪ, O = oʊ, Q = əʊ, W = aʊ, Y = ɔɪ) and
so are affricates (ʧ ʤ ʦ ʣ ʨ ʥ ꭧ); a diphthong takes its opening mouth shape,
an affricate the shape of its fricative. Sounds English lacks take the shape
of the nearest English one by place and lip rounding: bilabial fricatives
(Spanish β, Japanese ɸ) close the lips like p; uvular and palatal stops and
fricatives (French ʁ, Spanish x ɣ, ç) sit at the back like k; palatal and
retroflex sibilants (Mandarin ɕ ʂ ꭧ, Japanese ɕ ʨ) round like sh; front
rounded vowels (French y ø œ, Mandarin y ɥ) round the lips; Japanese ɯ is
its u. Stress, length, aspiration, palatalisation, nasalisation and tone
marks take no shape of their own: their time belongs to the phoneme before
them. Every letter of Kokoro's vocabulary has a shape (tests/tts/test_timing.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from voxhost.engines.tts.base import SpokenWord

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")

_TABLE = {
    "PP": "pbmβɸ",
    "FF": "fvʋ",
    "TH": "θð",
    "DD": "tdɾTʈɖɽ",
    # velars, uvulars and palatal stops; h and the glottal stop open the mouth as little as a k does
    "kk": "kgɡŋhʔxcqɟɣχʁɰç",
    "CH": "ʧʤʃʒɕʑʨʥꭧʂʐʝ",
    "SS": "szʦʣS",
    "nn": "nlɫɲɳɴʎ",
    "RR": "ɹrɚɝɻ",
    "aa": "aɑɐæʌIWᵃ",
    "E": "eɛɜəᵊAɤQ",
    "ih": "iɪᵻɨj",
    "oh": "oɔɒOYøœ",
    "ou": "uʊwʍyɥɯ",
}
# Marks with no mouth shape of their own (stress, length, aspiration, palatalisation, nasal, tones).
SHAPELESS = frozenset("ˈˌːʰʲ\u0303ᵝ↓↗↘→")
VISEME_OF = {symbol: viseme for viseme, symbols in _TABLE.items() for symbol in symbols}
MIN_SILENCE = 0.05  # a gap between words shorter than this keeps the mouth moving


@dataclass
class Timeline:
    """Turns each chunk's words into events on the whole line's clock."""

    _last_viseme: str = ""

    def events(self, words: Iterable[SpokenWord], offset: float) -> list[dict]:
        out: list[dict] = []
        previous_end = None
        for word in words:
            if previous_end is not None and word.start - previous_end >= MIN_SILENCE:
                out.append(self._viseme("sil", previous_end + offset))
            out.append({"type": "speech.word", "word": word.text,
                        "start": round(word.start + offset, 3), "end": round(word.end + offset, 3)})
            for symbol, start, end in word.phonemes:
                viseme = VISEME_OF.get(symbol)
                if viseme is not None and end > start:
                    out.append(self._viseme(viseme, start + offset))
            previous_end = word.end
        if previous_end is not None:
            out.append(self._viseme("sil", previous_end + offset))
        return [event for event in out if event]

    def _viseme(self, viseme: str, start: float) -> dict:
        if viseme == self._last_viseme:
            return {}  # the mouth holds its shape: no event
        self._last_viseme = viseme
        return {"type": "speech.viseme", "viseme": viseme, "start": round(start, 3)}


class Marks(list):
    """Timing events for the audio that follows them in a speech stream (not audio bytes)."""
