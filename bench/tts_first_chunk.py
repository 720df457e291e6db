"""Kokoro's first audio with a short first chunk (VOXHOST_TTS_FIRST_CHUNK_WORDS) against
the whole first clause (0, the behaviour before), side by side in one run.

  first byte  two real `voxhost serve` processes (Kokoro only), one per setting; each
              trial sends the same new line to both, in alternating order, so both
              see the same machine load; medians and the after/before ratio
  seams       every join of a short first chunk: the largest sample step within 5 ms
              of the join, against the line's own 99th-percentile step (1 or less: the
              join is no sharper than the speech itself)
  WER         each evaluation sentence as its own request (so each has a short first
              chunk), transcribed by bundled Whisper base, both settings
  RTF         synthesis s / audio s per voice, on one evaluation sentence

    PYTHONPATH=src python bench/tts_first_chunk.py [--trials 8] [--voices af_heart,am_onyx,...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from tts_latency import NAMES, http_first_byte, start_server  # bench/ is on sys.path as a script

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voxhost.audio.decode import decode_audio  # noqa: E402
from voxhost.engines.stt.base import TranscriptionOptions  # noqa: E402
from voxhost.engines.tts import text as frontend  # noqa: E402
from voxhost.evaluation.dataset import tts_sentences  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.services import build_services  # noqa: E402
from voxhost.stt.wer import wer  # noqa: E402
from voxhost.tts.service import _Renderer  # noqa: E402
from voxhost.tts.voices import DEFAULT_VOICE_MAP  # noqa: E402

RATE = 24_000
LINES = {  # first sentence long and unbroken (cut after a few words), and a bark (already short)
    "long first sentence": "{}, the old bridge to the northern village collapsed during last night's storm.",
    "bark": "Halt, {}! Nobody passes the gate after sunset.",
}
# The 13 OpenAI names' Kokoro voices (tts/voices.py's table; coral is af_heart, the default).
VOICES = ",".join(sorted(set(DEFAULT_VOICE_MAP["kokoro"].values())))


def render(engine, selection, chunks, fmt: str = "pcm") -> bytes:
    """The line as the server stitches (fades, pauses) and encodes it."""
    renderer = _Renderer(chunks, fmt, RATE, None)
    return b"".join(b for pcm in engine.stream(chunks, selection) for b in renderer.feed(pcm)) + renderer.close()


def pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768


def seam_ratio(engine, selection, chunks) -> float:
    """Largest sample step within 5 ms of the first join / the line's 99th-percentile step."""
    head = pcm(render(engine, selection, chunks[:1])).size
    audio = pcm(render(engine, selection, chunks))
    steps = np.abs(np.diff(audio))
    window = int(0.005 * RATE)
    return float(steps[max(0, head - window): head + window].max() / np.percentile(steps, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--voices", default=VOICES)
    parser.add_argument("--words", type=int, default=frontend.FIRST_CHUNK_WORDS)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    # --- first byte over HTTP, both settings in one run ---
    rows = {}
    with tempfile.TemporaryDirectory() as before_dir, tempfile.TemporaryDirectory() as after_dir:
        servers = [start_server(Path(d), tts_engines="kokoro", tts_first_chunk_words=str(w), stt_models="whisper-tiny.en")
                   for d, w in ((before_dir, 0), (after_dir, args.words))]
        try:
            with httpx.Client(timeout=120) as client:
                for _, url in servers:
                    http_first_byte(client, url, {"model": "kokoro", "voice": "af_heart", "input": "Warm up."})
                for label, template in LINES.items():
                    times: list[list[float]] = [[], []]
                    for i in range(args.trials):
                        body = {"model": "kokoro", "voice": "af_heart", "response_format": "pcm",
                                "input": template.format(NAMES[i % len(NAMES)]) + f" Trial {i}."}
                        order = (0, 1) if i % 2 == 0 else (1, 0)
                        for side in order:
                            first, _, cache, _ = http_first_byte(client, servers[side][1], body)
                            assert cache == "miss"
                            times[side].append(first)
                    rows[label] = [statistics.median(t) for t in times]
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait(30)
    load_http = os.getloadavg()[0]

    settings = Settings(tts_engines=["kokoro"])
    services = build_services(settings)
    services.tts_engines.load_all(warm_up=True)
    engine = services.tts_engines.engines["kokoro"]
    voice = engine.resolve_voice("af_heart")
    sentences = tts_sentences()

    # --- seams and round-trip WER, each sentence its own request ---
    whisper = services.stt_engines.load("whisper-base")
    options = TranscriptionOptions(language="en", beam_size=5, vad_filter=False)
    hyps: list[list[str]] = [[], []]
    seams = []
    for sentence in sentences:
        spoken = frontend.normalize(sentence)
        for side, words in enumerate((0, args.words)):
            chunks = frontend.split(spoken, first_word_limit=words)
            audio = decode_audio(render(engine, voice, chunks, "wav"))
            hyps[side].append(whisper.transcribe(audio, options).text)
            if side == 1 and len(chunks) > 1:
                seams.append(seam_ratio(engine, voice, chunks))
    wers = [wer(sentences, h) for h in hyps]

    # --- per-voice RTF ---
    rtf_chunks = frontend.split(frontend.normalize(sentences[-1]))
    rtfs = []
    for spec in args.voices.split(","):
        selection = engine.resolve_voice(spec)
        start = time.perf_counter()
        samples = sum(pcm.size for pcm in engine.stream(rtf_chunks, selection))
        rtfs.append((spec, (time.perf_counter() - start) / (samples / RATE)))

    print(f"\nKokoro first byte over HTTP (pcm, af_heart), median of {args.trials} lines per row, "
          f"first chunk whole clause (0) vs at most {args.words} words; {os.cpu_count()} CPUs, load average "
          f"{load_before:.1f} before, {load_http:.1f} after the HTTP part, {os.getloadavg()[0]:.1f} at the end\n")
    print("| line | before ms | after ms | after/before |\n|---|---|---|---|")
    for label, (before, after) in rows.items():
        print(f"| {label} | {before * 1000:.0f} | {after * 1000:.0f} | {after / before:.2f} |")
    print(f"\nRound-trip WER, {len(sentences)} sentences each its own request (Whisper base, af_heart): "
          f"before {wers[0]:.1%}, after {wers[1]:.1%}")
    print(f"Seams ({len(seams)} lines cut): largest step within 5 ms of the join / the line's 99th-percentile "
          f"step: median {statistics.median(seams):.2f}, max {max(seams):.2f}")
    print("\n| voice | RTF (synthesis s / audio s) |\n|---|---|")
    for spec, factor in rtfs:
        print(f"| {spec} | {factor:.2f} |")


if __name__ == "__main__":
    main()
