"""A player who keeps talking: one live session, several utterances with pauses,
and the accounting of what came back (turns lost, turns heard twice).

The script knows where each utterance sits on the client's timeline; each final
of a resumable session knows the span of audio it answers (loadtest/resume.py).
An utterance no final overlaps is lost; audio of it that two finals overlap was
transcribed twice. The words are checked too, independently of the spans: the
joined finals against the joined references, with the longest run of words
missing or added (a lost or doubled utterance is a run of its length; a
misheard word is not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxhost.loadtest.resume import Final

# An utterance counts as answered when finals overlap this much of it, and as
# heard twice when this much of it sits under two finals (a drain that cuts a
# turn in two is two finals side by side, not on top of each other).
MIN_OVERLAP_MS = 300.0


@dataclass(frozen=True)
class Utterance:
    start_ms: float
    end_ms: float
    text: str


@dataclass
class Script:
    pcm: bytes  # PCM16 at `rate`
    rate: int
    utterances: list[Utterance]

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.rate


def build_script(clips: list[tuple[bytes, str]], *, rate: int = 24_000, lead_s: float = 0.6,
                 gap_s: float = 1.4, tail_s: float = 1.6) -> Script:
    """clips: (PCM16 at `rate`, reference text) in speaking order, with silence between."""
    def silence(seconds: float) -> bytes:
        return np.zeros(int(seconds * rate), dtype="<i2").tobytes()

    parts, utterances, at = [silence(lead_s)], [], lead_s
    for i, (pcm, text) in enumerate(clips):
        seconds = len(pcm) / 2 / rate
        utterances.append(Utterance(at * 1000, (at + seconds) * 1000, text))
        parts.append(pcm)
        at += seconds
        pad = tail_s if i == len(clips) - 1 else gap_s
        parts.append(silence(pad))
        at += pad
    return Script(b"".join(parts), rate, utterances)


@dataclass(frozen=True)
class Outcome:
    """What became of one utterance."""

    utterance: Utterance
    lost: bool
    duplicated: bool
    items: tuple[str, ...]  # the finals that answer it


@dataclass
class Accounting:
    utterances: int
    lost: int
    duplicated: int
    unplaced_finals: int  # finals without a span (a server that reports none)
    wer: float
    longest_missing_run: int
    longest_added_run: int
    outcomes: list[Outcome]


def account(script: Script, finals: list[Final]) -> Accounting:
    from voxhost.stt.wer import normalize

    placed = [(f, f.start_ms, f.end_ms) for f in finals
              if f.start_ms is not None and f.end_ms is not None and (f.transcript or "").strip()]
    outcomes = []
    for u in script.utterances:
        mine = [(f, max(u.start_ms, a), min(u.end_ms, b)) for f, a, b in placed if min(u.end_ms, b) > max(u.start_ms, a)]
        overlaps = sorted((a, b) for _, a, b in mine)
        heard = sum(b - a for a, b in overlaps)
        twice = sum(max(0.0, min(b1, b2) - max(a1, a2))
                    for i, (a1, b1) in enumerate(overlaps) for a2, b2 in overlaps[i + 1:])
        outcomes.append(Outcome(u, heard < min(MIN_OVERLAP_MS, 0.5 * (u.end_ms - u.start_ms)),
                                twice >= MIN_OVERLAP_MS, tuple(f.item_id for f, _, _ in mine)))
    reference = normalize(" ".join(u.text for u in script.utterances))
    hypothesis = normalize(" ".join(f.transcript or "" for f in finals))
    wer, missing, added = _alignment(reference, hypothesis)
    return Accounting(len(script.utterances), sum(o.lost for o in outcomes), sum(o.duplicated for o in outcomes),
                      sum(1 for f in finals if f.end_ms is None), wer, missing, added, outcomes)


def _alignment(reference: str, hypothesis: str) -> tuple[float, int, int]:
    """(WER, longest run of deleted words, longest run of inserted words)."""
    import jiwer

    if not reference:
        return 0.0, 0, len(hypothesis.split())
    if not hypothesis:
        return 1.0, len(reference.split()), 0
    out = jiwer.process_words(reference, hypothesis)
    missing = added = 0
    for chunk in out.alignments[0]:
        if chunk.type == "delete":
            missing = max(missing, chunk.ref_end_idx - chunk.ref_start_idx)
        elif chunk.type == "insert":
            added = max(added, chunk.hyp_end_idx - chunk.hyp_start_idx)
    return out.wer, missing, added
