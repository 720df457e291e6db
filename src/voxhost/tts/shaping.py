"""Shaping a designed voice, as the audio streams.

Two stages, per request:
- `voice(pcm)`: pitch (semitones) and formant (timbre) on each synthesised
  chunk, through the WORLD vocoder (pyworld, MIT): analyse, move f0 and warp
  the spectral envelope, resynthesise. A chunk is a whole sentence with a
  fade at each end, so chunks need no state between them.
  `voice_pieces(pcm, early=True)` does the same for a response's first chunk
  in two WORLD passes, cut at its quietest 10 ms near EARLY_CUT_S and
  cross-faded there, and hands over the head before the tail is shaped: the
  first byte then waits for WORLD on ~0.3 s instead of the whole chunk
  (bench/tts_first_chunk_profile.py: WORLD is ~36 ms of CPU a second of audio).
- `effect(audio)`: the preset's effect chain on the stitched stream
  (scipy filters and convolution reverb). Every stage keeps its state across
  chunks (filter memory, the reverb tail, oscillator phase), so the output is
  the same as processing the whole line at once: no seam at chunk edges, and
  a cave's echo rings on into the next sentence. `flush()` lets the last tail
  ring out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from voxhost.tts.designs import VoiceDesign

# Part of every designed voice's phrase-cache key (tts/voices.py): bump it when the shaping's
# samples change, so no server serves audio shaped the old way.
SHAPING_VERSION = 2
FRAME_MS = 10.0  # WORLD's analysis hop: 5 ms costs twice as much for no audible gain on speech
# DIO's own decimation before its f0 search (pyworld's `speed`, 1..12); StoneMask then refines f0 on the
# full-rate signal, so the coarse search costs no accuracy. Halves DIO's time at 24 kHz.
DIO_SPEED = 3
# D4C (aperiodicity) is the costliest analysis step; aperiodicity changes slowly (voicing onsets
# span several 10 ms frames), so it is measured on every APERIODICITY_EVERY-th frame and held.
APERIODICITY_EVERY = 2
# The first chunk's cut (voice_pieces): searched in this window (s from the chunk's start), only
# where it is quiet (RMS below EARLY_CUT_QUIET of the chunk's): the two WORLD passes' pulse
# trains differ in phase, so a cut in a loud voiced frame could be heard; in a pause or a
# closure it cannot. Each pass reaches EARLY_CUT_MARGIN_S past the cut (WORLD's analysis
# windows, ~3 pitch periods, are unreliable at a signal's edge), and the passes are
# cross-faded over EARLY_CUT_BLEND_S around it.
EARLY_CUT_S = (0.2, 0.45)
EARLY_CUT_QUIET = 0.15
EARLY_CUT_MARGIN_S = 0.05
EARLY_CUT_BLEND_S = 0.01


class _Filter:
    def __init__(self, sos: np.ndarray):
        from scipy.signal import sosfilt_zi

        self.sos = sos
        self.zi = sosfilt_zi(sos) * 0.0  # start from silence

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import sosfilt

        y, self.zi = sosfilt(self.sos, x, zi=self.zi)
        return y


class _Reverb:
    """Convolution with a synthetic room (decaying noise, seeded: the same every
    time, so cached and fresh audio match), overlap-add across chunks."""

    def __init__(self, rate: int, rt60: float, wet: float, seed: int):
        n = int(rt60 * rate)
        rng = np.random.default_rng(seed)
        decay = np.exp(-6.9 * np.arange(n) / n)  # -60 dB at rt60
        ir = rng.standard_normal(n) * decay
        self.ir = ir / np.sqrt(np.sum(ir ** 2)) * wet
        self.carry = np.zeros(0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import oaconvolve

        wet = oaconvolve(x, self.ir) if x.size else np.zeros(0)
        buf = np.zeros(max(wet.size, self.carry.size, x.size))
        buf[:wet.size] += wet
        buf[:self.carry.size] += self.carry
        buf[:x.size] += x
        self.carry = buf[x.size:]
        return buf[:x.size]

    @property
    def tail(self) -> int:
        return self.ir.size


class _Modulator:
    """x * (1 - depth + depth * sin): ring modulation (robot) or tremolo (ghost)."""

    def __init__(self, rate: int, hz: float, depth: float):
        self.step = 2 * np.pi * hz / rate
        self.depth = depth
        self.phase = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = self.phase + np.arange(x.size)
        self.phase += x.size
        return x * (1 - self.depth + self.depth * np.sin(self.step * t))


class _Drive:
    def __init__(self, drive: float):
        self.drive = drive

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(self.drive * x) / np.tanh(self.drive)


@dataclass(frozen=True)
class Preset:
    pitch: float = 0.0  # added to the design's semitones
    formant: float = 0.0  # added to the design's formant shift
    monotone: bool = False  # flatten the melody (robot)
    chain: tuple = field(default=())  # (kind, args) stages, built per request and rate


PRESETS = {
    "radio": Preset(chain=(("band", (300, 3000)), ("drive", (3.0,)))),
    "helmet": Preset(chain=(("band", (150, 6000)), ("reverb", (0.12, 0.6)))),
    "cave": Preset(chain=(("reverb", (1.8, 0.45)),)),
    "robot": Preset(monotone=True, chain=(("mod", (50.0, 0.6)),)),
    "giant": Preset(pitch=-6, formant=-0.18, chain=(("low", (5000,)), ("reverb", (0.6, 0.25)))),
    "goblin": Preset(pitch=5, formant=0.2),
    # ghost's room is lighter than cave's in level: at 0.6 wet it cost 9.3% round-trip WER.
    "ghost": Preset(pitch=-2, chain=(("high", (250,)), ("mod", (5.0, 0.3)), ("reverb", (2.5, 0.35)))),
}


def _stage(kind: str, args: tuple, rate: int):
    from scipy.signal import butter

    if kind == "band":
        return _Filter(butter(4, args, btype="bandpass", fs=rate, output="sos"))
    if kind == "low":
        return _Filter(butter(4, args[0], btype="lowpass", fs=rate, output="sos"))
    if kind == "high":
        return _Filter(butter(4, args[0], btype="highpass", fs=rate, output="sos"))
    if kind == "reverb":
        return _Reverb(rate, args[0], args[1], seed=int(args[0] * 1000))
    if kind == "mod":
        return _Modulator(rate, *args)
    if kind == "drive":
        return _Drive(*args)
    raise ValueError(kind)


def chunk_f0(pcm: np.ndarray, rate: int) -> np.ndarray:
    """WORLD's f0 track (DIO, refined by StoneMask), one value per FRAME_MS from the first sample."""
    import pyworld

    x = np.asarray(pcm, np.float64)
    f0, times = pyworld.dio(x, rate, f0_floor=50.0, f0_ceil=600.0, frame_period=FRAME_MS, speed=DIO_SPEED)
    return pyworld.stonemask(x, f0, times, rate)


