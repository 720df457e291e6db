"""`voxhost bench`: measure the throughput figures the planner needs, here.

STT: real-time factor (compute s / audio s) at batch 1 over a few real eval
clips, then aggregate throughput at each concurrency (parallel CTranslate2
workers): its best value is the real-time streams one device sustains.
CPU: the process time (all threads) of each request's engine path (decoding the
upload, features, the engine call) and of each TTS line, per request and per
character: the planner's CPU budget. On a GPU that is the host's share only; on
a CPU run it includes the model, as the planner expects of a "cpu" row.
TTS: each engine named (hibari, kokoro, piper, or a plugin's name), loaded by the
server's own registry with the server's settings, speaks the eval TTS sentences in
its default voice, each prepared (normalised, chunked) by the speech service as a
request would be; the engine's synthesis is timed.

Output: YAML in the planner's input format (a `throughput:` list), so
`voxhost plan -i plan.yaml -i bench.yaml` uses the measured figures.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from voxhost.audio.pcm import WHISPER_RATE
from voxhost.evaluation.dataset import Utterance, load_manifest, tts_sentences

Progress = Callable[[str, int], None]  # (description, steps done) callback

@dataclass(frozen=True)
class SttResult:
    model: str
    rtf: float
    streams: float
    by_concurrency: dict[int, float]  # audio seconds per wall second
    audio_seconds: float
    clips: int
    cpu_s_per_request: float = 0.0  # process time per REST request at batch 1 (decode + engine)


@dataclass(frozen=True)
class TtsResult:
    model: str
    rtf: float
    chars_per_second: float
    audio_seconds: float
    sentences: int
    cpu_s_per_char: float = 0.0  # process time per character synthesised


def device_label() -> str:
    """The GPU's short name (T4, A10G, L4, H100...) or 'cpu': how the planner matches rows."""
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() > 0:
            name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=10).stdout.splitlines()[0]
            for short in ("T4", "A10G", "L4", "L40S", "A100", "H100", "H200"):
                if short in name:
                    return short
            return name.strip()
    except Exception:  # no CUDA, no nvidia-smi: a CPU run
        pass
    return "cpu"


def pick_clips(count: int, max_seconds: float = 15.0, lang: str = "en") -> list[Utterance]:
    """The first `count` eval clips of `lang` no longer than `max_seconds` (short default run)."""
    rows = [u for u in load_manifest(lang=lang) if u.duration <= max_seconds]
    if not rows:
        raise ValueError(f"no {lang} eval clips of at most {max_seconds}s")
    return rows[:count]


def bench_options(settings, clips: list[Utterance]) -> list:
    """Each clip's options exactly as a REST request for it would get them (the STT
    service's defaults), so the measured throughput is the server's."""
    from voxhost.stt.service import options_from

    return [options_from(settings, language=c.lang) for c in clips]


def bench_stt(model: str, clips: list[Utterance], concurrency: list[int], progress: Progress | None = None,
              settings=None) -> SttResult:
    from voxhost.audio.decode import decode_audio
    from voxhost.ops.settings import get_settings
    from voxhost.services import build_services

    base = settings or get_settings()
    # One engine with as many CTranslate2 workers as the highest concurrency.
    s = base.model_copy(update={"stt_models": [model], "stt_num_workers": max(concurrency)})
    engine = build_services(s).stt_engines.load(model, warm_up=True)
    uploads = [c.audio.read_bytes() for c in clips]
    audios = [decode_audio(u) for u in uploads]
    seconds = sum(len(a) for a in audios) / WHISPER_RATE
    options = bench_options(s, clips)

    def run_all() -> None:
        for audio, opts in zip(audios, options):
            engine.transcribe(audio, opts)

    started, cpu_started = time.perf_counter(), time.process_time()
    for upload, opts in zip(uploads, options):
        engine.transcribe(decode_audio(upload), opts)  # decoding is part of a REST request's CPU
        if progress:
            progress(f"{model}: batch 1", 1)
    rtf = (time.perf_counter() - started) / seconds
    cpu_per_request = (time.process_time() - cpu_started) / len(clips)

    by_concurrency = {1: 1.0 / rtf}
    for c in sorted(set(concurrency) - {1}):
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=c) as pool:
            for future in [pool.submit(run_all) for _ in range(c)]:
                future.result()
        by_concurrency[c] = c * seconds / (time.perf_counter() - started)
        if progress:
            progress(f"{model}: {c} concurrent", len(clips))
    return SttResult(model, rtf, max(by_concurrency.values()), by_concurrency, seconds, len(clips), cpu_per_request)


