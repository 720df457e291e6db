"""Where Kokoro's first chunk spends its time before the first audio byte, in CPU time.

In-process (no HTTP: bench/tts_latency.py measures what HTTP, the queue and the
encoder's first slice add, under 10 ms), on the first chunk the server would
synthesise for a bark ("Halt, Aldric!" with VOXHOST_TTS_FIRST_CHUNK_WORDS=4).
CPU time (time.process_time) is used because it depends far less on the shared
machine's load than wall time; the best of --repeats per stage.

  stages      G2P, tokens and style row, the ONNX run (with its token count and the
              frames it renders, of which the two pad tokens' share), trim, the
              designed-voice shaping of that chunk (WORLD analysis and synthesis for
              pitch -3 / formant -0.1, whole and the head the first byte waits for;
              cave's filters and reverb), the fades, the
              encoder's first 0.1 s slice (mp3)
  per frame   the ONNX run's CPU time against the frames it renders, for chunks of
              1, 2, 4 and 8 words: the slope is the decoder's cost per 25 ms frame
  threads     (--threads) wall time of the first chunk's ONNX run with 1 and with 2
              intra-op threads (VOXHOST_TTS_THREADS), alternating, medians and ratio
  pad cap     (--pad-cap) the same graph with the leading pad token's frames capped
              (kokoro_durations.py's duration tensor), against the graph as shipped:
              CPU time, and the loudness of the first 150 ms of speech

    PYTHONPATH=src python bench/tts_first_chunk_profile.py [--voice am_onyx] [--repeats 3] [--threads] [--pad-cap]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voxhost.audio.encode import StreamEncoder  # noqa: E402
from voxhost.audio.stitch import shape  # noqa: E402
from voxhost.engines.tts import text as frontend  # noqa: E402
from voxhost.engines.tts.g2p import shared_g2p  # noqa: E402
from voxhost.engines.tts.kokoro import KokoroEngine, _trim  # noqa: E402
from voxhost.engines.tts.kokoro_durations import DURATIONS_TENSOR, SAMPLES_PER_FRAME  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.tts import shaping  # noqa: E402
from voxhost.tts.designs import VoiceDesign  # noqa: E402

BARK = "Halt, Aldric! Nobody passes the gate after sunset."
GROWING = "Nobody passes the gate after sunset tonight, traveller."


def best(fn, repeats: int):
    """(min CPU seconds, last result)."""
    times, out = [], None
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        times.append(time.process_time() - start)
    return min(times), out


def feed(engine: KokoroEngine, voice, text: str) -> dict:
    tokens = engine._tokens(shared_g2p(voice.data.british)(text))[0]
    return {"tokens": np.array([[0, *tokens, 0]], np.int64),
            "style": voice.data.rows[len(tokens) - 1].reshape(1, 256),
            "speed": np.array([1.0], np.float32)}


def world_stages(pcm: np.ndarray, rate: int, repeats: int) -> dict[str, float]:
    """shaping.world_shift's steps, timed one by one (same arguments)."""
    import pyworld

    x = np.asarray(pcm, np.float64)
    out = {}
    out["WORLD dio"], (f0, t) = best(lambda: pyworld.dio(x, rate, f0_floor=50.0, f0_ceil=600.0,
                                                         frame_period=shaping.FRAME_MS, speed=shaping.DIO_SPEED),
                                     repeats)
    out["WORLD stonemask"], f0 = best(lambda: pyworld.stonemask(x, f0, t, rate), repeats)
    out["WORLD cheaptrick"], sp = best(lambda: pyworld.cheaptrick(x, f0, t, rate), repeats)
    every = shaping.APERIODICITY_EVERY
    out["WORLD d4c"], ap = best(lambda: pyworld.d4c(x, np.ascontiguousarray(f0[::every]),
                                                    np.ascontiguousarray(t[::every]), rate), repeats)
    ap = np.ascontiguousarray(np.repeat(ap, every, axis=0)[:f0.size])
    out["WORLD synthesize"], _ = best(lambda: pyworld.synthesize(f0, sp, ap, rate, frame_period=shaping.FRAME_MS),
                                      repeats)
    return out


