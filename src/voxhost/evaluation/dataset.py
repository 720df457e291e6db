"""The shared evaluation set (real speech + reference transcripts)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Utterance:
    audio: Path
    text: str
    lang: str
    category: str
    duration: float
    speaker: str
    notes: str = ""

    @property
    def id(self) -> str:
        return self.audio.stem


def eval_dir() -> Path:
    """VOXHOST_EVAL_DIR, else the `shared/eval` beside the checkout."""
    if env := os.environ.get("VOXHOST_EVAL_DIR"):
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "eval"
        if (candidate / "manifest.jsonl").is_file():
            return candidate
        candidate = parent / "shared" / "eval"
        if (candidate / "manifest.jsonl").is_file():
            return candidate
    raise FileNotFoundError("shared/eval not found; set VOXHOST_EVAL_DIR")


def load_manifest(lang: str | None = None, root: Path | None = None) -> list[Utterance]:
    root = root or eval_dir()
    rows = []
    for line in (root / "manifest.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        if lang and raw["lang"] != lang:
            continue
        rows.append(
            Utterance(
                audio=root / "audio" / raw["audio"],
                text=raw["text"],
                lang=raw["lang"],
                category=raw["category"],
                duration=float(raw["duration"]),
                speaker=raw.get("speaker", ""),
                notes=raw.get("notes", ""),
            )
        )
    return rows


def tts_sentences(root: Path | None = None) -> list[str]:
    root = root or eval_dir()
    lines = (root / "tts_sentences.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def representative_subset(rows: list[Utterance], max_seconds: float) -> list[Utterance]:
    """Deterministic, category-balanced subset up to `max_seconds` of audio.

    Round-robin over categories (shortest clips first within each), so every
    category is represented before any gets a second pick.
    """
    by_category: dict[str, list[Utterance]] = {}
    for row in sorted(rows, key=lambda r: (r.duration, r.id)):
        by_category.setdefault(row.category, []).append(row)
    picked: list[Utterance] = []
    total = 0.0
    while any(by_category.values()):
        for category in sorted(by_category):
            queue = by_category[category]
            if not queue:
                continue
            if total + queue[0].duration > max_seconds:
                queue.clear()  # sorted by length: nothing else of this category fits
                continue
            row = queue.pop(0)
            picked.append(row)
            total += row.duration
    return picked
