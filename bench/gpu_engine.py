"""The Whisper engine's GPU path (CTranslate2 on CUDA), side by side in one run.

1. Sequential REST-style decodes (beam 5) of the English eval set: RTF and the
   transcripts, for float16 (production default on GPU) and int8_float16
   (what a 16 GB T4 would run for large models).
2. Cross-request batching: one `transcribe_batch` of N short clips vs N
   `transcribe` calls, N = 1..32, alternated so drift hits both, for each
   decoding setup the server batches (timestamps, text-only, live partials);
   `--breakdown` times a batch's encode and generate apart.
3. A live final: a 2 s turn through Whisper's 30 s window vs the short window.
4. TTS (`--tts-feeds`): Kokoro's int8 graph on the CPU vs its float32 graph
   (engines/tts/kokoro_float.py) on onnxruntime's CUDA provider: per-line time,
   real-time factor, and audio-seconds per second with 1/4/8 streams at once.
   The feeds (phoneme tokens and style vectors) are prepared where voxhost's
   G2P is installed, so the GPU machine needs only onnxruntime-gpu:

    python bench/gpu_engine.py --tts-prepare feeds.npz            # here: writes feeds + both graphs' paths
    python bench/gpu_engine.py --tts-feeds feeds.npz --kokoro-int8 int8.onnx --kokoro-float float.onnx \
        --skip-stt --out gpu_tts.json                              # on the GPU machine

Engine-level only (no HTTP): the server adds ~nothing on top (bench/stt_overhead.py).
Transcripts go into the JSON; WER is scored where the eval set lives:

    python bench/gpu_engine.py --model-dir ~/.cache/voxhost/models/whisper-base --out gpu.json
    python bench/gpu_engine.py --score gpu.json       # adds WER (needs shared/eval)

`--audio-npz` takes the eval set pre-decoded (16 kHz int16, one array per file
id), for GPU machines without PyAV or the eval folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np

if importlib.util.find_spec("av") is None:
    # faster_whisper imports PyAV at module level for decode_audio, which voxhost
    # never calls (it decodes with its own PyAV code); a bare GPU image may lack it.
    sys.modules["av"] = types.ModuleType("av")

from _batching import compare  # noqa: E402  (bench/ is on sys.path when run as a script)

from voxhost.engines.stt.base import TranscriptionOptions  # noqa: E402
from voxhost.engines.stt.whisper import WhisperEngine  # noqa: E402

RATE = 16_000


def load_clips(npz: Path | None) -> dict[str, np.ndarray]:
    if npz is not None:
        with np.load(npz) as data:
            return {k: data[k].astype(np.float32) / 32768.0 for k in data.files}
    from voxhost.audio.decode import decode_audio
    from voxhost.evaluation.dataset import load_manifest

    return {u.id: decode_audio(u.audio.read_bytes()) for u in load_manifest(lang="en")}


def gpu_memory_mb() -> float | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return pynvml.nvmlDeviceGetMemoryInfo(handle).used / 1e6
    except Exception:
        return None


def gpu_name() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        return name.decode() if isinstance(name, bytes) else name
    except Exception:
        return "unknown"


def sequential(engine: WhisperEngine, clips: dict[str, np.ndarray], options: TranscriptionOptions) -> dict:
    engine.transcribe(next(iter(clips.values())), options)  # warm-up
    texts, start = {}, time.perf_counter()
    for key, audio in clips.items():
        texts[key] = engine.transcribe(audio, options).text
    elapsed = time.perf_counter() - start
    audio_s = sum(a.size for a in clips.values()) / RATE
    return {"audio_s": audio_s, "elapsed_s": elapsed, "rtf": elapsed / audio_s, "texts": texts}


# Decoding setups the server batches (each is its own batch key).
SETUPS = {
    # REST verbose_json/srt/vtt and live finals: timestamp tokens, beam 5
    "timestamps_beam5": TranscriptionOptions(language="en"),
    # REST json/text on GPU: text-only, beam 5
    "text_only_beam5": TranscriptionOptions(language="en", without_timestamps=True),
    # live partials: greedy, text-only, 10 s encoder window, capped tokens
    "partial": TranscriptionOptions(language="en", beam_size=1, without_timestamps=True, chunk_length=10,
                                    max_new_tokens=56, temperature_fallback=False),
}


def batch_breakdown(engine: WhisperEngine, short: list[np.ndarray], n: int) -> dict:
    """Where a batch's time goes: encode and generate, batched vs one by one,
    with and without Whisper's timestamp tokens (the batch path keeps them)."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    model = engine.model
    work = [short[i % len(short)] for i in range(n)]
    feats = [model.feature_extractor(a) for a in work]
    stack = np.stack([pad_or_trim(f[:, : f.shape[-1] - 1]) for f in feats])
    tok = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")

    def generate(encoded, count, *, timestamps: bool, beam: int):
        prompt = model.get_prompt(tok, [], without_timestamps=not timestamps)
        return model.model.generate(
            encoded, [prompt] * count, beam_size=beam, max_length=model.max_length, return_scores=True,
            return_no_speech_prob=True, suppress_blank=True, suppress_tokens=get_suppressed_tokens(tok, [-1]),
            max_initial_timestamp_index=50,
        )

    def timed(fn):
        fn()  # warm-up for this shape
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out

    row = {"batch": n}
    row["encode_batched_s"], encoded = timed(lambda: model.encode(stack))
    row["encode_sequential_s"], singles = timed(lambda: [model.encode(stack[i : i + 1]) for i in range(n)])
    for beam in (5, 1):
        for timestamps in (True, False):
            key = f"beam{beam}_{'ts' if timestamps else 'nots'}"
            row[f"generate_batched_{key}_s"], results = timed(
                lambda timestamps=timestamps, beam=beam: generate(encoded, n, timestamps=timestamps, beam=beam))
            row[f"generate_sequential_{key}_s"], _ = timed(
                lambda timestamps=timestamps, beam=beam: [generate(e, 1, timestamps=timestamps, beam=beam) for e in singles])
            lengths = [len(r.sequences_ids[0]) for r in results]
            row[f"tokens_{key}"] = {"max": max(lengths), "mean": float(np.mean(lengths))}
    print("  breakdown", json.dumps(row), flush=True)
    return row


