"""Append-only partial text from repeated re-decodes of a growing turn.

Whisper re-decodes the whole turn each time, and the tail of a hypothesis
often changes as more audio arrives. OpenAI's `delta` events are appended by
clients, so a word once sent cannot be taken back. LocalAgreement-2
(Macháček et al., 2023, whisper_streaming) sends only the words two
consecutive hypotheses agree on: the text grows monotonically, one interval
behind the newest audio, and the `completed` event carries the final decode.
"""

from __future__ import annotations

import re

_NON_WORD = re.compile(r"[^\w']+")


def _key(word: str) -> str:
    return _NON_WORD.sub("", word.lower())


class LocalAgreement:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self._previous: list[str] = []

    @property
    def text(self) -> str:
        return " ".join(self.sent)

    def update(self, hypothesis: str) -> str | None:
        """Feed a new hypothesis; return the delta to send, if any."""
        words = hypothesis.split()
        agreed = 0
        for a, b in zip(self._previous, words):
            if _key(a) != _key(b):
                break
            agreed += 1
        self._previous = words
        if agreed <= len(self.sent):
            return None
        # A revision of already-sent words: keep what was sent, wait for the final.
        if [_key(w) for w in words[: len(self.sent)]] != [_key(w) for w in self.sent]:
            return None
        new = words[len(self.sent) : agreed]
        delta = (" " if self.sent else "") + " ".join(new)
        self.sent.extend(new)
        return delta
