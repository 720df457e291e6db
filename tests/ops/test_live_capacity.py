"""The default live-session capacity follows from the measured CPU per player and this host's
cores (ops/capacity.py), is still a setting, and is the session gate's plain `max_sessions`
(what the LiveSessionCapacity gauge publishes)."""

from __future__ import annotations

import math

import pytest

from voxhost.api.app import build_state
from voxhost.engines.threads import usable_cores
from voxhost.ops.capacity import LIVE_CORES_PER_PLAYER, TARGET_UTILISATION, default_live_sessions
from voxhost.ops.settings import Settings


def test_on_a_gpu_one_process_gets_about_one_core_of_players():
    one_core = math.floor(TARGET_UTILISATION / LIVE_CORES_PER_PLAYER["cuda"])
    assert default_live_sessions("cuda", cores=2) == one_core
    assert default_live_sessions("cuda", cores=16) == one_core  # one event loop: more cores need workers
    assert default_live_sessions("cuda", cores=16, workers=4) == one_core  # ... and each worker gets its own
    assert default_live_sessions("cuda", cores=1, workers=2) == math.floor(one_core / 2)


def test_on_a_cpu_the_decodes_use_every_core():
    per_core = TARGET_UTILISATION / LIVE_CORES_PER_PLAYER["cpu"]
    assert default_live_sessions("cpu", cores=8) == math.floor(8 * per_core)
    assert default_live_sessions("cpu", cores=8, workers=2) == math.floor(4 * per_core)
    assert default_live_sessions("cpu", cores=1) >= 1


@pytest.mark.parametrize("models, device", [(["simulated-gpu"], "cuda"), (["whisper-base"], "cpu")])
def test_the_gate_takes_the_derived_capacity_unless_set(models, device):
    state = build_state(Settings(stt_models=models, stt_device="cpu" if device == "cpu" else "auto"))
    assert state.sessions.max_sessions == default_live_sessions(device, usable_cores())
    assert build_state(Settings(stt_models=models, max_live_sessions=5)).sessions.max_sessions == 5
    assert build_state(Settings(stt_models=models, max_live_sessions=0)).sessions.max_sessions == 0


def test_the_running_server_uses_its_engines_device(server):
    state = server.app.state.voxhost
    assert state.settings.max_live_sessions is None
    assert state.sessions.max_sessions == default_live_sessions(state.services.stt_engines.get(None).device, usable_cores())
    gauge = next(iter(state.metrics.live_session_capacity.collect())).samples[0].value
    assert gauge == state.sessions.max_sessions  # what the fleet scales on (LiveSessionCapacity)
