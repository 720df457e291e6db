"""Decode policy for live turns: encoder windows, repeat detection, decode
options for partials and finals, and the context cut.

The turn state machine (realtime/session.py) decides *when* to decode; this
module decides *how*, so the policy can be read, tested and benchmarked
without a session.
"""

from __future__ import annotations

import re

import numpy as np

from voxhost.audio.pcm import WHISPER_RATE
from voxhost.engines.stt.base import Transcript, TranscriptionOptions
from voxhost.engines.stt.windows import encoder_window
from voxhost.realtime.config import SessionConfig, SessionLimits

CONTEXT_S = 4.0  # audio of the previous turn decoded before a continuing turn
CONTEXT_MAX_GAP_S = 2.0  # turns closer than this are treated as one utterance
MAX_FINAL_WITH_CONTEXT_S = 28.0  # context + turn must fit one Whisper window
CONTEXT_WORD_SLACK_S = 0.25  # within the last turn's trailing silence (>= 0.5 s by default)
# Encoder windows sized to the turn (VOXHOST_REALTIME_SHORT_WINDOW). A partial is the turn plus a
# second; a final the turn plus 5 s, at least 15 s: shorter final windows made Whisper repeat or
# stop early, from 15 s the WER held, and `repeats` catches the rest by decoding again at 30 s
# (docs/benchmarks.md, "Live speech-to-text").
PARTIAL_WINDOW_PAD_S, PARTIAL_WINDOW_FLOOR_S = 1.0, 5
FINAL_WINDOW_PAD_S, FINAL_WINDOW_FLOOR_S = 5.0, 15


def window_seconds(seconds: float) -> int:
    """Encoder window for a partial of a `seconds` turn."""
    return encoder_window(seconds, pad_s=PARTIAL_WINDOW_PAD_S, floor_s=PARTIAL_WINDOW_FLOOR_S)


def final_window_seconds(seconds: float) -> int:
    """Encoder window for a final of a `seconds` turn."""
    return encoder_window(seconds, pad_s=FINAL_WINDOW_PAD_S, floor_s=FINAL_WINDOW_FLOOR_S)


_WORDS = re.compile(r"[^\w']+")


def repeats(text: str, n: int = 4) -> bool:
    """Some n words said twice in one turn: in a final from a short window, the
    sign of Whisper looping ("The narrative would be ... The narrative would be ...")."""
    words = _WORDS.sub(" ", text.lower()).split()
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        if gram in seen:
            return True
        seen.add(gram)
    return False


def turn_options(config: SessionConfig, limits: SessionLimits, seconds: float, *, final: bool,
                 full_window: bool = False, speech_heard: bool = False,
                 language_hint: str | None = None) -> TranscriptionOptions:
    """Options for decoding `seconds` of a turn: greedy and text-only for a
    partial, beam search with timestamps and fallback for a final.

    Not the STT service's defaults (stt/service.py options_from), on purpose:
    every field here is a live-decoding choice (its own beam setting,
    VOXHOST_REALTIME_FINAL_BEAM_SIZE; the VAD gate unless the session heard speech; windows sized to the turn),
    and taking REST's stt_beam_size or stt_vad_filter would change live results.
    The language was already mapped to Whisper's code when the session was updated. Without one,
    each turn is detected on its own, with `language_hint` (the language the session's last
    turn was in) kept unless Whisper is sure of another: players may switch, but one short
    turn heard alone is a poor guess (engines/stt/base.py LANGUAGE_SWITCH_CONFIDENCE)."""
    window = None
    if limits.short_window and not full_window:
        window = final_window_seconds(seconds) if final else window_seconds(seconds)
    # The previous turn's text is not used as a prompt: tried, it made
    # Whisper repeat it ("word, word" -> "word, word, word, word or word").
    return TranscriptionOptions(
        language=config.language,
        language_hint=language_hint if config.language is None else None,
        prompt=config.prompt,
        hotwords=config.hotwords,
        beam_size=limits.final_beam_size if final else 1,
        # Whisper decodes more accurately in its timestamp mode (trained so): text-only
        # finals lost words on the eval set. Partials trade it for speed.
        without_timestamps=not final,
        # Speech runs ~3 tokens/s; anything far beyond is a repetition loop.
        max_new_tokens=int(16 + 8 * seconds),
        temperature_fallback=final,
        # Whisper encodes 30 s whatever the turn's length; a window sized to the turn
        # makes partials and finals cheaper on CPU (docs/benchmarks.md, "Live speech-to-text").
        chunk_length=window,
        # The gate: a noise-only turn returns "" instead of a hallucinated "Thank you.".
        # Not needed when the session's VAD already heard speech in the turn.
        vad_filter=not speech_heard,
    )


def fits_with_context(context: np.ndarray | None, audio: np.ndarray) -> bool:
    """Whether `context` (the previous turn's tail) can be decoded before `audio` in one window."""
    return context is not None and context.size + audio.size <= MAX_FINAL_WITH_CONTEXT_S * WHISPER_RATE


def words_after_context(transcript: Transcript, context_seconds: float) -> str:
    """This turn's words from a decode of context + turn.

    The context ends with the last turn's trailing silence (silence_duration_ms),
    so its words end well before `context_seconds`; Whisper's word times run early,
    so a word ending past the middle of that silence is this turn's."""
    cut = context_seconds - CONTEXT_WORD_SLACK_S
    words = [w.word for s in transcript.segments for w in s.words if w.end > cut]
    return "".join(words).strip()
