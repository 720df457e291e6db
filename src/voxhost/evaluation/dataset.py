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
