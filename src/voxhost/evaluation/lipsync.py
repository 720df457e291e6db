"""Lip-sync accuracy: our word start times against an independent aligner's.

The reference is Whisper's word timestamps on the audio we produced. Words are
paired by aligning the two word sequences (difflib), so a word Whisper mishears
or splits is left out rather than shifting every later pair.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

import numpy as np


def _key(word: str) -> str:
    # Letters of any alphabet ("derrumbó", "à"), so other languages' words pair as English ones do.
    return re.sub(r"[\W_]", "", unicodedata.normalize("NFKC", word).lower())


def start_errors(ours: list[tuple[str, float]], reference: list[tuple[str, float]]) -> list[float]:
    """|our start - reference start| (s) for each word both sides agree on; inputs are (word, start)."""
    a, b = [_key(w) for w, _ in ours], [_key(w) for w, _ in reference]
    errors: list[float] = []
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        for i in range(block.size):
            errors.append(abs(ours[block.a + i][1] - reference[block.b + i][1]))
    return errors


def median_start_error(ours: list[tuple[str, float]], reference: list[tuple[str, float]]) -> tuple[float, int]:
    """Median absolute start error (s) and how many words it is over."""
    errors = start_errors(ours, reference)
    return (float(np.median(errors)) if errors else float("inf")), len(errors)
