"""The one source of truth for configuration: env vars `VOXHOST_*`.

Every field is documented in the README's config table; keep them in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
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
    # Every entry is loaded at start. The default is whisper-base alone, as in the
    # images: whisper-1, the realtime default and every default route use it, and
    # tiny.en, used only when a client names it, cost 68 MB more (issue 12's memory goal).
    stt_models: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["whisper-base"])
    stt_device: Literal["auto", "cpu", "cuda"] = "auto"
    stt_compute_type: str = "auto"  # auto: float16 on GPU, int8 on CPU
    # Parallel CTranslate2 workers per model and threads per worker; 0 = auto: one worker on
    # a GPU; on a CPU two workers sharing the cores (2 cores: 1 thread each; issue 12,
    # engines/stt/whisper.py resolve_parallelism, docs/benchmarks.md).
    stt_cpu_threads: int = 0
    stt_num_workers: int = 0
    stt_beam_size: int = 5
    stt_vad_filter: bool = True  # gate silence before Whisper: no hallucinated "Thank you."
    stt_vad_threshold: float = 0.5  # OpenAI's default; 0.9 clips speech
    # Audio up to stt_vad_trim_over_seconds returns empty text without a decode
    # unless some 32 ms frame reaches this speech probability. Lowering it lets
    # whispers through (the eval set's quietest peaks at 0.31) but also tonal
    # game sounds (a siren-like sweep scores 0.34 and base hallucinates on it).
    stt_vad_gate_threshold: float = 0.5
    stt_no_speech_threshold: float = 0.6
    # Audio longer than this has non-speech removed before decoding (saves
    # compute, avoids hallucinations in long gaps); shorter audio is only gated.
    stt_vad_trim_over_seconds: float = 30.0
    stt_download_root: Path | None = None  # where hub ids are downloaded (EFS in production)
    # json/text responses of at most one 30 s window decode without timestamp tokens.
    # None (auto): on for GPU engines (H200: 2x faster alone, batches 3x; same WER),
    # off on CPU. docs/benchmarks.md.
    stt_text_only: bool | None = None

    # --- text-to-speech ---
    # Engines to load, first is the default. `piper` needs the GPL extra
    # (pip install voxhost[piper]); when it is missing it is skipped with a warning.
    tts_engines: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["hibari", "kokoro", "piper"])
    # OpenAI model names -> engine. Engine names work as model names too.
    tts_model_aliases: dict[str, str] = Field(
        default_factory=lambda: {"tts-1": "hibari", "tts-1-hd": "kokoro", "gpt-4o-mini-tts": "hibari"}
    )
    # OpenAI voice names -> voice per engine (JSON in VOXHOST_TTS_VOICE_MAP). Entries
    # here replace the built-in table per engine/voice (voxhost.engines.tts.voices).
    tts_voice_map: dict[str, dict[str, str]] = Field(default_factory=dict)
    tts_concurrency: int = 2  # syntheses running at once (one worker thread each)
    tts_max_queue: int = 32  # waiting syntheses beyond that; more -> 429
    tts_threads: int = 1  # onnxruntime intra-op threads per engine
    # --- Kokoro first audio (issue 10): the first chunk is at most this many words
    # (a clause or phrase edge within them), so the first byte comes sooner; 0 = whole first clause.
    tts_first_chunk_words: int = Field(default=4, ge=0)
    # Phrase cache: synthesised NPC lines are game content, not player data,
    # so it is on by default. Disk tier: tts_cache_path, else cache_dir/tts.
    tts_cache_enabled: bool = True
    tts_cache_path: Path | None = None
    tts_cache_memory_bytes: int = 64 * 1024 * 1024
    tts_cache_disk_bytes: int = 1024 * 1024 * 1024

    # --- designed voices (issue 10): POST /v1/audio/voices, `voxhost voices` ---
    # One JSON file per voice; servers sharing the directory (EFS) see each
    # other's voices within a second. None: cache_dir/voices.
    voices_dir: Path | None = None

    # --- limits (all request/session limits live here) ---
    max_upload_bytes: int = 25 * 1024 * 1024
    max_audio_seconds: float = 3600.0
    max_text_chars: int = 4096  # TTS input length (OpenAI's limit)
    max_session_seconds: float = 3600.0  # one live session's length
    max_live_sessions: int = 16  # live sessions per process; more are refused with 1013
    max_sessions_per_key: int = 0  # concurrent live sessions per API key; 0: no cap

    # --- serving: scheduler, admission control, drain ---
    # Batch compatible short requests across clients. None (auto): on for GPU
    # engines, off on CPU, where a batch costs as much as its parts (measured,
    # docs/benchmarks.md) and only delays the first request in it.
    stt_batching: bool | None = None
    stt_max_batch_size: int = 8  # most requests in one CTranslate2 batch
    stt_max_batch_wait_ms: float = 10.0  # how long the oldest job waits for company
    queue_max_per_lane: int = 64  # queued jobs per engine and lane; more get 429
    request_deadline_s: float = 120.0  # REST job still queued after this: 429, not a late answer
    bulk_threshold_s: float = 60.0  # REST audio longer than this goes to the bulk lane
    drain_timeout_s: float = 30.0  # SIGTERM: time for in-flight work (ECS stopTimeout)

    # --- deploy (issue 11): HTTP keep-alive behind a load balancer ---
    # Idle keep-alive connections are closed after this long. Behind an ALB it must
    # exceed the ALB's idle timeout, or the server closes a connection the ALB is
    # about to reuse and the client gets a 502 (uvicorn's own default is 5 s).
    keepalive_timeout_s: int = Field(default=5, ge=1)

    # --- deploy (issue 11): drain when the ALB starts deregistering this task ---
    # ECS sends SIGTERM only after the ALB's deregistration delay, when the ALB
    # has already closed the live sessions; with this set (the stack sets it),
    # the server polls the target group for its own target and drains as soon
    # as it reads `draining` (ops/target_drain.py; needs the `aws` extra).
    drain_target_group_arn: str = ""  # empty: off
    drain_poll_interval_s: float = Field(default=5.0, gt=0)

    # --- issue 12: worker processes (api/supervisor.py) ---
    # Server processes sharing one port, each with its own engines, scheduler and
    # limits: max_live_sessions, queue_max_per_lane and tts_max_queue hold per worker.
    # /metrics sums all workers. Pays only when one event loop's CPU is the limit.
    workers: int = Field(default=1, ge=1)

    # --- cost and metrics ---
    instance_type: str = "g4dn.xlarge"  # prices in ops/cost.py
    instance_price_per_hour: float | None = None  # overrides the table (spot, savings plans)
    emf_enabled: bool = False  # CloudWatch EMF lines on stdout
    emf_namespace: str = "voxhost"
    emf_service_name: str = "voxhost"  # the ServiceName dimension (autoscaling alarms)
    emf_interval_s: float = 60.0

    # --- security ---
    # API keys as "name:sha256hex" (comma-separated) and/or a JSON/YAML file of
    # {name, sha256, rpm, audio_minutes_per_day}. None configured: open server.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_keys_file: Path | None = None
    metrics_api_key_sha256: str | None = None  # /metrics' own key (sha256 hex)
    # --- hardening (issue 14): browser origins ---
    # Origins (scheme://host[:port]) whose pages may call the API: CORS on HTTP,
    # the Origin check on WebSockets. Empty (default): no cross-origin access.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Keep audio/text content in logs: "none" (default) never logs content.
    retain_content: Literal["none", "logs"] = "none"

    # --- live speech-to-text: WS /v1/realtime (realtime/) ---
    # (session count and length are limits: max_live_sessions, max_session_seconds)
    realtime_idle_timeout_seconds: float = 600.0  # no client event for this long: clean close
    realtime_max_turn_seconds: float = 30.0  # longer turns are committed at this length
    realtime_max_event_bytes: int = 4 * 1024 * 1024  # one WebSocket message (JSON or binary)
    realtime_max_pending_turns: int = 4  # per session, waiting for their final; more fail fast
    realtime_max_final_wait_seconds: float = 10.0  # a final not started by then fails (server behind)
    realtime_partial_interval_ms: int = 500  # new audio between partial decodes; 0: no partials
    realtime_final_beam_size: int = 5  # beam for a turn's final decode (partials are greedy)
    realtime_short_window: bool = True  # encode a window sized to the turn, not 30 s (finals: >= 15 s)
    # Start a turn's final decode this far into a pause (if a decoder is free), before
    # silence_duration_ms has passed; kept if the pause ends the turn. 0: off.
    realtime_speculative_final_ms: int = 200

    # --- issue 12: simulated-gpu STT engine (capacity benchmarks only, never a default) ---
    # With VOXHOST_STT_MODELS=simulated-gpu every decode runs the real VAD gate and
    # mel features, then sleeps this long per model call plus per item in a batch.
    stt_simulated_call_ms: float = 30.0
    stt_simulated_item_ms: float = 10.0
    stt_simulated_text: str = "simulated transcript"
    # REST json/text clips up to 30 s decode text-only in an encoder window sized to the clip
    # (clip + 5 s, >= 25 s) instead of 30 s. None (auto): on for CPU engines (0.71x the decode
    # time, WER 8.42% vs 8.79% on the 69 short English clips), off on a GPU. stt/service.py.
    stt_rest_short_window: bool | None = None

    # --- issue 12: TTS on the GPU (engines/onnx_device.py) ---
    # onnxruntime provider for Kokoro and piper: auto = CUDA when this onnxruntime has it
    # (the 'gpu' extra, CUDA image only), else the CPU; cuda falls back to the CPU with a warning.
    tts_device: Literal["auto", "cpu", "cuda"] = "auto"

    # --- migration gateway (issue 13, gateway/): share traffic with a cloud API ---
    # None configured (the default): nothing ever leaves this server. With an
    # upstream, player audio and text are forwarded to it per the shares below.
    upstream_url: str | None = None  # an OpenAI-compatible API base, e.g. https://api.openai.com/v1
    upstream_api_key: SecretStr | None = None  # never logged or echoed (SecretStr hides it in reprs)
    # Model name sent upstream per route (transcriptions, translations, speech);
    # a route not listed keeps the client's model name.
    upstream_models: dict[str, str] = Field(
        default_factory=lambda: {"transcriptions": "whisper-1", "translations": "whisper-1", "speech": "tts-1"})
    upstream_timeout_s: float = 60.0  # whole upstream request (STT of a long file waits this long)
    upstream_connect_timeout_s: float = 5.0
    upstream_max_connections: int = 100  # pooled connections to the upstream
    # Share of players served here (0-1); the rest go upstream. Sticky per player.
    route_local_share: float = 1.0
    # Per-route override, JSON: {"transcriptions": 0.5, "speech": 1.0, "realtime": 0.1}.
    route_local_shares: dict[str, float] = Field(default_factory=dict)
    # JSON file {"local_share": .., "local_shares": {..}, "shadow_share": ..} re-read when it
    # changes: shares move without a restart (protect it with file permissions).
    route_shares_file: Path | None = None
    route_fallback: bool | None = None  # None: on whenever an upstream is configured
    route_burst_queue: int = 0  # local queue depth above which new requests go upstream; 0: no burst
    route_shadow_share: float = 0.0  # share of locally served requests also sent upstream to compare
    # Shadow comparisons (metrics only: no audio, no text) appended as JSON lines; None: metrics only.
    route_shadow_log: Path | None = None

    # --- storage ---
    cache_dir: Path = Field(default_factory=_default_cache_dir)

    @field_validator("stt_models", "tts_engines", "api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def designs_dir(self) -> Path:
        return self.voices_dir or self.cache_dir / "voices"

    @property
    def tts_cache_dir(self) -> Path:
        return self.tts_cache_path or self.cache_dir / "tts"


@lru_cache
def get_settings() -> Settings:
    return Settings()
