"""Round-trip WER per voice: each voice speaks the evaluation sentences (one
request's worth, split and stitched as the server does), bundled Whisper base
transcribes the result in one pass.

    PYTHONPATH=src python bench/tts_voice_wer.py [--engine kokoro] [--voices jm_kumo,jf_alpha(1)+jm_kumo(1)]
    PYTHONPATH=src python bench/tts_voice_wer.py --effects [--base am_michael]   # each effect preset

Used to pick which Kokoro voices the OpenAI names map to (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voxhost.audio.decode import decode_audio  # noqa: E402
from voxhost.engines.stt.base import TranscriptionOptions  # noqa: E402
from voxhost.engines.tts import text as frontend  # noqa: E402
from voxhost.evaluation.dataset import tts_sentences  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.services import build_services  # noqa: E402
from voxhost.stt.wer import wer  # noqa: E402
from voxhost.tts.designs import EFFECTS, VoiceDesign  # noqa: E402
from voxhost.tts.service import _Renderer  # noqa: E402
from voxhost.tts.shaping import Shaper  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="kokoro")
    parser.add_argument("--voices", default="", help="comma-separated; default: every voice of the engine")
    parser.add_argument("--effects", action="store_true", help="each effect preset on --base instead")
    parser.add_argument("--base", default="am_michael", help="the voice the effect presets shape")
    parser.add_argument("--presets", default=",".join(EFFECTS), help="with --effects: which presets")
    args = parser.parse_args()
    settings = Settings(tts_engines=[args.engine])
    services = build_services(settings)
    services.tts_engines.load_all(warm_up=False)
    engine = services.tts_engines.engines[args.engine]
    whisper = services.stt_engines.load("whisper-base")
    sentences = tts_sentences()
    chunks = frontend.split(frontend.normalize("\n".join(sentences)))
    options = TranscriptionOptions(language="en", beam_size=5, vad_filter=False)
    voices = [v for v in args.voices.split(",") if v] or [v.id for v in engine.voices()]
    designs = [None] * len(voices)
    if args.effects:
        designs = [VoiceDesign(name=e, base=args.base, effect=e) for e in args.presets.split(",")]
        voices = [args.base] * len(designs)
    print(f"| {args.engine} voice | round-trip WER ({len(sentences)} sentences, Whisper base) |\n|---|---|")
    for spec, design in zip(voices, designs):
        selection = engine.resolve_voice(spec)
        renderer = _Renderer(chunks, "wav", engine.sample_rate, None, shaper=Shaper.for_design(design,
                                                                                           engine.sample_rate))
        audio = b"".join(b for pcm in engine.stream(chunks, selection) for b in renderer.feed(pcm)) + renderer.close()
        hypothesis = whisper.transcribe(decode_audio(audio), options).text
        label = selection.definition + (f" + {design.effect}" if design else "")
        print(f"| {label} | {wer([' '.join(sentences)], [hypothesis]):.1%} |", flush=True)


if __name__ == "__main__":
    main()
