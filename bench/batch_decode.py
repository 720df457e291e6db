"""Engine-level: one `transcribe_batch` of N short clips vs N `transcribe` calls.

No HTTP, no scheduler: what cross-request batching buys the model itself on
this machine. Alternates the two (so background load hits both) and reports
the median of rounds.

    PYTHONPATH=src python bench/batch_decode.py --model whisper-tiny.en --sizes 1,4,8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _batching import compare  # bench/ is on sys.path when run as a script

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.evaluation.dataset import load_manifest
from voxhost.ops.settings import Settings
from voxhost.services import build_services


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--sizes", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/batch_decode.json"))
    args = parser.parse_args()
    engine = build_services(Settings(stt_models=[args.model])).stt_engines.load(args.model)
    clips = [decode_audio(u.audio.read_bytes()) for u in load_manifest(lang="en") if 1.0 <= u.duration <= 5.0]
    options = TranscriptionOptions(language="en")
    rows = compare(engine, clips, [int(x) for x in args.sizes.split(",")], args.rounds, options)
    assert all(r["same_text"] == r["batch"] for r in rows), "batched text differs from sequential"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "device": engine.device, "rows": rows,
                                    "loadavg": __import__("os").getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