def bench_tts(name: str, sentences: list[str], progress: Progress | None = None, settings=None) -> TtsResult:
    """Engine `name`, loaded by the server's registry (warmed up), speaking `sentences` in its default voice."""
    from voxhost.ops.settings import get_settings
    from voxhost.services import build_services

    s = (settings or get_settings()).model_copy(update={"tts_engines": [name]})
    services = build_services(s)
    engine = services.tts_engines.load(name, warm_up=True)
    jobs = [services.speech.prepare(model=name, voice=engine.default_voice, text=text, fmt="pcm")
            for text in sentences]
    compute = audio_s = 0.0
    chars = 0
    cpu_started = time.process_time()
    for job in jobs:
        started = time.perf_counter()
        # Capacity: lines cut as a busy server cuts them (no early first chunk; tts/service.py).
        samples = sum(pcm.size for pcm in engine.stream(job.steady_chunks, job.voice, job.speed))
        compute += time.perf_counter() - started
        audio_s += samples / float(engine.sample_rate)
        chars += len(job.text)
        if progress:
            progress(f"{name}: synthesis", 1)
    cpu = time.process_time() - cpu_started
    if audio_s <= 0:
        raise ValueError(f"{name} produced no audio")
    return TtsResult(name, compute / audio_s, chars / audio_s, audio_s, len(sentences), cpu / max(1, chars))


def cpu_from_capacity(stages: list[dict]) -> dict:
    """The planner's `cpu:` figures from bench/capacity.py's --json stages (the whole
    server's CPU on the simulated GPU: everything but the model): the median over the
    live stages of CPU per streamed second, and over the REST stages of CPU per request.

    Only stages measured as production runs the server count: unpinned, on all cores (a
    pinned core hides what idle thread pools burn on the others), and of the tree itself,
    not a `--baseline` beside it. Stages from before the option existed were all pinned. A
    stage in which sessions or requests failed measured less than the work: left out."""
    stages = [s for s in stages if "pinned" in s and s["pinned"] is None
              and not str(s.get("side", "")).startswith("baseline")
              and not s.get("live_errors") and not s.get("rest_errors")]
    live = [s["cpu_s_per_player_minute"] / 60.0 for s in stages if s.get("kind") == "live"]
    rest = [s["cpu_ms_per_request"] / 1000.0 for s in stages if s.get("kind") == "rest"]
    if not live and not rest:
        raise ValueError("no unpinned live or rest stages in the capacity results "
                         "(run bench/capacity.py without --pin)")
    loads = [s["load_avg"] for s in stages if s.get("kind") in ("live", "rest")]
    out: dict = {}
    if live:
        out["vcpu_per_live_stream"] = round(float(np.median(live)), 5)
    if rest:
        out["cpu_s_per_rest_request"] = round(float(np.median(rest)), 5)
    out["source"] = (f"measured: bench/capacity.py (simulated GPU, unpinned), {len(live)} live and {len(rest)} "
                     f"REST stage(s), median; load average {min(loads):.1f}-{max(loads):.1f}")
    return out


def to_plan_yaml(gpu: str, stt: list[SttResult], tts: list[TtsResult], cpu: dict | None = None) -> str:
    """The planner's input format: a `throughput` list (see voxhost.planner.inputs.Throughput)."""
    today = dt.date.today().isoformat()
    cores = os.cpu_count()
    rows = []
    for s in stt:
        conc = ", ".join(f"{c}: {v:.2f}" for c, v in sorted(s.by_concurrency.items()))
        rows.append({"model": s.model, "kind": "stt", "gpu": gpu, "rtf": round(s.rtf, 5),
                     "streams": round(s.streams, 3), "cpu_s_per_request": round(s.cpu_s_per_request, 5),
                     "source": f"measured: voxhost bench {today} on {gpu} ({cores} CPU cores), {s.clips} clip(s), "
                               f"{s.audio_seconds:.1f} s audio; audio s per s by concurrency {{{conc}}}"})
    for r in tts:
        rows.append({"model": r.model, "kind": "tts", "gpu": gpu, "rtf": round(r.rtf, 5),
                     "cpu_s_per_char": round(r.cpu_s_per_char, 7),
                     "source": f"measured: voxhost bench {today} on {gpu} ({cores} CPU cores), {r.sentences} "
                               f"sentences, {r.audio_seconds:.1f} s audio, {r.chars_per_second:.1f} chars/s"})
    header = ("# voxhost bench output: planner input (voxhost plan -i plan.yaml -i this.yaml).\n"
              f"# Device: {gpu}. Set fleet.instance_type to an instance with this GPU to use these rows.\n")
    doc: dict = {"throughput": rows}
    if cpu:
        doc["cpu"] = cpu
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def run_bench(out: Path, stt_models: list[str], clips: int, concurrency: list[int], tts_engines: list[str],
              tts_sentence_count: int, gpu: str | None = None, progress_factory=None,
              capacity: Path | None = None) -> str:
    """Everything `voxhost bench` does; returns the YAML it wrote."""
    cpu = cpu_from_capacity(json.loads(capacity.read_text())) if capacity else None
    chosen = pick_clips(clips)
    sentences = tts_sentences()[:tts_sentence_count]
    total = len(stt_models) * len(chosen) * (1 + len([c for c in set(concurrency) if c != 1])) + \
        len(tts_engines) * len(sentences)
    with (progress_factory(total) if progress_factory else _null_progress()) as progress:
        stt = [bench_stt(m, chosen, concurrency, progress) for m in stt_models]
        tts = [bench_tts(name, sentences, progress) for name in tts_engines]
    text = to_plan_yaml(gpu or device_label(), stt, tts, cpu)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


class _null_progress:
    def __enter__(self) -> Progress:
        return lambda description, steps: None

    def __exit__(self, *exc) -> None:
        return None
