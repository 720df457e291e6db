"""faster-whisper (CTranslate2) engine."""

from __future__ import annotations

import copy
import logging
import os
import threading
from contextlib import nullcontext
from dataclasses import replace
from typing import Iterator

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.transcribe import restore_speech_timestamps
from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

from voxhost.audio.pcm import WHISPER_RATE
from voxhost.engines.stt import fw_window
from voxhost.engines.stt.features import CarriedFeatureExtractor, features_for
from voxhost.engines.stt.whisper_batch import BatchItem, decode_batch
from voxhost.engines.stt.base import (
    Segment,
    Transcript,
    TranscriptionInfo,
    TranscriptionOptions,
    collect,
    window_batch_key,
    Word,
)

log = logging.getLogger("voxhost.stt")
BATCH_MAX_SECONDS = 30.0  # one Whisper window: longer audio takes the sequential path
FRAMES_PER_SECOND = 100  # mel frames

def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:  # pragma: no cover - no CUDA runtime at all
        return "cpu"


def resolve_parallelism(device: str, cpu_threads: int, num_workers: int,
                        cores: int | None = None) -> tuple[int, int]:
    """(cpu_threads, num_workers), each 0 = auto.

    Workers: one on a GPU, where the batcher gives the concurrency and each extra
    CTranslate2 replica would hold its own buffers; two on a CPU with two cores or more,
    because two single-threaded decodes at once beat one decode on two threads (2 cores,
    8 concurrent short REST clips, 3x on a loaded machine, where two OpenMP threads per
    decode wait on each other: docs/benchmarks.md "REST short clips, the model side"), and
    the executor then overlaps one clip's VAD and features with the other's decode. Threads: the cores shared among the workers (CTranslate2's own default
    gives each worker up to 4 and oversubscribes a small host)."""
    cores = cores or os.cpu_count() or 1
    workers = num_workers or (1 if device == "cuda" else min(2, cores))
    threads = cpu_threads or (0 if device == "cuda" else max(1, cores // workers))
    return threads, workers


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


class WhisperEngine:
    """One loaded Whisper model. Thread-safe: CTranslate2 runs `num_workers`
    decodes in parallel (0: auto, see resolve_parallelism) and queues the rest."""

    def __init__(
        self,
        name: str,
        model_path: str,
        *,
        device: str = "auto",
        compute_type: str = "auto",
        cpu_threads: int = 0,
        num_workers: int = 0,
        download_root: str | None = None,
        vad_threshold: float = 0.5,
        vad_gate_threshold: float = 0.5,
        no_speech_threshold: float = 0.6,
        vad_trim_over_seconds: float = 30.0,
        text_only: bool | None = None,
    ):
        self.name = name
        self.device = resolve_device(device)
        self.compute_type = resolve_compute_type(compute_type, self.device)
        # The server's executor runs this many decodes at once (api/app.py).
        cpu_threads, self.num_workers = resolve_parallelism(self.device, cpu_threads, num_workers)
        self.model = WhisperModel(
            model_path,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=cpu_threads,
            num_workers=self.num_workers,
            download_root=download_root,
        )
        self.multilingual = bool(self.model.model.is_multilingual)
        self.n_mels = self.model.feature_extractor.mel_filters.shape[0]
        self.vad_options = VadOptions(threshold=vad_threshold)
        self.gate_options = VadOptions(threshold=vad_gate_threshold)
        self.no_speech_threshold = no_speech_threshold
        self.vad_trim_over_seconds = vad_trim_over_seconds
        # Timestamp tokens cost half the GPU decode time and stop batching from
        # paying (docs/benchmarks.md); on CPU the encoder dominates, so keep them.
        self.text_only = self.device == "cuda" if text_only is None else text_only
        self._windowed: dict[int, WhisperModel] = {}
        self._windowed_lock = threading.Lock()

    def warm_up(self) -> None:
        """Run one decode so the first real request doesn't pay for lazy init."""
        tone = 0.1 * np.sin(2 * np.pi * 220 * np.arange(WHISPER_RATE) / WHISPER_RATE).astype(np.float32)
        self.transcribe(tone, TranscriptionOptions(vad_filter=False, beam_size=1, language="en"))

    def _model_for(self, chunk_length: int | None) -> WhisperModel:
        """The model with a `chunk_length`-second window (segmentation; the
        encoder input is shortened by `transcribe`, see engines/stt/fw_window.py;
        on a faster-whisper version it was not tested with, always the full window).

        faster-whisper's own `chunk_length=` argument mutates the shared
        feature extractor for good (every later call, REST included, would
        keep the short window, and concurrent calls race). Instead each window
        gets a shallow copy with its own extractor; the CTranslate2 model and
        tokenizer are shared, so a copy costs a few KB.
        """
        default = self.model.feature_extractor.chunk_length
        if not chunk_length or chunk_length >= default or not fw_window.available():
            return self.model
        with self._windowed_lock:
            model = self._windowed.get(chunk_length)
            if model is None:
                model = copy.copy(self.model)
                model.feature_extractor = FeatureExtractor(
                    **{**self.model.feat_kwargs, "chunk_length": chunk_length}
                )
                self._windowed[chunk_length] = model
            return model

    def _window_seconds(self, options: TranscriptionOptions) -> int:
        """The encoder window these options decode in."""
        return self._model_for(options.chunk_length).feature_extractor.chunk_length

    def _resolve(self, audio: np.ndarray, options: TranscriptionOptions) -> TranscriptionOptions:
        """Text-only decoding when nobody needs the timestamps, within one window
        (longer audio seeks by segment timestamps)."""
        if (self.text_only and not options.timestamps_needed and not options.without_timestamps
                and not options.word_timestamps and len(audio) <= BATCH_MAX_SECONDS * WHISPER_RATE):
            return replace(options, without_timestamps=True)
        return options

    def speech_chunks(self, audio: np.ndarray) -> list[dict]:
        return get_speech_timestamps(audio, self.vad_options)

    def _speech(self, audio: np.ndarray, options: TranscriptionOptions) -> tuple[np.ndarray, list[dict] | None] | None:
        """The audio to decode and, if trimmed, the speech chunks to map
        timestamps back through; None when VAD finds no speech at all."""
        if not options.vad_filter:
            return audio, None
        if len(audio) <= self.vad_trim_over_seconds * WHISPER_RATE:
            # One 30 s window costs the same trimmed or not, and Silero misses
            # whispered and creaky speech: on the eval set, gating only (no
            # trimming) cut voice-quality WER from 54% to 32%. The gate skips
            # silence and noise, on which Whisper hallucinates ("Thank you.").
            return (audio, None) if get_speech_timestamps(audio, self.gate_options) else None
        chunks = self.speech_chunks(audio)
        if not chunks:
            return None
        return np.concatenate(collect_chunks(audio, chunks)[0]), chunks

    def transcribe_stream(
        self, audio: np.ndarray, options: TranscriptionOptions
    ) -> tuple[TranscriptionInfo, Iterator[Segment]]:
        duration = len(audio) / WHISPER_RATE
        options = self._resolve(audio, options)
        prepared = self._speech(audio, options)
        if prepared is None:
            info = TranscriptionInfo(options.language or "en", 0.0, duration, 0.0)
            return info, iter(())
        audio, chunks = prepared
        model = self._model_for(options.chunk_length)
        features = features_for(audio, self.n_mels)
        if features is not None:  # a live turn's, computed incrementally (engines/stt/features.py)
            model = copy.copy(model)  # a few KB: the CTranslate2 model and tokenizer are shared
            model.feature_extractor = CarriedFeatureExtractor(model.feature_extractor, audio, features)
        segments, fw_info = model.transcribe(
            audio,
            task=options.task,
            language=options.language,
            initial_prompt=options.prompt or None,
            temperature=(options.temperature if options.temperature > 0 or not options.temperature_fallback
                         else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
            max_new_tokens=options.max_new_tokens,
            beam_size=options.beam_size,
            word_timestamps=options.word_timestamps,
            vad_filter=False,
            hotwords=options.hotwords or None,
            no_speech_threshold=self.no_speech_threshold,
            without_timestamps=options.without_timestamps,
        )
        if chunks:
            segments = restore_speech_timestamps(segments, chunks, WHISPER_RATE)
        info = TranscriptionInfo(
            language=fw_info.language,
            language_probability=float(fw_info.language_probability),
            duration=duration,
            speech_duration=len(audio) / WHISPER_RATE,
        )
        return info, (_convert(i, s) for i, s in enumerate(segments))

    def transcribe(self, audio: np.ndarray, options: TranscriptionOptions,
                   stop: threading.Event | None = None) -> Transcript:
        window = self._window_seconds(options)
        short = window < self.model.feature_extractor.chunk_length
        # Segments are decoded lazily: the window must hold until the list is built.
        with fw_window.encoder_window(window * FRAMES_PER_SECOND) if short else nullcontext():
            info, segments = self.transcribe_stream(audio, options)
            return Transcript(info=info, segments=collect(segments, stop))

    # ---- cross-request batching ------------------------------------------
    def batch_key(self, audio: np.ndarray, options: TranscriptionOptions) -> tuple | None:
        """Requests with equal keys can share one batch; None: decode alone.

        Batchable: one window of audio, greedy-or-beam at temperature 0, and
        nothing that changes the prompt or needs the alignment pass; on a GPU,
        not beam search with timestamp tokens (slower batched, measured). The
        language may differ per item (it is a token in each item's prompt).
        """
        if len(audio) > BATCH_MAX_SECONDS * WHISPER_RATE:
            return None
        options = self._resolve(audio, options)
        if self.device == "cuda" and not options.without_timestamps and options.beam_size > 1:
            # CTranslate2 beam search with timestamp tokens runs a batch slower than its
            # clips one by one on a GPU (H200: 0.45x at 32, docs/benchmarks.md).
            return None
        return window_batch_key(self.name, audio, options, self._window_seconds(options))

    def transcribe_batch(
        self, audios: list[np.ndarray], options: list[TranscriptionOptions] | TranscriptionOptions
    ) -> list[Transcript | Exception]:
        """Decode clips of equal `batch_key` together; same text as `transcribe`.

        One result per clip; an exception instance fails only its clip.
        """
        if isinstance(options, TranscriptionOptions):
            options = [options] * len(audios)
        results: list[Transcript | Exception | None] = [None] * len(audios)
        items, index, chunks = [], [], {}
        for i, (audio, opts) in enumerate(zip(audios, options)):
            try:
                opts = self._resolve(audio, opts)
                prepared = self._speech(audio, opts)
                if prepared is None:  # no speech: as transcribe_stream, skip the model
                    info = TranscriptionInfo(opts.language or "en", 0.0, len(audio) / WHISPER_RATE, 0.0)
                    results[i] = Transcript(info, [])
                    continue
                speech, found = prepared
                if found:
                    chunks[i] = found
                items.append(BatchItem(
                    speech, opts.task, opts.language, opts.beam_size,
                    without_timestamps=opts.without_timestamps,
                    window_frames=self._window_seconds(opts) * FRAMES_PER_SECOND,
                    max_new_tokens=opts.max_new_tokens,
                    temperature_fallback=opts.temperature_fallback,
                ))
                index.append(i)
            except Exception as exc:
                results[i] = exc
        # One CTranslate2 call per decoding setup (the scheduler only sends one).
        groups: dict[tuple, list[int]] = {}
        for n, item in enumerate(items):
            groups.setdefault(item.setup, []).append(n)
        decoded: list = [None] * len(items)
        for members in groups.values():
            for n, result in zip(members, decode_batch(self.model, [items[n] for n in members],
                                                       self.no_speech_threshold)):
                decoded[n] = result
        for i, item, result in zip(index, items, decoded):
            if result is None:  # the sequential path would do more: let it
                results[i] = self._safe_transcribe(audios[i], options[i])
                continue
            segments = result.segments
            if i in chunks:
                segments = restore_speech_timestamps(segments, chunks[i], WHISPER_RATE)
            info = TranscriptionInfo(
                language=result.language,
                language_probability=result.language_probability,
                duration=len(audios[i]) / WHISPER_RATE,
                speech_duration=len(item.audio) / WHISPER_RATE,
            )
            results[i] = Transcript(info, [_convert(n, s) for n, s in enumerate(segments)])
        return results

    def _safe_transcribe(self, audio, options) -> Transcript | Exception:
        try:
            return self.transcribe(audio, options)
        except Exception as exc:
            return exc


def _convert(index: int, s) -> Segment:
    return Segment(
        id=index,
        seek=int(s.seek),
        start=float(s.start),
        end=float(s.end),
        text=s.text,
        tokens=list(s.tokens),
        temperature=float(s.temperature or 0.0),
        avg_logprob=float(s.avg_logprob),
        compression_ratio=float(s.compression_ratio),
        no_speech_prob=float(s.no_speech_prob),
        words=[Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in (s.words or [])],
    )