def live_final(engine: WhisperEngine, turn: np.ndarray, rounds: int) -> dict:
    result = {}
    for label, window in (("window_30s", None), ("window_5s", 5)):
        options = TranscriptionOptions(language="en", chunk_length=window, max_new_tokens=48)
        engine.transcribe(turn, options)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            text = engine.transcribe(turn, options).text
            times.append(time.perf_counter() - t)
        result[label] = {"median_ms": 1000 * statistics.median(times), "text": text}
        print(f"  2 s turn, {label}: {result[label]['median_ms']:.1f} ms  {text!r}", flush=True)
    return result


TTS_RATE = 24_000


def tts_prepare(out: Path) -> None:
    """Kokoro feeds for the evaluation sentences (voices alternating), and the graphs' paths."""
    from voxhost.engines.tts.kokoro import KokoroEngine
    from voxhost.engines.tts.kokoro_durations import TIMED_MODEL_FILE
    from voxhost.engines.tts.kokoro_float import assemble_float
    from voxhost.evaluation.dataset import tts_sentences
    from voxhost.ops.settings import Settings

    engine = KokoroEngine(models_dir=Settings().models_dir)
    engine.load()
    feeds = {}
    for i, text in enumerate(tts_sentences()):
        voice = engine.resolve_voice(("af_heart", "am_michael", "bm_george")[i % 3])
        for j, tokens in enumerate(engine._tokens(engine._g2p[voice.data.british](text))):
            feeds[f"tokens_{i}_{j}"] = np.array([[0, *tokens, 0]], np.int64)
            feeds[f"style_{i}_{j}"] = voice.data.rows[len(tokens) - 1].reshape(1, 256)
    np.savez(out, **feeds)
    int8 = Path(engine.models_dir) / "kokoro" / TIMED_MODEL_FILE
    print(json.dumps({"feeds": str(out), "kokoro_int8": str(int8), "kokoro_float": str(assemble_float(int8))}))


def tts_bench(feeds_path: Path, graphs: dict[str, tuple[Path, list[str]]], rounds: int,
              streams: list[int]) -> dict:
    """Each graph on its provider: sequential lines, then N concurrent streams (threads
    sharing one session, as the server's TTS workers do)."""
    from concurrent.futures import ThreadPoolExecutor

    import onnxruntime as ort

    with np.load(feeds_path) as data:
        keys = sorted({k.split("_", 1)[1] for k in data.files})
        feeds = [{"tokens": data[f"tokens_{k}"], "style": data[f"style_{k}"],
                  "speed": np.array([1.0], np.float32)} for k in keys]
    result = {"lines": len(feeds), "onnxruntime": ort.__version__, "available": ort.get_available_providers()}
    for label, (path, providers) in graphs.items():
        t = time.perf_counter()
        session = ort.InferenceSession(str(path), providers=providers)
        row = {"load_s": time.perf_counter() - t, "providers": session.get_providers(),
               "gpu_memory_mb": gpu_memory_mb()}
        session.run(None, feeds[0])  # warm-up (CUDA: kernels, cuDNN autotune)
        times, audio_s = [], 0.0
        for _ in range(rounds):
            for feed in feeds:
                t = time.perf_counter()
                audio = session.run(None, feed)[0]
                times.append(time.perf_counter() - t)
                audio_s += audio.size / TTS_RATE
        row["line_median_ms"] = 1000 * statistics.median(times)
        row["rtf"] = sum(times) / audio_s
        row["streams"] = {}
        for n in streams:
            def stream(offset: int, session=session) -> float:
                said = 0.0
                for i in range(len(feeds)):
                    said += session.run(None, feeds[(i + offset) % len(feeds)])[0].size / TTS_RATE
                return said
            t = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                said = sum(pool.map(stream, range(n)))
            row["streams"][n] = {"audio_s_per_s": said / (time.perf_counter() - t)}
        print(f"  TTS {label} on {row['providers'][0]}: line {row['line_median_ms']:.0f} ms, RTF {row['rtf']:.3f}, "
              + ", ".join(f"{n} streams {v['audio_s_per_s']:.1f} audio-s/s" for n, v in row["streams"].items()),
              flush=True)
        result[label] = row
        del session
    return result