def capped_session(models: Path, lead: float):
    """The shipped graph with the leading pad's frames capped at `lead` (an experiment, not shipped)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(str(models / "kokoro-v1.0.int8.onnx"))
    graph = model.graph
    producer = next(n for n in graph.node if DURATIONS_TENSOR in n.output)
    raw = DURATIONS_TENSOR + "_raw"
    producer.output[list(producer.output).index(DURATIONS_TENSOR)] = raw
    consts = {"s0": [0], "e1": [1], "s1": [1], "emax": [np.iinfo(np.int64).max], "ax": [-1]}
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), "cap/" + k) for k, v in consts.items())
    graph.initializer.append(numpy_helper.from_array(np.array([lead], np.float32), "cap/lead"))
    nodes = [helper.make_node("Slice", [raw, "cap/s0", "cap/e1", "cap/ax"], ["cap/head"]),
             helper.make_node("Slice", [raw, "cap/s1", "cap/emax", "cap/ax"], ["cap/rest"]),
             helper.make_node("Min", ["cap/head", "cap/lead"], ["cap/head_min"]),
             helper.make_node("Concat", ["cap/head_min", "cap/rest"], [DURATIONS_TENSOR], axis=-1)]
    at = list(graph.node).index(producer) + 1  # right after it: still in topological order
    for i, node in enumerate(nodes):
        graph.node.insert(at + i, node)
    graph.output.append(helper.make_tensor_value_info(DURATIONS_TENSOR, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def onset_rms(audio: np.ndarray, frames: np.ndarray) -> float:
    """RMS of the first 150 ms of speech: from 3 frames before the first phoneme's frame
    (the decoder's lead, kokoro_durations.AUDIO_LEAD_FRAMES)."""
    lead = int(frames[0]) * SAMPLES_PER_FRAME
    window = audio[max(0, lead - 3 * SAMPLES_PER_FRAME):lead + 6 * SAMPLES_PER_FRAME - 3 * SAMPLES_PER_FRAME]
    return float(np.sqrt(np.mean(window ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voice", default="am_onyx")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pad-cap", action="store_true")
    parser.add_argument("--threads", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    settings = Settings()
    engine = KokoroEngine(threads=settings.tts_threads, models_dir=settings.models_dir)
    engine.load()
    voice = engine.resolve_voice(args.voice)
    rate = engine.sample_rate
    first = frontend.split(frontend.prepare(BARK), first_word_limit=settings.tts_first_chunk_words)[0].text
    g2p = shared_g2p(voice.data.british)
    engine.synthesize("Warm up.", voice)
    stages: dict[str, float] = {}
    stages["G2P"], phonemes = best(lambda: g2p(first), args.repeats)
    stages["tokens + style row"], inputs = best(lambda: feed(engine, voice, first), args.repeats)
    stages["ONNX run"], (audio, frames) = best(lambda: engine._session.run(None, inputs), args.repeats)
    audio, frames = np.asarray(audio, np.float32).reshape(-1), np.asarray(frames).reshape(-1)
    stages["trim"], pcm = best(lambda: _trim(audio), args.repeats)
    stages.update(world_stages(pcm, rate, args.repeats))
    pitch = shaping.Shaper(VoiceDesign.model_validate({"name": "p", "base": args.voice, "pitch_semitones": -3,
                                                       "formant_shift": -0.1}), rate)
    stages["WORLD total (Shaper.voice)"], _ = best(lambda: pitch.voice(pcm), args.repeats)
    # What the first byte now waits for: the head of the first chunk (shaping.py, voice_pieces).
    stages["WORLD head only (voice_pieces, first piece)"], (head, _) = best(
        lambda: next(pitch.voice_pieces(pcm, early=True)), args.repeats)
    cave = VoiceDesign.model_validate({"name": "c", "base": args.voice, "effect": "cave"})
    stages["cave effect (fresh Shaper)"], _ = best(lambda: shaping.Shaper(cave, rate).effect(pcm), args.repeats)
    stages["fades"], faded = best(lambda: shape(pcm, rate), args.repeats)
    stages["mp3 first 0.1 s"], _ = best(lambda: StreamEncoder("mp3", rate).encode(faded[:rate // 10]), args.repeats)

    print(f"\n{os.cpu_count()} CPUs; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
          f"voice {args.voice}; first chunk {first!r}; {len(inputs['tokens'][0]) - 2} phoneme tokens + 2 pads; "
          f"{int(frames.sum())} frames rendered ({frames.sum() * SAMPLES_PER_FRAME / rate:.2f} s), pads "
          f"{int(frames[0])} + {int(frames[-1])}; {pcm.size / rate:.2f} s kept after the trim, a head of "
          f"{head.size / rate:.2f} s; best of {args.repeats}\n")
    print("| stage | CPU ms |\n|---|---|")
    for name, seconds in stages.items():
        print(f"| {name} | {seconds * 1000:.1f} |")

    words = GROWING.split()
    rows = []
    for n in (1, 2, 4, 8):
        inputs = feed(engine, voice, " ".join(words[:n]))
        cpu, (_, frames) = best(lambda inputs=inputs: engine._session.run(None, inputs), args.repeats)
        frames = np.asarray(frames).reshape(-1)
        rows.append((n, frames.size - 2, int(frames.sum()), int(frames[0] + frames[-1]), cpu))
    slope, intercept = np.polyfit([r[2] for r in rows], [r[4] for r in rows], 1)
    print("\n| words | phoneme tokens | frames rendered | of which pads | ONNX CPU ms |\n|---|---|---|---|---|")
    for n, tokens, total, pads, cpu in rows:
        print(f"| {n} | {tokens} | {total} | {pads} | {cpu * 1000:.0f} |")
    print(f"\nfit: {slope * 1000:.1f} ms CPU per frame, {intercept * 1000:+.0f} ms fixed")

    inputs = feed(engine, voice, first)
    if args.threads:
        threaded = {n: KokoroEngine(threads=n, models_dir=settings.models_dir) for n in (1, 2)}
        walls: dict[int, list[float]] = {1: [], 2: []}
        for each in threaded.values():
            each.load()
            each._session.run(None, inputs)
        for i in range(2 * args.repeats):
            for n in ((1, 2) if i % 2 else (2, 1)):
                start = time.perf_counter()
                threaded[n]._session.run(None, inputs)
                walls[n].append(time.perf_counter() - start)
        one, two = (float(np.median(walls[n])) for n in (1, 2))
        print(f"\nONNX run wall, load {os.getloadavg()[0]:.1f}: 1 thread {one * 1000:.0f} ms, 2 threads "
              f"{two * 1000:.0f} ms, ratio {two / one:.2f} (medians of {2 * args.repeats})")
    if args.pad_cap:
        shipped_cpu, (a0, f0) = best(lambda: engine._session.run(None, inputs), args.repeats)
        print("\n| leading pad | frames rendered | ONNX CPU ms | ratio | RMS of the first 150 ms of speech |\n"
              "|---|---|---|---|---|")
        print(f"| as predicted ({int(np.ravel(f0)[0])}) | {int(np.sum(f0))} | {shipped_cpu * 1000:.0f} | 1.00 | "
              f"{onset_rms(np.ravel(a0), np.ravel(f0)):.4f} |")
        for lead in (10.0, 6.0):
            session = capped_session(Path(settings.models_dir) / "kokoro", lead)
            cpu, (a1, f1) = best(lambda session=session: session.run(None, inputs), args.repeats)
            print(f"| capped at {lead:g} | {int(np.sum(f1))} | {cpu * 1000:.0f} | {cpu / shipped_cpu:.2f} | "
                  f"{onset_rms(np.ravel(a1), np.ravel(f1)):.4f} |")


if __name__ == "__main__":
    main()
