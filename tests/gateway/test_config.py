"""Bad upstream configuration fails at start, with a message naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from voxhost.api.gateway.config import GatewayConfigError, from_settings
from voxhost.ops.settings import Settings

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("overrides, named", [
    ({"upstream_url": "api.openai.com/v1"}, "VOXHOST_UPSTREAM_URL"),
    ({"upstream_url": "ftp://api.openai.com/v1"}, "VOXHOST_UPSTREAM_URL"),
    ({"upstream_url": "https://user:pw@api.openai.com/v1"}, "VOXHOST_UPSTREAM_API_KEY"),
    ({"route_local_share": 0.5}, "VOXHOST_UPSTREAM_URL"),  # a share with nowhere to send the rest
    ({"upstream_api_key": "sk-x"}, "VOXHOST_UPSTREAM_URL"),
    ({"upstream_url": "https://x/v1", "upstream_api_key": "sk-abc def"}, "whitespace"),
    ({"upstream_url": "https://x/v1", "route_local_share": 1.2}, "between 0 and 1"),
    ({"upstream_url": "https://x/v1", "route_local_shares": {"speach": 0.5}}, "unknown routes"),
    ({"upstream_url": "https://x/v1", "route_shadow_share": -0.1}, "shadow_share"),
    ({"upstream_url": "https://x/v1", "upstream_models": {"tts": "tts-1"}}, "VOXHOST_UPSTREAM_MODELS"),
    ({"upstream_url": "https://x/v1", "route_burst_queue": -1}, "VOXHOST_ROUTE_BURST_QUEUE"),
    ({"upstream_url": "https://x/v1", "route_shares_file": Path("/nonexistent/shares.json")},
     "VOXHOST_ROUTE_SHARES_FILE"),
])
def test_bad_configuration_is_named(overrides, named):
    with pytest.raises(GatewayConfigError, match=named.replace("(", r"\(")):
        from_settings(Settings(**overrides))


def test_no_upstream_means_no_gateway():
    assert from_settings(Settings()) is None


def test_serve_refuses_to_start_with_a_clear_message_and_no_key_echo():
    secret = "sk-live-SHOULDNOTAPPEAR-123456"
    env = {**os.environ, "PYTHONPATH": str(SRC), "VOXHOST_UPSTREAM_URL": "api.openai.com/v1",
           "VOXHOST_UPSTREAM_API_KEY": secret}
    done = subprocess.run([sys.executable, "-m", "voxhost.cli.main", "serve"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "VOXHOST_UPSTREAM_URL must be an http(s) API base" in done.stderr
    assert "Traceback" not in done.stderr
    assert secret not in done.stdout + done.stderr
