"""Shared fixtures: one real server (real models) per test session.

Models load once; every API test talks to it over real HTTP with real
clients (the official openai SDK, httpx, websockets).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from voxhost.evaluation.dataset import eval_dir, load_manifest
from voxhost_testing import LiveServer, free_port  # noqa: F401  (re-exported for tests)

MODEL_FIXTURES = {"server", "sibling", "make_server"}


# The longest files (minutes each: whole-eval-set comparisons), started first so that
# `make test`'s two xdist workers (--dist loadfile --no-loadscope-reorder) run them side by side
# instead of one of them ending the run alone. Order within a file is kept.
SLOW_FIRST = ("tests/api/test_realtime.py", "tests/test_accuracy.py", "tests/fleet/test_fleet.py")


def _slow_rank(item) -> int:
    path = Path(str(item.fspath)).as_posix()
    return next((i for i, slow in enumerate(SLOW_FIRST) if path.endswith(slow)), len(SLOW_FIRST))


def pytest_collection_modifyitems(items):
    """Markers by place and by fixture, so each group can be selected (`-m "not model"`)."""
    items.sort(key=_slow_rank)  # stable: everything else keeps its order
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "web" in parts:
            item.add_marker(pytest.mark.browser)
        if "deploy" in parts:
            item.add_marker(pytest.mark.deploy)
        if "fleet" in parts:
            item.add_marker(pytest.mark.fleet)
        if "engines" in parts or MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    from voxhost.ops.settings import Settings

    return Settings(stt_models=["whisper-base", "whisper-tiny.en"], max_upload_bytes=25 * 1024 * 1024,
                    max_audio_seconds=600,
                    # TTS: all three bundled engines; a fresh phrase cache per session.
                    tts_engines=["hibari", "kokoro", "piper"],
                    tts_cache_path=tmp_path_factory.mktemp("tts-cache"),
                    voices_dir=tmp_path_factory.mktemp("voices"),  # designed voices, per session
                    # Tests that send several requests at once check the answers, on a loaded CI box
                    # where the queue waits vary; admission by expected wait is tested with its own
                    # budgets (tests/api/test_admission.py).
                    stt_wait_budget_s=0, tts_wait_budget_s=0, bulk_wait_budget_s=0)


@pytest.fixture(scope="session")
def server(settings):
    from voxhost.api.app import create_app

    with LiveServer(create_app(settings)) as live:
        yield live


@pytest.fixture(scope="session")
def base_url(server) -> str:
    return server.base_url


@pytest.fixture(scope="session")
def openai_client(base_url):
    from openai import OpenAI

    return OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="session")
def english():
    return load_manifest(lang="en")


@pytest.fixture(scope="session")
def eval_audio() -> Path:
    return eval_dir() / "audio"


@pytest.fixture(scope="session")
def short_clip(eval_audio) -> Path:
    """~2 s of clear read speech: 'in being comparatively modern.'"""
    return eval_audio / "lj_LJ001-0002.wav"
