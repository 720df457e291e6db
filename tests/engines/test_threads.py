"""Every native thread pool is sized on purpose (engines/threads.py), read back from the
libraries themselves: BLAS at one thread, no onnxruntime pool spinning, Silero without a pool,
and Whisper's lone-request policy (two decodes at once, each allowed every core)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from voxhost.engines import threads
from voxhost.engines.threads import (
    OnnxThreads,
    WhisperThreads,
    blas_threads,
    configure_environment,
    tts_threads,
    usable_cores,
    whisper_threads,
)


def test_creating_the_app_puts_every_blas_library_at_one_thread(settings):
    import scipy.signal  # noqa: F401 - scipy's own OpenBLAS, which voice shaping loads
    from threadpoolctl import threadpool_limits

    from voxhost.api.app import create_app

    threadpool_limits(limits=2, user_api="blas")  # as a library left to itself sizes it on 2+ cores
    assert blas_threads() and max(blas_threads()) == 2
    create_app(settings, load_models=False)
    assert blas_threads() == [1] * len(blas_threads())


def test_the_environment_is_set_for_libraries_not_loaded_yet():
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}  # an operator's own value wins
    added = configure_environment(environ)
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_NUM_THREADS": "1"}
    assert added == {"OPENBLAS_NUM_THREADS": "1"}
    # ... and it works only before the library loads: numpy then starts no OpenBLAS worker.
    code = ("from voxhost.engines.threads import configure_environment, blas_threads; configure_environment(); "
            "import os, json, numpy; print(json.dumps([blas_threads(), len(os.listdir('/proc/self/task'))]))")
    env = {k: v for k, v in os.environ.items() if k not in threads.ENVIRONMENT}
    pools, tasks = json.loads(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                             capture_output=True, text=True).stdout)
    assert pools == [1] and tasks == 1


@pytest.mark.parametrize("cores", [1, 2, 4, 16])
def test_a_lone_whisper_decode_may_use_every_core(cores):
    assert whisper_threads("cpu", cores=cores) == WhisperThreads(workers=min(2, cores), threads=cores)


@pytest.mark.parametrize("device, threads_, workers, expected", [
    ("cpu", 0, 8, WhisperThreads(8, 2)),   # the planner's bench sets workers: each may still use every core
    ("cpu", 1, 0, WhisperThreads(2, 1)),   # set: as given
    ("cuda", 0, 0, WhisperThreads(1, 0)),  # GPU: one replica, CTranslate2's own CPU threads
    ("cuda", 0, 2, WhisperThreads(2, 0)),
])
def test_whisper_settings_override_the_policy(device, threads_, workers, expected):
    assert whisper_threads(device, threads_, workers, cores=2) == expected


def test_tts_pools_are_as_wide_as_the_cores_except_hibaris():
    assert tts_threads("kokoro", cores=4) == OnnxThreads(intra=4, inter=1, spin_us=0)
    assert tts_threads("piper", "cuda", cores=2).intra == 2
    assert tts_threads("hibari", cores=4).intra == 1
    assert tts_threads("kokoro", threads=3, cores=4).intra == 3  # VOXHOST_TTS_THREADS
    assert tts_threads("kokoro", cores=4, spin_us=2000).spin_us == 2000  # VOXHOST_TTS_SPIN_US
    assert tts_threads("hibari", cores=4, spin_us=2000).spin_us == 0  # no pool: nothing to spin


def test_a_spinning_pool_stops_when_its_run_ends():
    import onnxruntime as ort

    options = OnnxThreads(intra=2, spin_us=2000).apply(ort.SessionOptions())
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert options.get_session_config_entry("session.intra_op.spin_duration_us") == "2000"
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"


def test_cgroup_quota_caps_the_cores(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_quota(tmp_path) is None
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def _pools(session) -> tuple[int, int, str, str]:
    options = session.get_session_options()
    return (options.intra_op_num_threads, options.inter_op_num_threads,
            options.get_session_config_entry("session.intra_op.allow_spinning"),
            options.get_session_config_entry("session.inter_op.allow_spinning"))



def test_silero_sessions_have_no_pool():
    from faster_whisper.vad import get_vad_model

    from voxhost.realtime.silero_batch import batched_session

    assert _pools(batched_session()) == (1, 1, "0", "0")  # live sessions' batched VAD
    gate = get_vad_model().session.get_session_options()  # faster-whisper's own (the REST gate)
    assert (gate.intra_op_num_threads, gate.inter_op_num_threads) == (1, 1)


def test_the_servers_engines_are_built_as_the_policy_says(server):
    state = server.app.state.voxhost
    cores = usable_cores()
    kokoro = state.services.tts_engines.engines["kokoro"]
    assert _pools(kokoro._session) == (cores, 1, "0", "0")  # VOXHOST_TTS_SPIN_US: off by default
    if "piper" in state.services.tts_engines.engines:
        assert _pools(state.services.tts_engines.engines["piper"]._voice.session) == (cores, 1, "0", "0")
    assert state.services.tts_engines.engines["hibari"]._tts.sess.get_session_options().intra_op_num_threads == 1
    whisper = state.services.stt_engines.get("whisper-base")
    assert whisper.threads == whisper_threads("cpu") == WhisperThreads(min(2, cores), cores)
    assert whisper.model.model.num_workers == min(2, cores)  # as CTranslate2 reports it
    assert state.services.stt_scheduler.executor_for(whisper).workers == min(2, cores)
