"""The one source of truth for configuration: env vars `VOXHOST_*`.

Grouped by subsystem, in the order of the README's config table, which documents
every field (tests/test_readme_config.py keeps them in step). Why a default is what
it is lives in docs/benchmarks.md, which the README links: figures copied here drift.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger("voxhost")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "voxhost"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXHOST_", env_file=None, extra="ignore")

    # --- server process: address, worker processes (api/supervisor.py), keep-alive, drain ---
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # TLS on `port` (https and wss; ops/tls.py). Production terminates TLS on the ALB instead.
    tls_certfile: Path | None = None  # PEM certificate chain
    tls_keyfile: Path | None = None  # its PEM private key
    # Development: a local CA and a localhost certificate, made once under cache_dir/tls.
    tls_dev: bool = False
    # Server processes sharing one port, each with its own engines, scheduler and
    # limits: max_live_sessions, queue_max_per_lane and tts_max_queue hold per worker.
    workers: int = Field(default=1, ge=1)
    # Idle keep-alive connections are closed after this long. Behind a load balancer it must
    # exceed the balancer's idle timeout, or the server closes a connection the balancer is
    # about to reuse and the client gets a 502 (uvicorn's own default is 5 s).
    keepalive_timeout_s: int = Field(default=5, ge=1)
    drain_timeout_s: float = 30.0  # SIGTERM: time for in-flight work (ECS stopTimeout)
    # ECS sends SIGTERM only after the ALB's deregistration delay, when the ALB has already
    # closed the live sessions; with this set, the server polls the target group for its own
    # target and drains as soon as it reads `draining` (ops/target_drain.py; the `aws` extra).
    drain_target_group_arn: str = ""  # empty: off
    drain_poll_interval_s: float = Field(default=5.0, gt=0)
    # Before a drain refuses anything, /ready answers 503 and the agent 0% for this long
    # while new work is still served, so a balancer that learns by polling (HAProxy's
    # health and agent checks, Kubernetes) stops sending here first: no request meets a
    # refusal. Counts against the stop timeout. 0: refuse at once (ECS: the ALB
    # deregistered the task before SIGTERM, and the target-drain watcher saw it).
    drain_grace_s: float = Field(default=0.0, ge=0)
    # HAProxy agent-check port (api/lb_agent.py): '100%' while this server takes new live
    # sessions, '0%' while it is full or leaving. 0: off.
    lb_agent_port: int = Field(default=0, ge=0, le=65535)
    # On ECS (the agent sets ECS_AGENT_URI) a task holding live sessions asks its agent for
    # scale-in protection for this many minutes, refreshed at a third of it while sessions
    # last, released when they end or the drain starts (ops/task_protection.py). 0: off.
    task_protection_minutes: int = Field(default=30, ge=0, le=2880)

    # --- security: API keys, browser origins, content in logs ---
    # API keys as "name:sha256hex" (comma-separated) and/or a JSON/YAML file of
    # {name, sha256, rpm, audio_minutes_per_day}. None configured: open server.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_keys_file: Path | None = None
    metrics_api_key_sha256: str | None = None  # /metrics' own key (sha256 hex)
    # Origins (scheme://host[:port]) whose pages may call the API: CORS on HTTP,
    # the Origin check on WebSockets. Empty (default): no cross-origin access.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    retain_content: Literal["none", "logs"] = "none"  # "none" never logs audio or text

    # --- request and session limits (every size and length limit lives here) ---
    max_upload_bytes: int = 25 * 1024 * 1024
    max_audio_seconds: float = 3600.0
    max_text_chars: int = 4096  # TTS input length (OpenAI's limit)
    max_session_seconds: float = 3600.0  # one live session's length
    # Live sessions per process; more are refused with 1013. None (unset): what this host's cores
    # take at the measured CPU per live player (ops/capacity.py); 0: no live sessions.
    max_live_sessions: int | None = Field(default=None, ge=0)
    max_sessions_per_key: int = 0  # concurrent live sessions per API key; 0: no cap

    # --- scheduler: lanes, queues, deadlines, admission by expected wait and memory (scheduler/) ---
    queue_max_per_lane: int = 64  # queued jobs per engine and lane; more get 429
    request_deadline_s: float = 120.0  # REST job still queued after this: 429, not a late answer
    bulk_threshold_s: float = 60.0  # REST audio longer than this goes to the bulk lane
    # Admission by expected wait (scheduler/expected_wait.py): a REST request whose expected queue
    # wait, from the measured service time of the work ahead, is past its budget gets a 429 at
    # once, Retry-After saying that wait. Budgets leave the rest of the design targets (STT < 2 s,
    # TTS < 3 s) to the work itself: a short clip's decode, a line's first sentence. 0: no budget
    # (admitted up to queue_max_per_lane / tts_max_queue). docs/architecture.md, "Admission".
    stt_wait_budget_s: float = Field(default=1.0, ge=0)
    tts_wait_budget_s: float = Field(default=1.5, ge=0)
    # Long files (the bulk lane) wait behind players' clips; their callers expect that, within
    # request_deadline_s. Checked once the file's length is known.
    bulk_wait_budget_s: float = Field(default=60.0, ge=0)
    # Decoded audio (16 kHz float32: 230 MB per hour) held by REST requests while they decode,
    # wait and are transcribed. Past it: 429, or 413 for one upload alone; refused before
    # decoding where the container declares its length. 0: no budget. scheduler/audio_memory.py.
    audio_memory_budget_mb: int = Field(default=1024, ge=0)

    # --- speech-to-text engines (engines/stt/) ---
    # First entry is the default (`whisper-1` maps to it). Bundled names
    # (whisper-base, whisper-tiny.en), any faster-whisper id (large-v3,
    # large-v3-turbo, distil-large-v3), a local CTranslate2 directory, or a plugin's
    # name. Every entry is loaded at start; each extra model costs its memory.
    stt_models: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["whisper-base"])
    stt_device: Literal["auto", "cpu", "cuda"] = "auto"
    stt_compute_type: str = "auto"  # auto: float16 on GPU, int8 on CPU
    # Parallel CTranslate2 workers per model and threads per worker; 0 = auto: one worker on
    # a GPU; on a CPU two workers, each with a thread per core, so a lone request decodes on
    # every core and concurrent ones share them (engines/threads.py whisper_threads).
    stt_cpu_threads: int = 0
    stt_num_workers: int = 0
    stt_download_root: Path | None = None  # where hub ids are downloaded (EFS in production)
    stt_vad_threshold: float = 0.5  # Silero's speech threshold when trimming long audio (OpenAI's default)
    # Audio up to stt_vad_trim_over_seconds returns empty text without a decode unless
    # some 32 ms frame reaches this speech probability (the no-speech gate).
    stt_vad_gate_threshold: float = 0.5
    stt_no_speech_threshold: float = 0.6
    # Audio longer than this has non-speech removed before decoding; shorter audio is only gated.
    stt_vad_trim_over_seconds: float = 30.0
    # The `simulated-gpu` engine (capacity benchmarks only, never a default): the real VAD
    # gate and mel features, then a sleep this long per model call plus per item in a batch.
    stt_simulated_call_ms: float = 30.0
    stt_simulated_item_ms: float = 10.0
    stt_simulated_text: str = "simulated transcript"

    # --- speech-to-text requests: defaults, REST decode policy, batching (stt/, scheduler/stt.py) ---
    stt_beam_size: int = 5
    stt_vad_filter: bool = True  # gate silence before Whisper: no hallucinated "Thank you."
    # REST json/text clips of one encoder window or less decode without timestamp tokens, on a
    # CPU engine in a window sized to the clip (stt/service.py request_options).
    stt_rest_text_only: bool = True
    # Deprecated spellings of stt_rest_text_only (read, logged, folded into it; see below).
    stt_text_only: bool | None = None
    stt_rest_short_window: bool | None = None
    # Batch compatible short requests across clients. None (auto): on for GPU
    # engines, off on CPU, where a batch costs as much as its parts.
    stt_batching: bool | None = None
    stt_max_batch_size: int = 8  # most requests in one CTranslate2 batch
    stt_max_batch_wait_ms: float = 10.0  # how long the oldest job waits for company

    # --- live speech-to-text: WS /v1/realtime (realtime/) ---
    # (session count and length are limits above: max_live_sessions, max_session_seconds)
    realtime_idle_timeout_seconds: float = 600.0  # no client event for this long: clean close
    realtime_max_turn_seconds: float = 30.0  # longer turns are committed at this length
    realtime_max_event_bytes: int = 4 * 1024 * 1024  # one WebSocket message (JSON or binary)
    realtime_max_pending_turns: int = 4  # per session, waiting for their final; more fail fast
    realtime_max_final_wait_seconds: float = 10.0  # a final not started by then fails (server behind)
    realtime_partial_interval_ms: int = 500  # new audio between partial decodes; 0: no partials
    realtime_final_beam_size: int = 5  # beam for a turn's final decode (partials are greedy)
    realtime_short_window: bool = True  # encode a window sized to the turn (realtime/decoding.py)
    # Start a turn's final decode this far into a pause (if a decoder is free), before
    # silence_duration_ms has passed; kept if the pause ends the turn. 0: off.
    realtime_speculative_final_ms: int = 200

    # --- text-to-speech engines and voices (engines/tts/, tts/voices.py) ---
    # Engines to load, first is the default. `piper` needs the GPL extra
    # (pip install voxhost[piper]); when it is missing it is skipped with a warning.
    tts_engines: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["hibari", "kokoro", "piper"])
    # OpenAI model names -> engine. Engine names work as model names too.
    tts_model_aliases: dict[str, str] = Field(
        default_factory=lambda: {"tts-1": "hibari", "tts-1-hd": "kokoro", "gpt-4o-mini-tts": "hibari"}
    )
    # OpenAI voice names -> voice per engine (JSON in VOXHOST_TTS_VOICE_MAP). Entries
    # here replace the built-in table (tts/voices.py) per engine and voice: a voice id (the
    # name's English voice), or {language: voice id} to set it per language.
    tts_voice_map: dict[str, dict[str, str | dict[str, str]]] = Field(default_factory=dict)
    # Languages whose readers (dictionaries, espeak-ng) load at start rather than on their first
    # line, so that line is not the one to wait: e.g. "ja,zh". English always loads at start.
    tts_languages: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # onnxruntime provider for Kokoro and piper (engines/onnx_device.py): auto = CUDA when this
    # onnxruntime has it (the 'gpu' extra), else the CPU; cuda falls back to the CPU with a warning.
    tts_device: Literal["auto", "cpu", "cuda"] = "auto"
    # onnxruntime intra-op threads per engine; 0 = auto: one pool as wide as the cores, shared by
    # the concurrent syntheses (hibari: 1). engines/threads.py tts_threads.
    tts_threads: int = Field(default=0, ge=0)
    # Microseconds a pool thread spin-waits within a synthesis before it sleeps (0: sleeps at
    # once); spinning stops when each run ends, so an idle pool burns nothing. Off: at 2 ms,
    # Kokoro's lines came 4-9% sooner alone but through the server 0-3% sooner for 10-15% more
    # CPU per audio second (docs/benchmarks.md "Kokoro against kokoro-onnx").
    tts_spin_us: int = Field(default=0, ge=0)
    # Kokoro's Snake activations and Sin nodes on voxhost's vectorised kernels, built with the
    # host's C compiler into the models dir (engines/onnx_ops): a Kokoro call 12-17% sooner for
    # ~11% less CPU. Without a compiler, or off, onnxruntime's own scalar Sin runs instead.
    tts_native_ops: bool = True
    tts_concurrency: int = 2  # syntheses running at once (one worker thread each)
    tts_max_queue: int = 32  # waiting syntheses beyond that; more -> 429
    # The first chunk is at most this many words (a clause or phrase edge within them),
    # so the first byte comes sooner; 0 = whole first clause. Only on an idle engine: a line
    # beside others is cut at sentences only (tts/service.py SpeechService.open).
    tts_first_chunk_words: int = Field(default=4, ge=0)
    # Designed voices (POST /v1/audio/voices, `voxhost voices`): one JSON file per voice;
    # servers sharing the directory (EFS) see each other's voices within a second.
    # None: cache_dir/voices.
    voices_dir: Path | None = None

    # --- phrase cache (cache/phrases.py) ---
    # Synthesised NPC lines are game content, not player data, so it is on by
    # default. Disk tier: tts_cache_path, else cache_dir/tts.
    tts_cache_enabled: bool = True
    tts_cache_path: Path | None = None
    tts_cache_memory_bytes: int = 64 * 1024 * 1024
    tts_cache_disk_bytes: int = 1024 * 1024 * 1024

    # --- cost and metrics (ops/cost.py, ops/emf.py) ---
    instance_type: str = "g4dn.xlarge"  # prices in ops/cost.py
    instance_price_per_hour: float | None = None  # overrides the table (spot, savings plans)
    emf_enabled: bool = False  # CloudWatch EMF lines on stdout
    emf_namespace: str = "voxhost"
    emf_service_name: str = "voxhost"  # the ServiceName dimension (autoscaling alarms)
    emf_interval_s: float = 60.0

    # --- migration gateway (api/gateway/): share traffic with a cloud API ---
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
    # Circuit breaker (api/gateway/breaker.py): after this many upstream failures in a row
    # (unreachable, timeout, 5xx, a cut stream, refused credentials) the upstream's players
    # are served here while this server has room, and a probe (GET <upstream>/models) tries
    # the upstream after the cooldown, doubling to the max while it keeps failing. A request
    # whose own upstream attempt fails before its first byte is served here too. 0: neither
    # (an upstream failure reaches the player as a 502/504, as without the breaker).
    upstream_breaker_failures: int = Field(default=3, ge=0)
    upstream_breaker_cooldown_s: float = Field(default=5.0, gt=0)
    upstream_breaker_max_cooldown_s: float = Field(default=60.0, gt=0)
    # Share of players served here (0-1); the rest go upstream. Sticky per player.
    route_local_share: float = 1.0
    # Per-route override, JSON: {"transcriptions": 0.5, "speech": 1.0, "realtime": 0.1}.
    route_local_shares: dict[str, float] = Field(default_factory=dict)
    # JSON file {"local_share": .., "local_shares": {..}, "shadow_share": ..} re-read when it
    # changes: shares move without a restart (protect it with file permissions).
    route_shares_file: Path | None = None
    route_fallback: bool | None = None  # None: on whenever an upstream is configured
    # Burst: new requests go upstream when local admission would refuse them (expected wait past
    # its budget: stt/tts_wait_budget_s) or the local queue is deeper than this; 0: no burst.
    route_burst_queue: int = 0
    route_shadow_share: float = 0.0  # share of locally served requests also sent upstream to compare
    # Shadow comparisons (metrics only: no audio, no text) appended as JSON lines; None: metrics only.
    route_shadow_log: Path | None = None

    # --- storage ---
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    # A release's model manifest (ops/model_manifest.py): every file it lists is checked against
    # its sha256 before any model loads; a mismatch keeps /ready at 503. None: no check.
    models_manifest: Path | None = None

    @field_validator("stt_models", "tts_engines", "tts_languages", "api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _fold_deprecated(self) -> Settings:
        """VOXHOST_STT_TEXT_ONLY and VOXHOST_STT_REST_SHORT_WINDOW governed one decision with
        opposite auto defaults; they now set VOXHOST_STT_REST_TEXT_ONLY (off if either is off),
        unless that is set itself."""
        spellings = {"stt_text_only": self.stt_text_only, "stt_rest_short_window": self.stt_rest_short_window}
        old = {name: value for name, value in spellings.items() if value is not None}
        if not old:
            return self
        names = ", ".join(f"VOXHOST_{name.upper()}" for name in old)
        if "stt_rest_text_only" in self.model_fields_set:
            log.warning("%s is deprecated and ignored: VOXHOST_STT_REST_TEXT_ONLY is set", names)
        else:
            self.stt_rest_text_only = all(old.values())
            log.warning("%s is deprecated: use VOXHOST_STT_REST_TEXT_ONLY (now %s)", names,
                        str(self.stt_rest_text_only).lower())
        return self

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
