"""faster-whisper (CTranslate2) engine."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.transcribe import restore_speech_timestamps
from faster_whisper.vad import VadOptions, get_speech_timestamps

from voxhost.audio.pcm import WHISPER_RATE
from voxhost.engines.stt import fw_window
from voxhost.engines.stt.base import (
    LANGUAGE_SWITCH_CONFIDENCE,
    Segment,
    SpeechToText,
    Transcript,
    TranscriptionInfo,
    TranscriptionOptions,
    Word,
    clip_options,
    collect,
    window_batch_key,
)
from voxhost.engines.stt.features import CarriedFeatureExtractor, features_for
from voxhost.engines.stt.vad import speech_only, speech_regions
from voxhost.engines.stt.whisper_batch import BatchItem, decode_batch
from voxhost.engines.stt.windows import FRAMES_PER_SECOND, WHISPER_WINDOW_S
from voxhost.engines.threads import whisper_threads

log = logging.getLogger("voxhost.stt")
HOP = WHISPER_RATE // FRAMES_PER_SECOND  # samples per mel frame

def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:  # pragma: no cover - no CUDA runtime at all
        return "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


class WhisperEngine(SpeechToText):
    """One loaded Whisper model. Thread-safe: CTranslate2 runs `num_workers`
    decodes in parallel (0: auto, engines/threads.py whisper_threads) and queues the rest."""

    n_mels: int  # always: it computes Whisper's features

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
        description: str = "",
    ):
        self.name = name
        self.description = description
        self.device = resolve_device(device)
        self.compute_type = resolve_compute_type(compute_type, self.device)
        # Decodes at once (the server's executor runs as many: services.py) and threads per decode.
        self.threads = whisper_threads(self.device, cpu_threads, num_workers)
        self.num_workers = self.threads.workers
        self.model = WhisperModel(
            model_path,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.threads.threads,
            num_workers=self.num_workers,
            download_root=download_root,
        )
        self.multilingual = bool(self.model.model.is_multilingual)
        self.n_mels = self.model.feature_extractor.mel_filters.shape[0]
        self.vad_options = VadOptions(threshold=vad_threshold)
        self.gate_threshold = vad_gate_threshold
        self.no_speech_threshold = no_speech_threshold
        self.vad_trim_over_seconds = vad_trim_over_seconds
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

    def speech_chunks(self, audio: np.ndarray) -> list[dict]:
        """Speech regions of long audio, found window by window (engines/stt/vad.py: an
        hour of audio in one pass held 2.85x the audio again while it ran)."""
        return speech_regions(audio, self.vad_options)

    def _speech(self, audio: np.ndarray, options: TranscriptionOptions) -> tuple[np.ndarray, list[dict] | None] | None:
        """The audio to decode and, if trimmed, the speech chunks to map
        timestamps back through; None when VAD finds no speech at all."""
        if not options.vad_filter:
            return audio, None
        if len(audio) <= self.vad_trim_over_seconds * WHISPER_RATE:
            # One 30 s window costs the same trimmed or not, and Silero misses
            # whispered and creaky speech, so short audio is gated, not trimmed
            # (docs/benchmarks.md, "Speech-to-text: voxhost vs raw faster-whisper").
            # The gate skips silence and noise, on which Whisper hallucinates ("Thank you.").
            return (audio, None) if get_speech_timestamps(audio, VadOptions(threshold=self.gate_threshold)) else None
        chunks = self.speech_chunks(audio)
        if not chunks:
            return None
        return speech_only(audio, chunks), chunks

    def _plan(self, audio: np.ndarray, options: TranscriptionOptions) -> _Plan:
        """The language settled before the decode where the decode depends on it:
        `shortcut_languages` (a short window or text-only only for those languages: any other
        decodes as Whisper does), `language_hint` and `detect_language_from` (a live turn's)."""
        allowed = options.shortcut_languages or frozenset()
        shortcuts = options.shortcut_languages is not None and bool(options.chunk_length or options.without_timestamps)
        if options.language is not None or not self.multilingual:
            if shortcuts and (options.language or "en") not in allowed:
                return _Plan(_without_shortcuts(options))
            return _Plan(options)
        if not shortcuts and not options.detect_language_from and not options.language_hint:
            return _Plan(options)  # faster-whisper detects, as it would on its own
        prepared = self._speech(audio, options)
        if prepared is None or prepared[1] is not None:
            return _Plan(options)  # no speech (nothing is decoded), or trimmed (detected as usual)
        model = self._model_for(options.chunk_length)
        features = features_for(audio, self.n_mels)
        if features is None:
            features = model.feature_extractor(audio)
        skip = int(options.detect_language_from * FRAMES_PER_SECOND)
        if features.shape[-1] - 1 <= skip:
            skip = 0  # nothing after the context: the context is all there is
        # In the window the decode asked for, as faster-whisper detects inside transcribe().
        with self._window(self._window_seconds(options)):
            language, probability, _ = model.detect_language(features=features[..., skip:])
        hint = options.language_hint
        if hint and language != hint and probability < LANGUAGE_SWITCH_CONFIDENCE:
            language = hint  # not sure enough to leave the language the speaker was speaking
        options = replace(options, language=language, vad_filter=False)  # the gate above heard speech
        if shortcuts and language not in allowed:
            options = _without_shortcuts(options)
        if skip and hint and language != hint:
            # The context is someone's words in another language: decode this turn alone.
            return _Plan(options, None, float(probability), skip * HOP)
        return _Plan(options, features, float(probability))

    def _window(self, seconds: int):
        short = seconds < self.model.feature_extractor.chunk_length
        return fw_window.encoder_window(seconds * FRAMES_PER_SECOND) if short else nullcontext()

    def transcribe_stream(
        self, audio: np.ndarray, options: TranscriptionOptions
    ) -> tuple[TranscriptionInfo, Iterator[Segment]]:
        return self._stream(audio, self._plan(audio, options))

    def _stream(self, audio: np.ndarray, plan: _Plan) -> tuple[TranscriptionInfo, Iterator[Segment]]:
        duration = len(audio) / WHISPER_RATE
        options, features, probability = plan.options, plan.features, plan.probability
        skipped = plan.skip_samples / WHISPER_RATE
        if plan.skip_samples:
            audio = np.asarray(audio)[plan.skip_samples:]
        prepared = self._speech(audio, options)
        if prepared is None:
            info = TranscriptionInfo(options.language or "en", 0.0, duration, 0.0)
            return info, iter(())
        audio, chunks = prepared
        model = self._model_for(options.chunk_length)
        if features is None:
            features = features_for(audio, self.n_mels)
        if features is not None:  # a live turn's (engines/stt/features.py), or computed for detection
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
            language_probability=float(fw_info.language_probability if probability is None else probability),
            duration=duration,
            speech_duration=len(audio) / WHISPER_RATE,
        )
        # Times stay those of the audio given, context included, when the context was not decoded.
        return info, (_convert(i, s, skipped) for i, s in enumerate(segments))

    def transcribe(self, audio: np.ndarray, options: TranscriptionOptions,
                   stop: threading.Event | None = None) -> Transcript:
        plan = self._plan(audio, options)
        # Segments are decoded lazily: the window must hold until the list is built.
        with self._window(self._window_seconds(plan.options)):
            info, segments = self._stream(audio, plan)
            return Transcript(info=info, segments=collect(segments, stop))

    # ---- cross-request batching ------------------------------------------
    def batch_key(self, audio: np.ndarray, options: TranscriptionOptions) -> tuple | None:
        """Requests with equal keys can share one batch; None: decode alone.

        Batchable: one window of audio, greedy-or-beam at temperature 0, and
        nothing that changes the prompt or needs the alignment pass; on a GPU,
        not beam search with timestamp tokens (slower batched, measured). The
        language may differ per item (it is a token in each item's prompt).
        """
        if len(audio) > WHISPER_WINDOW_S * WHISPER_RATE:
            return None
        if self.device == "cuda" and not options.without_timestamps and options.beam_size > 1:
            # CTranslate2 beam search with timestamp tokens runs a batch slower than its
            # clips one by one on a GPU (docs/benchmarks.md, "Speech-to-text on a GPU").
            return None
        if not self.multilingual and options.language is None:
            options = replace(options, language="en")  # an English-only model: nothing to detect first
        return window_batch_key(self.name, audio, options, self._window_seconds(options))

    def transcribe_batch(
        self, audios: list[np.ndarray], options: list[TranscriptionOptions] | TranscriptionOptions
    ) -> list[Transcript | Exception]:
        """Decode clips of equal `batch_key` together; same text as `transcribe`.

        One result per clip; an exception instance fails only its clip.
        """
        options = clip_options(audios, options)
        results: list[Transcript | Exception | None] = [None] * len(audios)
        items, index, chunks = [], [], {}
        for i, (audio, opts) in enumerate(zip(audios, options)):
            try:
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
                    language_hint=opts.language_hint,
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
        return [r if r is not None else RuntimeError("clip was not decoded") for r in results]

    def _safe_transcribe(self, audio, options) -> Transcript | Exception:
        try:
            return self.transcribe(audio, options)
        except Exception as exc:
            return exc


@dataclass
class _Plan:
    """How to decode, settled before the decode (WhisperEngine._plan)."""

    options: TranscriptionOptions
    features: np.ndarray | None = None  # computed for detection, reused by the decode
    probability: float | None = None  # of the language detected here (None: Whisper detects, or given)
    skip_samples: int = 0  # leading context left out of the decode (timestamps still count it)


def _without_shortcuts(options: TranscriptionOptions) -> TranscriptionOptions:
    """Whisper's own decode: its 30 s window, with timestamp tokens."""
    return replace(options, chunk_length=None, without_timestamps=False)


def _convert(index: int, s, offset: float = 0.0) -> Segment:
    return Segment(
        id=index,
        seek=int(s.seek),
        start=float(s.start) + offset,
        end=float(s.end) + offset,
        text=s.text,
        tokens=list(s.tokens),
        temperature=float(s.temperature or 0.0),
        avg_logprob=float(s.avg_logprob),
        compression_ratio=float(s.compression_ratio),
        no_speech_prob=float(s.no_speech_prob),
        words=[Word(float(w.start) + offset, float(w.end) + offset, w.word, float(w.probability))
               for w in (s.words or [])],
    )
