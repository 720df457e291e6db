"""VOXHOST_TTS_DEVICE: provider choice, CPU fallback with a clear warning, and
GPU code paths that import and run on a CPU-only host (this one)."""

from __future__ import annotations

import logging
import subprocess
import sys

from voxhost.engines.onnx_device import CPU, CUDA, providers, report

ONLY_CPU = [CPU]
WITH_CUDA = ["TensorrtExecutionProvider", CUDA, CPU]


def test_cpu_is_always_the_cpu():
    assert providers("cpu", "kokoro", WITH_CUDA) == [CPU]


def test_auto_takes_cuda_only_where_onnxruntime_has_it(caplog):
    with caplog.at_level(logging.WARNING, "voxhost.engines"):
        assert providers("auto", "kokoro", ONLY_CPU) == [CPU]
    assert not caplog.records  # a CPU-only host: nothing changes, nothing to warn about
    assert providers("auto", "kokoro", WITH_CUDA) == [CUDA, CPU]
    assert providers("cuda", "kokoro", WITH_CUDA) == [CUDA, CPU]


def test_asking_for_cuda_without_it_warns_and_runs_on_the_cpu(caplog):
    with caplog.at_level(logging.WARNING, "voxhost.engines"):
        assert providers("cuda", "kokoro", ONLY_CPU) == [CPU]
    assert "no CUDA provider" in caplog.text and "'gpu' extra" in caplog.text


def test_report_names_a_cuda_provider_that_did_not_load(caplog):
    class FellBack:  # onnxruntime's session when libcudnn is missing: CPU only, no exception
        def get_providers(self):
            return [CPU]

    with caplog.at_level(logging.WARNING, "voxhost.engines"):
        assert report(FellBack(), [CUDA, CPU], "kokoro") == "cpu"
    assert "CUDA provider did not load" in caplog.text


def test_this_hosts_onnxruntime_decides_auto():
    import onnxruntime as ort

    expected = [CUDA, CPU] if CUDA in ort.get_available_providers() else [CPU]
    assert providers("auto", "kokoro") == expected


def test_gpu_code_paths_import_on_a_cpu_only_host():
    """Every module on the GPU path imports with no GPU visible and no onnxruntime-gpu."""
    code = ("import voxhost.engines.onnx_device, voxhost.engines.tts.kokoro_float, "
            "voxhost.engines.tts.kokoro, voxhost.engines.tts.piper, voxhost.cli.models; "
            "from voxhost.cli.models import gpu_tts_installed; print(gpu_tts_installed())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": ":".join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("True", "False")
