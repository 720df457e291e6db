"""What each cut of a line costs Kokoro, in frames: the whole line in one call against the
chunks the server speaks it in, with the early first chunk (an idle server) and without it
(a busy one: tts/service.py `SpeechService.open`).

A Kokoro call costs about 9 ms per 25 ms frame on 2 cores, and every call speaks its pad token
as ~12 frames of lead-in and ends as an utterance (the last word lengthened, a pause): frames
that a cut adds and trimming throws away. Counts, not timings: the engine's own durations
output (engines/tts/kokoro_durations.py), on bench/tts_vs_kokoro_onnx.py's lines, voice am_onyx.

  .venv/bin/python bench/kokoro_chunk_frames.py

Writes bench/results/kokoro_chunk_frames.json.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))


def main() -> None:
    from tts_vs_kokoro_onnx import LINES, NAMES

    from voxhost.engines.threads import limit_blas
    from voxhost.engines.tts import text as frontend
    from voxhost.engines.tts.kokoro import KokoroEngine
    from voxhost.ops.settings import Settings

    limit_blas()
    engine = KokoroEngine(models_dir=Settings().models_dir)
    engine.load()
    voice = engine.resolve_voice("am_onyx")

    def frames(text: str) -> dict:
        """Frames of one call: all, the lead pad's, the end pad's."""
        style, spelled = engine.spell(text, voice)
        tokens = [engine._vocab[c] for c in spelled.phonemes if c in engine._vocab]
        _, durations = engine._session.run(None, {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64), "style": style[len(tokens) - 1].reshape(1, 256),
            "speed": np.array([1.0], dtype=np.float32)})
        d = np.asarray(durations).reshape(-1)
        return {"frames": int(d.sum()), "lead": int(d[0]), "end": int(d[-1])}

    rows = []
    print("| line class | line | whole line, frames | idle cut: chunks | frames | x whole | busy cut: chunks | frames | "
          "x whole |\n|---|---|---|---|---|---|---|---|---|")
    for cls, lines in LINES.items():
        for i, template in enumerate(lines):
            text = frontend.prepare(template.format(NAMES[i]))
            whole = frames(text)
            row = {"class": cls, "text": text, "whole": whole}
            for cut, early in (("idle", True), ("busy", False)):
                chunks = [c.text for c in frontend.split(text, early=early)]
                counted = [frames(c) for c in chunks]
                row[cut] = {"chunks": chunks, "calls": counted, "frames": sum(c["frames"] for c in counted)}
            rows.append(row)
            print(f"| {cls} | {text[:40]}... | {whole['frames']} | {len(row['idle']['chunks'])} | "
                  f"{row['idle']['frames']} | {row['idle']['frames'] / whole['frames']:.2f}x | "
                  f"{len(row['busy']['chunks'])} | {row['busy']['frames']} | "
                  f"{row['busy']['frames'] / whole['frames']:.2f}x |")
    print("\n| line class | idle cut, frames x whole (median) | busy cut |\n|---|---|---|")
    for cls in LINES:
        mine = [r for r in rows if r["class"] == cls]
        print(f"| {cls} | {statistics.median(r['idle']['frames'] / r['whole']['frames'] for r in mine):.2f}x | "
              f"{statistics.median(r['busy']['frames'] / r['whole']['frames'] for r in mine):.2f}x |")
    leads = [c["lead"] for r in rows for c in r["idle"]["calls"]]
    print(f"\nlead-in per call: {min(leads)}-{max(leads)} frames")
    out = HERE / "results" / "kokoro_chunk_frames.json"
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