def world_shift(pcm: np.ndarray, rate: int, semitones: float, formant: float, monotone: bool = False,
                f0: np.ndarray | None = None) -> np.ndarray:
    """Pitch by `semitones`, formants by a factor 1 + `formant`, via WORLD. `f0`: the track
    to use (chunk_f0's frames for this piece of a longer chunk), else tracked here."""
    import pyworld

    x = np.asarray(pcm, np.float64)
    if x.size < rate // 20:  # too short to analyse: leave as is
        return pcm
    if f0 is None:
        f0 = chunk_f0(x, rate)
    else:  # a piece's share of the chunk's track (zero, unvoiced, past its end)
        frames = int(x.size * 1000 / (rate * FRAME_MS)) + 1
        f0 = np.ascontiguousarray(np.pad(f0, (0, max(0, frames - f0.size)))[:frames], np.float64)
    times = np.arange(f0.size) * (FRAME_MS / 1000)
    sp = pyworld.cheaptrick(x, f0, times, rate)
    every = APERIODICITY_EVERY
    ap = pyworld.d4c(x, np.ascontiguousarray(f0[::every]), np.ascontiguousarray(times[::every]), rate)
    ap = np.ascontiguousarray(np.repeat(ap, every, axis=0)[:f0.size])
    voiced = f0 > 0
    if monotone and voiced.any():
        f0 = np.where(voiced, np.median(f0[voiced]), 0.0)
    f0 = f0 * 2.0 ** (semitones / 12)
    if formant:
        # Envelope warp: the value at bin k moves to bin k * (1 + formant).
        bins = sp.shape[1]
        source = np.arange(bins) / (1.0 + formant)
        lo = np.clip(np.floor(source).astype(int), 0, bins - 1)
        hi = np.clip(lo + 1, 0, bins - 1)
        frac = np.clip(source - lo, 0, 1)
        sp = np.ascontiguousarray(sp[:, lo] * (1 - frac) + sp[:, hi] * frac)
    y = pyworld.synthesize(f0, sp, ap, rate, frame_period=FRAME_MS)
    out = np.zeros(x.size, np.float32)
    out[:min(x.size, y.size)] = y[:x.size]
    return np.clip(out, -1.0, 1.0)


