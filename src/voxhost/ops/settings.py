"""The one source of truth for configuration: env vars `VOXHOST_*`.

Every field is documented in the README's config table; keep them in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic import field_validator


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "voxhost"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXHOST_", env_file=None, extra="ignore")

    # --- server ---
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    # --- speech-to-text ---
    # First entry is the default (`whisper-1` maps to it). Bundled names
    # (whisper-base, whisper-tiny.en), any faster-whisper id (large-v3,
    # large-v3-turbo, distil-large-v3) or a local CTranslate2 directory.
    stt_models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["whisper-base", "whisper-tiny.en"]
    )
    stt_device: Literal["auto", "cpu", "cuda"] = "auto"
    stt_compute_type: str = "auto"  # auto: float16 on GPU, int8 on CPU
    stt_cpu_threads: int = 0  # 0: let CTranslate2 decide
    stt_num_workers: int = 1  # parallel CTranslate2 workers per model
    stt_beam_size: int = 5
    stt_vad_filter: bool = True  # gate silence before Whisper: no hallucinated "Thank you."
    stt_vad_threshold: float = 0.5  # OpenAI's default; 0.9 clips speech
    stt_no_speech_threshold: float = 0.6
    stt_download_root: Path | None = None  # where hub ids are downloaded (EFS in production)

    # --- limits ---
    max_upload_bytes: int = 25 * 1024 * 1024
    max_audio_seconds: float = 3600.0

    # --- live speech-to-text: WS /v1/realtime (realtime/) ---
    realtime_max_sessions: int = 8  # concurrent sessions; the next is refused with close code 1013
    realtime_max_session_seconds: float = 3600.0  # then `session_expired` and a clean close
    realtime_idle_timeout_seconds: float = 600.0  # no client event for this long: clean close
    realtime_max_turn_seconds: float = 30.0  # longer turns are committed at this length
    realtime_max_event_bytes: int = 4 * 1024 * 1024  # one WebSocket message (JSON or binary)
    realtime_max_pending_turns: int = 4  # per session, waiting for their final; more fail fast
    realtime_max_final_wait_seconds: float = 10.0  # a final not started by then fails (server behind)
    realtime_partial_interval_ms: int = 500  # new audio between partial decodes; 0: no partials
    realtime_final_beam_size: int = 5  # beam for a turn's final decode (partials are greedy)
    realtime_short_window: bool = True  # partials: encode a window sized to the turn, not 30 s

    # --- auth ---
    # Accepted API keys (comma separated). Empty: the server is open.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- storage ---
    cache_dir: Path = Field(default_factory=_default_cache_dir)

    @field_validator("stt_models", "api_keys", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"


@lru_cache
def get_settings() -> Settings:
    return Settings()
