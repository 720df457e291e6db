"""Decode several clips in one CTranslate2 batch, matching the sequential path.

For clips of at most one 30 s window, WhisperModel.transcribe does: features
-> (detect language) -> encode -> one beam-search generate -> split by
timestamps; and only falls back to other temperatures or further windows
when the result looks wrong. This module does the same steps for N clips at
once (one `encode` and one `generate` for the batch, like faster-whisper's
BatchedInferencePipeline), with the sequential path's decoding options, so
the text is the same. Items whose result would have made the sequential path
do more (temperature fallback, a second window) are reported as `None` and
the caller decodes them sequentially: correctness first, batching second.

Text-only items (`without_timestamps`) are the ones that pay on a GPU: with
timestamp tokens and beam search, CTranslate2 decodes a batch no faster than
one clip at a time; without them a batch pays (docs/benchmarks.md, "Speech-to-text
on a GPU").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment as FwSegment
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

from voxhost.engines.stt.base import LANGUAGE_SWITCH_CONFIDENCE
from voxhost.engines.stt.features import features_for

# WhisperModel.transcribe defaults (the sequential path uses them too).
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
MAX_INITIAL_TIMESTAMP = 1.0


@dataclass
class BatchItem:
    audio: np.ndarray  # 16 kHz float32, speech only (after VAD), <= 30 s
    task: str
    language: str | None
    beam_size: int
    # Equal across one batch (they are part of the engine's batch key):
    without_timestamps: bool = False
    window_frames: int | None = None  # encoder input (short live windows); None: Whisper's 3000
    max_new_tokens: int | None = None
    temperature_fallback: bool = True
    language_hint: str | None = None  # kept unless another language is detected surely (base.py)

    @property
    def setup(self) -> tuple:
        """What must be equal across one batch (one CTranslate2 call)."""
        return (self.beam_size, self.without_timestamps, self.window_frames, self.max_new_tokens,
                self.temperature_fallback)


@dataclass
class BatchResult:
    language: str
    language_probability: float
    segments: list[FwSegment]  # timestamps relative to `audio`


def decode_batch(model: WhisperModel, items: list[BatchItem], no_speech_threshold: float) -> list[BatchResult | None]:
    """One result per item; None where the sequential path must decode it instead."""
    fe = model.feature_extractor
    first = items[0]
    window = first.window_frames or fe.nb_max_frames
    carried = [features_for(item.audio, fe.mel_filters.shape[0]) for item in items]  # live turns'
    features = [fe(item.audio) if c is None else c for item, c in zip(items, carried)]
    content = [f.shape[-1] - 1 for f in features]
    out: list[BatchResult | None] = [None] * len(items)
    usable = [i for i, frames in enumerate(content) if 0 < frames <= window]
    if not usable:
        return out

    languages = _languages(model, items, features, usable)
    segments = np.stack([pad_or_trim(features[i][:, : content[i]], window) for i in usable])
    encoder_output = model.encode(segments)

    tokenizers = [
        Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task=items[i].task, language=languages[i][0])
        for i in usable
    ]
    prompts = [model.get_prompt(tok, [], without_timestamps=first.without_timestamps) for tok in tokenizers]
    max_length = model.max_length
    if first.max_new_tokens is not None:
        max_length = min(max_length, len(prompts[0]) + first.max_new_tokens)
    results = model.model.generate(
        encoder_output,
        prompts,
        beam_size=first.beam_size,
        patience=1.0,
        length_penalty=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        max_length=max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizers[0], [-1]),
        max_initial_timestamp_index=int(round(MAX_INITIAL_TIMESTAMP / model.time_precision)),
    )
    for i, tok, result in zip(usable, tokenizers, results):
        out[i] = _finish(model, tok, result, content[i], languages[i], no_speech_threshold,
                         fallback=first.temperature_fallback)
    return out


def _languages(model: WhisperModel, items, features, usable) -> dict[int, tuple[str, float]]:
    """Given languages as is; the rest detected as WhisperModel.detect_language
    does (first 30 s window of the features), in one batch."""
    langs: dict[int, tuple[str, float]] = {}
    detect = []
    for i in usable:
        if items[i].language:
            langs[i] = (items[i].language, 1.0)
        elif not model.model.is_multilingual:
            langs[i] = ("en", 1.0)
        else:
            detect.append(i)
    if detect:
        nb = model.feature_extractor.nb_max_frames
        batch = np.stack([pad_or_trim(features[i][..., :nb]) for i in detect])
        for i, ranked in zip(detect, model.model.detect_language(model.encode(batch))):
            token, prob = ranked[0]
            language, hint = token[2:-2], items[i].language_hint
            if hint and language != hint and prob < LANGUAGE_SWITCH_CONFIDENCE:
                language = hint  # as the sequential path (WhisperEngine._plan)
            langs[i] = (language, float(prob))
    return langs


def _finish(model, tokenizer, result, content_frames, language, no_speech_threshold, *,
            fallback: bool = True) -> BatchResult | None:
    tokens = result.sequences_ids[0]
    seq_len = len(tokens)
    avg_logprob = result.scores[0] * seq_len / (seq_len + 1)
    compression_ratio = get_compression_ratio(tokenizer.decode(tokens).strip())
    silence = result.no_speech_prob > no_speech_threshold and avg_logprob < LOG_PROB_THRESHOLD
    if fallback and not silence and (compression_ratio > COMPRESSION_RATIO_THRESHOLD
                                     or avg_logprob < LOG_PROB_THRESHOLD):
        return None  # the sequential path would retry at a higher temperature
    if result.no_speech_prob > no_speech_threshold and not avg_logprob > LOG_PROB_THRESHOLD:
        return BatchResult(language[0], language[1], [])  # no speech: the window is skipped
    segment_size = content_frames
    parts, seek, _ = model._split_segments_by_timestamps(
        tokenizer=tokenizer,
        tokens=tokens,
        time_offset=0.0,
        segment_size=segment_size,
        segment_duration=segment_size * model.feature_extractor.time_per_frame,
        seek=0,
    )
    if seek < content_frames:
        return None  # the sequential path would decode a second window
    segments: list[FwSegment] = []
    for part in parts:
        text = tokenizer.decode(part["tokens"])
        if part["start"] == part["end"] or not text.strip():
            continue
        segments.append(FwSegment(
            id=len(segments), seek=0, start=part["start"], end=part["end"], text=text, tokens=part["tokens"],
            avg_logprob=avg_logprob, compression_ratio=compression_ratio,
            no_speech_prob=result.no_speech_prob, words=None, temperature=0.0,
        ))
    return BatchResult(language[0], language[1], segments)