def run(args) -> dict:
    import ctranslate2

    clips = {} if args.skip_stt else load_clips(args.audio_npz)
    report = {
        "gpu": gpu_name(),
        "cuda_devices": ctranslate2.get_cuda_device_count(),
        "ctranslate2": ctranslate2.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "gpu_memory_idle_mb": gpu_memory_mb(),
        "compute_types": sorted(ctranslate2.get_supported_compute_types(args.device)),
        "runs": {},
    }
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}), flush=True)
    short = [a for a in clips.values() if 1.0 <= a.size / RATE <= 5.0]
    turn = min(short, key=lambda a: abs(a.size / RATE - 2.0)) if short else None
    if args.tts_feeds:
        report["tts"] = tts_bench(args.tts_feeds, {
            "kokoro int8, CPU": (args.kokoro_int8, ["CPUExecutionProvider"]),
            "kokoro float32, CUDA": (args.kokoro_float, ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        }, args.rounds, [int(n) for n in args.tts_streams.split(",")])
    for compute_type in ([] if args.skip_stt else args.compute_types.split(",")):
        t = time.perf_counter()
        engine = WhisperEngine("whisper", str(args.model_dir), device=args.device, compute_type=compute_type)
        result = {"load_s": time.perf_counter() - t, "gpu_memory_mb": gpu_memory_mb()}
        print(f"{compute_type}: loaded in {result['load_s']:.1f}s", flush=True)
        result["sequential"] = sequential(engine, clips, TranscriptionOptions(language="en"))
        print(f"  sequential beam 5: {result['sequential']['audio_s']:.0f}s audio in "
              f"{result['sequential']['elapsed_s']:.1f}s, RTF {result['sequential']['rtf']:.4f}", flush=True)
        if compute_type == args.batch_compute_type:
            result["sequential_text_only"] = sequential(engine, clips, SETUPS["text_only_beam5"])
            print(f"  sequential text-only beam 5: RTF {result['sequential_text_only']['rtf']:.4f}", flush=True)
            result["batching"] = {}
            for name in args.setups.split(","):
                print(f"  batching, {name}:", flush=True)
                result["batching"][name] = compare(engine, short, [int(n) for n in args.sizes.split(",")],
                                                args.rounds, SETUPS[name])
            if args.breakdown:
                result["breakdown"] = [batch_breakdown(engine, short, n) for n in (8, 32)]
            result["live_final"] = live_final(engine, turn, args.rounds * 3)
        report["runs"][compute_type] = result
        del engine
    return report


def score(path: Path) -> None:
    from voxhost.evaluation.dataset import load_manifest
    from voxhost.stt.wer import wer

    report = json.loads(path.read_text())
    refs = {u.id: u.text for u in load_manifest(lang="en")}
    for compute_type, result in report["runs"].items():
        for name in ("sequential", "sequential_text_only"):
            if name not in result:
                continue
            texts = result[name]["texts"]
            keys = [k for k in texts if k in refs]
            result[name]["wer"] = wer([refs[k] for k in keys], [texts[k] for k in keys])
            print(f"{compute_type} {name}: pooled WER {result[name]['wer']:.3%} on {len(keys)} files, "
                  f"RTF {result[name]['rtf']:.4f}")
    path.write_text(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--audio-npz", type=Path)
    parser.add_argument("--device", default="cuda", help="cpu: a smoke run of this script")
    parser.add_argument("--compute-types", default="float16,int8_float16")
    parser.add_argument("--batch-compute-type", default="float16")
    parser.add_argument("--sizes", default="1,4,8,16,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--breakdown", action="store_true", help="time encode/generate of a batch separately")
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu_engine.json"))
    parser.add_argument("--score", type=Path, help="add WER to an earlier run's JSON and exit")
    parser.add_argument("--tts-prepare", type=Path, help="write Kokoro feeds for --tts-feeds here and exit")
    parser.add_argument("--tts-feeds", type=Path, help="also measure Kokoro int8 (CPU) vs float32 (CUDA)")
    parser.add_argument("--kokoro-int8", type=Path, help="Kokoro's int8 graph (--tts-prepare prints it)")
    parser.add_argument("--kokoro-float", type=Path, help="Kokoro's float32 graph (--tts-prepare prints it)")
    parser.add_argument("--tts-streams", default="1,4,8", help="concurrent TTS streams to measure")
    parser.add_argument("--skip-stt", action="store_true", help="TTS only")
    args = parser.parse_args()
    if args.tts_prepare:
        tts_prepare(args.tts_prepare)
        return
    if args.tts_feeds and not (args.kokoro_int8 and args.kokoro_float):
        parser.error("--tts-feeds needs --kokoro-int8 and --kokoro-float")
    if args.score:
        score(args.score)
        return
    if args.model_dir is None and not args.skip_stt:
        parser.error("--model-dir is required")
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
