"""Consent recordings for OpenAI's custom-voice flow (POST /v1/audio/voice_consents).

A recording is accepted only if the bundled Whisper hears the consent phrase in
it: word error rate against CONSENT_PHRASE at most MAX_CONSENT_WER. The audio
itself is never stored (it is a person's voice); only the record that consent
was given (id, name, language, time) is, as JSON next to the designed voices,
so every server sharing VOXHOST_VOICES_DIR sees it, with the recording's voice
statistics (tts/matching.py: median pitch, spectral centroid and tilt).

A sample made into a voice under a consent must be the consent's speaker, as far
as those statistics can tell: median pitches within MAX_SPEAKER_PITCH_SEMITONES.
That refuses a consent read by one voice (the server's own Kokoro voices
included) used for a sample of a clearly different one, mostly across genders;
it cannot tell apart two people of similar pitch, nor a synthetic or replayed
consent made to sound like the sample's speaker (docs/architecture.md, "Custom
voices from a sample").
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

from voxhost.errors import InvalidRequest
from voxhost.stt.wer import wer
from voxhost.tts.matching import VoiceStats

# What the speaker reads aloud. English only: the check needs a phrase per language.
CONSENT_PHRASE = ("I am the owner of this voice and I consent to this server creating "
                  "a synthetic voice that sounds like me.")
CONSENT_LANGUAGES = ("en", "en-US", "en-GB")
# Whisper base's round-trip WER on clean TTS speech is a few percent (docs/benchmarks.md, "The cast:
# Kokoro's English voices and OpenAI's 13 names"); 25% leaves room
# for a real microphone and an accent, and still refuses a different sentence (WER near 100%).
MAX_CONSENT_WER = 0.25
# The widest gap in median pitch between two clean clips of one speaker in shared/eval was
# 6.4 semitones (reading calmly vs with emphasis), so 7 passes every one of them and refuses
# about 40% of pairs of different speakers (bench/consent_speaker.py, docs/benchmarks.md).
MAX_SPEAKER_PITCH_SEMITONES = 7.0
_ID = re.compile(r"^cons_[0-9a-f]{24}$")


class ConsentRefused(InvalidRequest):
    code = "consent_phrase_mismatch"


class ConsentNotFound(InvalidRequest):
    code = "consent_not_found"


class SpeakerMismatch(InvalidRequest):
    code = "consent_speaker_mismatch"


def check_same_speaker(record: dict, sample: VoiceStats) -> None:
    """Refuse a sample whose speaker is not the consent recording's, by median pitch."""
    speaker = record.get("speaker")
    if not speaker:
        raise SpeakerMismatch(f"Consent '{record['id']}' was recorded without the speaker statistics this server "
                              "compares samples with; record the consent again.", param="consent")
    consent_f0 = float(speaker["f0_hz"])
    gap = abs(12 * math.log2(sample.f0_hz / consent_f0))
    if gap > MAX_SPEAKER_PITCH_SEMITONES:
        raise SpeakerMismatch(
            f"The audio sample does not sound like the consent recording's speaker (median pitch "
            f"{sample.f0_hz:.0f} Hz against {consent_f0:.0f} Hz, {gap:.1f} semitones apart; at most "
            f"{MAX_SPEAKER_PITCH_SEMITONES:g} accepted). The person who recorded the consent must record the "
            "sample.", param="audio_sample")


def check_phrase(transcript: str) -> float:
    """The recording's WER against the phrase; raises a 400 above MAX_CONSENT_WER."""
    error = wer([CONSENT_PHRASE], [transcript])
    if error > MAX_CONSENT_WER:
        raise ConsentRefused(
            f"The consent recording does not say the consent phrase (word error rate {error:.0%}, at most "
            f"{MAX_CONSENT_WER:.0%} accepted). Read aloud: \"{CONSENT_PHRASE}\"", param="recording")
    return error


def check_language(language: str | None) -> str:
    if language not in CONSENT_LANGUAGES:
        raise InvalidRequest(f"'language' must be one of {', '.join(CONSENT_LANGUAGES)}; the consent phrase "
                             "is English.", param="language", code="invalid_value")
    return language


def check_name(name: str | None) -> str:
    if not name or not name.strip() or len(name) > 128:
        raise InvalidRequest("'name' (a label for the consent, up to 128 characters) is required.",
                             param="name", code="invalid_value")
    return name.strip()


class ConsentStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory) / "consents"

    def save(self, name: str, language: str, speaker: VoiceStats) -> dict:
        """Store the record (with the speaker's statistics) and return it as the API answers it."""
        record = {"id": f"cons_{secrets.token_hex(12)}", "object": "audio.voice_consent", "name": name,
                  "language": language, "created_at": int(time.time())}
        stored = {**record, "speaker": speaker.as_dict()}
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f)
        os.replace(tmp, self.directory / f"{record['id']}.json")  # atomic: readers never see half a file
        return record

    def get(self, consent_id: str) -> dict:
        path = self.directory / f"{consent_id}.json"
        if not isinstance(consent_id, str) or not _ID.match(consent_id) or not path.is_file():
            raise ConsentNotFound(f"No consent recording '{str(consent_id)[:40]}'; create one with "
                                  "POST /v1/audio/voice_consents.", param="consent")
        return json.loads(path.read_text())
