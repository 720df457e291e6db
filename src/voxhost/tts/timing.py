"""Lip-sync events from the phonemes an engine spoke: words and visemes.

A voxhost extension of OpenAI's speech SSE stream (`"timestamps": true`):
`speech.word` {word, start, end} and `speech.viseme` {viseme, start}, in
seconds from the start of the audio. Visemes are the 15 of the Oculus
(Meta) Lipsync / MPEG-4 set, so a game engine's existing blend shapes
drive the mouth: sil PP FF TH DD kk CH SS nn RR aa E ih oh ou.

Phonemes are Kokoro's (misaki) alphabet, where diphthongs are one symbol
(A = eɪ, I = aɪ, O = oʊ, W = aʊ, Y = ɔɪ); a diphthong takes its opening
mouth shape. Stress and length marks take no shape of their own: their
time belongs to the phoneme before them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from voxhost.engines.tts.base import SpokenWord

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")

_TABLE = {
    "PP": "pbm",
    "FF": "fv",
    "TH": "θð",
    "DD": "tdɾ",
    "kk": "kgɡŋhʔx",  # velars; h and the glottal stop open the mouth as little as a k does
    "CH": "ʧʤʃʒ",
    "SS": "sz",
    "nn": "nlɫ",
    "RR": "ɹrɚɝ",
    "aa": "aɑɐæʌIWᵃ",
    "E": "eɛɜəᵊA",
    "ih": "iɪᵻɨj",
    "oh": "oɔɒOY",
    "ou": "uʊwʍ",
}
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