def _early_cut(pcm: np.ndarray, rate: int) -> int | None:
    """The sample to cut a first chunk at: the start of its quietest 10 ms within EARLY_CUT_S,
    or None when that is not quiet or the chunk is too short for a cut to pay."""
    frame = int(rate * FRAME_MS / 1000)  # on WORLD's frame grid: the pieces share the chunk's f0 track
    lo, hi = (int(s * rate) // frame for s in EARLY_CUT_S)
    if pcm.size < (hi + 20) * frame:  # the tail would be under ~0.2 s: one pass is as quick
        return None
    frames = np.asarray(pcm[:hi * frame], np.float64).reshape(hi, frame)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    best = lo + int(np.argmin(rms[lo:hi]))
    if rms[best] > EARLY_CUT_QUIET * float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))):
        return None
    return best * frame


class Shaper:
    def __init__(self, design: VoiceDesign, rate: int):
        preset = PRESETS.get(design.effect or "", Preset())
        self.rate = rate
        self.semitones = design.pitch_semitones + preset.pitch
        self.formant = design.formant_shift + preset.formant
        self.monotone = preset.monotone
        self.stages = [_stage(kind, args, rate) for kind, args in preset.chain]

    @classmethod
    def for_design(cls, design: VoiceDesign | None, rate: int) -> Shaper | None:
        return cls(design, rate) if design is not None and design.shaped else None

    def voice(self, pcm: np.ndarray, f0: np.ndarray | None = None) -> np.ndarray:
        if not self.shapes_voice:
            return pcm
        return world_shift(pcm, self.rate, self.semitones, self.formant, self.monotone, f0)

    @property
    def shapes_voice(self) -> bool:
        return bool(self.semitones or self.formant or self.monotone)

    def voice_pieces(self, pcm: np.ndarray, early: bool = False) -> Iterator[tuple[np.ndarray, bool]]:
        """(piece, is_last) pairs: `voice(pcm)` as one piece, or, when `early` (a response's
        first chunk) and the chunk has a quiet moment near its start, a head shaped on its own
        and then the rest: the same length in all, cross-faded where they meet. Lazy: the rest
        is shaped only when asked for, after the head has been sent."""
        cut = _early_cut(pcm, self.rate) if early and self.shapes_voice else None
        if cut is None:
            yield self.voice(pcm), True
            return
        # One f0 track for the whole chunk (DIO is cheap; tracked per piece, a creaky phrase end
        # can come out an octave off in one piece and not in the other).
        f0 = chunk_f0(pcm, self.rate)
        if self.monotone and (f0 > 0).any():  # the chunk's median, not each piece's
            f0 = np.where(f0 > 0, np.median(f0[f0 > 0]), 0.0)
        hop = int(self.rate * FRAME_MS / 1000)
        margin, half = int(EARLY_CUT_MARGIN_S * self.rate) // hop * hop, int(EARLY_CUT_BLEND_S * self.rate) // 2
        head = self.voice(pcm[:cut + margin], f0)
        yield head[:cut - half], False
        tail = self.voice(pcm[cut - margin:], f0[(cut - margin) // hop:])
        ramp = np.sin(np.linspace(0.0, np.pi / 2, 2 * half, dtype=np.float32)) ** 2  # equal-gain raised cosine
        joined = head[cut - half:cut + half] * (1 - ramp) + tail[margin - half:margin + half] * ramp
        yield np.concatenate([joined, tail[margin + half:]]).astype(np.float32), True

    def effect(self, audio: np.ndarray) -> np.ndarray:
        if not self.stages:
            return audio
        y = np.asarray(audio, np.float64)
        for stage in self.stages:
            y = stage(y)
        return np.clip(y, -1.0, 1.0).astype(np.float32)

    def flush(self) -> np.ndarray:
        """The reverb tail after the last word, faded to silence."""
        tail = max((s.tail for s in self.stages if isinstance(s, _Reverb)), default=0)
        if not tail:
            return np.zeros(0, np.float32)
        out = self.effect(np.zeros(tail))
        n = min(out.size, int(0.05 * self.rate))
        if n:
            out[-n:] *= np.linspace(1, 0, n, dtype=np.float32)
        return out
