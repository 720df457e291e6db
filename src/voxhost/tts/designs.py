"""Designed voices: a base voice plus shaping, saved by name and shared.

A design is a JSON file per voice in VOXHOST_VOICES_DIR (an EFS path in
production). Writes are atomic (temp file, then a hard link that fails if the
name exists, so two servers creating the same name at once cannot both win);
every process rescans the directory at most once a second, so a voice created
on one server is usable on all of them within seconds, without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from voxhost.errors import InvalidRequest, echo, invalid_request

log = logging.getLogger("voxhost.tts")

EFFECTS = ("radio", "helmet", "cave", "robot", "giant", "goblin", "ghost")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"  # safe as a file name on any filesystem
REFRESH_SECONDS = 1.0


def check_name(name: str | None) -> str:
    """A voice name that is safe as a file name, or a 400 (before any costly work on the rest)."""
    if not name or not re.match(NAME_PATTERN, name):
        raise InvalidRequest(f"'name' must match {NAME_PATTERN} (lower case, digits, '_' and '-'), got "
                             f"{echo(name or '')!r}.", param="name", code="invalid_value")
    return name


class DesignNotFound(InvalidRequest):
    status_code = 404
    code = "voice_not_found"

    def __init__(self, message: str):
        super().__init__(message, param="voice_id")


class MatchRecord(BaseModel):
    """How a matched voice was chosen (tts/matching.py): the consent it was made under and the
    statistics compared. The sample's audio itself is never kept."""

    model_config = ConfigDict(extra="forbid")

    consent: str
    sample: dict[str, float]  # median F0, spectral centroid, tilt, voiced seconds of the sample
    base: dict[str, float]  # the same statistics of the chosen base voice
    distance: float  # scaled distance between the two (0: identical statistics)


class VoiceDesign(BaseModel):
    """What a studio sends to POST /v1/audio/voices (and what is stored).

    `method` says how the voice came to be: "designed" (a studio wrote the design) or
    "matched" (chosen by tts/matching.py as the nearest design to an audio sample). A
    cloning engine would add "cloned" (docs/architecture.md, "Custom voices"); no engine
    here clones, so nothing may claim it.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    base: str = Field(min_length=1, max_length=200)
    # Another base for lines in a language (ISO 639-1 -> voice), e.g. {"es": "em_alex"}: the
    # character's Spanish lines in a native Spanish voice; other languages speak with `base`.
    bases: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=dict,
                                                                                  max_length=8)
    pitch_semitones: float = Field(default=0.0, ge=-12, le=12, allow_inf_nan=False)
    formant_shift: float = Field(default=0.0, ge=-0.3, le=0.3, allow_inf_nan=False)  # -0.1: 10% lower formants
    speed: float = Field(default=1.0, ge=0.5, le=2.0, allow_inf_nan=False)
    effect: Literal["radio", "helmet", "cave", "robot", "giant", "goblin", "ghost"] | None = None
    description: str = Field(default="", max_length=500)
    method: Literal["designed", "matched"] = "designed"
    match: MatchRecord | None = None

    @field_validator("bases")
    @classmethod
    def _languages(cls, bases: dict[str, str]) -> dict[str, str]:
        from voxhost.tts.language_id import SPOKEN

        unknown = sorted(code for code in bases if code not in SPOKEN)
        if unknown:
            raise ValueError(f"'bases' takes language codes ({', '.join(SPOKEN)}), not {unknown[0][:16]!r}")
        return bases

    @classmethod
    def parse(cls, data: object) -> VoiceDesign:
        """Validated design from a client's JSON, or a 400 naming the first offending field."""
        if isinstance(data, dict) and (data.get("method", "designed") != "designed" or "match" in data):
            # Only the server measures a sample; a client cannot label its design "matched".
            raise InvalidRequest("A JSON voice design is always 'designed'; a matched voice is made from an "
                                 "audio_sample and a consent (multipart).", param="method", code="invalid_value")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_request(exc.errors()) from None  # the one pydantic -> 400 mapping

    @property
    def shaped(self) -> bool:
        return bool(self.pitch_semitones or self.formant_shift or self.effect)

    def shaping_key(self) -> str:
        """Everything but the labels and the bases: what the shaping does to the audio (the bases
        a line uses are in its voice's own fingerprint)."""
        return json.dumps(self.model_dump(exclude={"name", "description", "method", "match", "bases"}),
                          sort_keys=True)

    def describe(self) -> dict:
        exclude = {"match"} if self.match is None else set()
        if not self.bases:
            exclude.add("bases")  # as designs without per-language bases have always been described
        out = {"id": self.name, "object": "voice", **self.model_dump(exclude=exclude or None)}
        if self.method == "matched":
            out["type"] = "audio_sample"  # OpenAI's field for voices made from a sample
        return out


class DesignStore:
    def __init__(self, directory: Path, refresh_seconds: float = REFRESH_SECONDS):
        self.dir = Path(directory)
        self.refresh_seconds = refresh_seconds
        self._designs: dict[str, VoiceDesign] = {}
        self._stamps: dict[str, int] = {}  # name -> mtime_ns of the file parsed
        self._checked = 0.0
        self._lock = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.refresh_seconds:
            return
        with self._lock:
            self._checked = now
            seen: dict[str, int] = {}
            try:
                entries = list(os.scandir(self.dir))
            except FileNotFoundError:
                entries = []
            for entry in entries:
                if not entry.name.endswith(".json") or entry.name.startswith("."):
                    continue
                try:
                    seen[entry.name[:-5]] = entry.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
            for name, stamp in seen.items():
                if self._stamps.get(name) == stamp:
                    continue
                try:
                    self._designs[name] = VoiceDesign.model_validate_json(self._path(name).read_bytes())
                    self._stamps[name] = stamp
                except (OSError, ValueError) as exc:  # one bad file must not hide the others
                    log.warning("voice design %s unreadable: %s", name, exc)
            for name in set(self._designs) - set(seen):
                self._designs.pop(name, None)
                self._stamps.pop(name, None)

    def get(self, name: str) -> VoiceDesign | None:
        self.refresh()
        return self._designs.get(name)

    def all(self) -> list[VoiceDesign]:
        self.refresh()
        return sorted(self._designs.values(), key=lambda d: d.name)

    def save(self, design: VoiceDesign, *, replace: bool = False) -> VoiceDesign:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(design.name)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(design.model_dump_json(indent=2))
                handle.flush()
                os.fsync(handle.fileno())
            if replace:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)  # atomic create-if-absent, even between servers
                except FileExistsError:
                    raise InvalidRequest(f"A voice named '{design.name}' already exists.", param="name",
                                         code="duplicate_voice") from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        self.refresh(force=True)
        return design

    def delete(self, name: str) -> bool:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            return False
        self.refresh(force=True)
        return True
