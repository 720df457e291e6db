"""Kokoro's float32 graph (for the CUDA provider), checked on the CPU against the int8 one.

The float graph no longer rounds activations to 8 bits, so it cannot be
bit-identical; the stated tolerance, per sentence and voice:
- durations: the phoneme frame counts differ by at most 3 frames in total (75 ms);
- sound: the log-power spectrograms correlate >= 0.9 (measured 0.93-0.94); the long-term
  average spectra differ by a median of at most 1.5 dB (measured 0.6-0.7) and the loudness
  by at most 5% (measured 0.5-0.8%). Sample by sample the waves do not correlate (0.1-0.2):
  the harmonic source's phase drifts with any change of pitch. A float graph with its Conv
  biases dropped still correlated 0.91 but missed the spectrum (3.7-5.4 dB) and loudness (-6
  to -9%) bounds, which is what those two are for;
- words: Whisper base hears the float graph's speech with a WER no more than
  5 points above the int8 graph's, over the sentences together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxhost.engines.tts.kokoro_durations import TIMED_MODEL_FILE
from voxhost.engines.tts.kokoro_float import assemble_float
from voxhost.evaluation.dataset import tts_sentences
from voxhost.stt.wer import wer
from voxhost_testing import assert_sounds_alike, kokoro_feed, whisper_hears

QUANTIZED = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM", "DynamicQuantizeLinear"}


@pytest.fixture(scope="module")
def kokoro(server):
    return server.app.state.voxhost.services.tts_engines.engines["kokoro"]


@pytest.fixture(scope="module")
def float_graph(kokoro) -> Path:
    return assemble_float(Path(kokoro.models_dir) / "kokoro" / TIMED_MODEL_FILE)


@pytest.fixture(scope="module")
def sessions(kokoro, float_graph):
    import onnxruntime as ort

    make = lambda path: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # noqa: E731
    return make(Path(kokoro.models_dir) / "kokoro" / TIMED_MODEL_FILE), make(float_graph)


def test_the_float_graph_has_no_quantized_op_and_the_same_outputs(float_graph, sessions):
    import onnx

    ops = {node.op_type for node in onnx.load(str(float_graph), load_external_data=False).graph.node}
    assert not ops & QUANTIZED and {"Conv", "MatMul", "LSTM"} <= ops
    int8, floating = sessions
    assert [o.name for o in floating.get_outputs()] == [o.name for o in int8.get_outputs()]
    assert assemble_float(float_graph.with_name(TIMED_MODEL_FILE)) == float_graph  # written once


def test_float_speech_matches_int8_within_tolerance(kokoro, sessions, server):
    whisper = server.app.state.voxhost.services.stt_engines.get("whisper-base")
    int8, floating = sessions
    sentences = tts_sentences()[:4]
    spoken: dict[str, list[np.ndarray]] = {"int8": [], "float": []}
    heard: dict[str, str] = {}
    for i, text in enumerate(sentences):
        feed = kokoro_feed(kokoro, text, ("af_heart", "bm_george")[i % 2])
        (a, frames_a), (b, frames_b) = int8.run(None, feed), floating.run(None, feed)
        a, b = a.reshape(-1), b.reshape(-1)
        assert np.abs(frames_a.astype(int) - frames_b.astype(int)).sum() <= 3, text
        assert_sounds_alike(a, b, text, correlation=0.9, spectrum_db=1.5, loudness=0.05)
        spoken["int8"].append(a)
        spoken["float"].append(b)
    for name, waves in spoken.items():  # one Whisper call per graph: the sentences, 0.3 s apart
        heard[name] = whisper_hears(whisper, waves, kokoro.sample_rate)
    reference = [" ".join(sentences)]
    wer_int8, wer_float = (wer(reference, [heard[k]]) for k in ("int8", "float"))
    print(f"\nround-trip WER int8 {wer_int8:.1%}, float32 {wer_float:.1%}")
    assert wer_float <= wer_int8 + 0.05, heard["float"]


def test_cuda_that_does_not_load_leaves_the_int8_graph_on_the_cpu(kokoro, float_graph, monkeypatch, caplog):
    """As on a GPU host whose CUDA libraries fail: onnxruntime builds the session on the
    CPU with a warning only; the engine notices, says so, and keeps the CPU's int8 graph
    (and its cache key), not the float one."""
    import copy
    import logging

    import onnxruntime as ort

    from voxhost.engines import onnx_device
    from voxhost.engines.tts import kokoro as kokoro_module

    engine = copy.copy(kokoro)
    engine.device = "cuda"
    monkeypatch.setattr(kokoro_module, "providers", lambda device, name: [onnx_device.CUDA, onnx_device.CPU])
    with caplog.at_level(logging.WARNING, "voxhost.engines"):
        session = engine._session_for(float_graph.with_name(TIMED_MODEL_FILE), ort.SessionOptions())
    assert session.get_providers() == [onnx_device.CPU] and "float32" not in str(session._model_path)
    assert engine.device == "cpu" and not engine._float
    assert "CUDA provider did not load" in caplog.text
    assert not kokoro.model_version.endswith(":float32")
