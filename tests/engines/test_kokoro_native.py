"""Kokoro with its Sin nodes on voxhost's kernel and its squares as products
(engines/tts/kokoro_native.py): what the server runs on a CPU, and the same speech as
onnxruntime's own Sin within a stated tolerance.

The kernel's sin differs from onnxruntime's in the last bit of some values, and Kokoro's
harmonic source (a sine of the accumulated pitch phase) carries any such difference on as a
phase drift, so the two waves are not the same sample by sample (SNR 17-21 dB). What is heard
must be: per sentence and voice,
- durations: the same frames (the duration predictor has no Sin);
- sound: log-power spectrograms correlating >= 0.98 (measured 0.988-0.995 over 8 sentences x 3
  voices), long-term average spectra within a median 0.5 dB (measured 0.17-0.35) and loudness
  within 1% (measured 0.5%). For scale: the float32 graph the GPU runs (test_kokoro_float.py)
  is 0.93-0.94, 0.6-0.7 dB and 0.5-0.8% from the same int8 graph;
- words: Whisper base hears no more than 2 points of WER above onnxruntime's Sin, together.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from voxhost.engines import onnx_ops
from voxhost.engines.tts.kokoro_durations import TIMED_MODEL_FILE
from voxhost.engines.tts.kokoro_native import NATIVE_MODEL_SHA256, assemble_native
from voxhost.evaluation.dataset import tts_sentences
from voxhost.stt.wer import wer
from voxhost_testing import assert_sounds_alike, kokoro_feed, whisper_hears


@pytest.fixture(scope="module")
def kokoro(server):
    return server.app.state.voxhost.services.tts_engines.engines["kokoro"]


def test_the_server_runs_kokoro_on_the_native_sin_with_its_own_cache_key(kokoro):
    import onnx

    assert kokoro.native_sin and kokoro.model_version.endswith(":native-sin")
    graph = Path(kokoro._session.session._model_path)
    assert graph == assemble_native(graph.with_name(TIMED_MODEL_FILE))
    nodes = onnx.load(str(graph), load_external_data=False).graph.node
    ours = Counter((node.op_type, node.domain) for node in nodes if node.domain == onnx_ops.DOMAIN)
    assert ours == {("Snake", onnx_ops.DOMAIN): 48, ("Sin", onnx_ops.DOMAIN): 3}
    assert not [node for node in nodes if node.op_type in ("Pow", "Sin") and node.domain != onnx_ops.DOMAIN]


def test_the_fused_snakes_speak_bitwise_as_the_nodes_they_replace(kokoro):
    """The graph's edit with and without the Snake fusion, on one line: the same bits."""
    import onnx
    import onnxruntime as ort

    from voxhost.engines.tts import kokoro_native

    timed = Path(kokoro.models_dir) / "kokoro" / TIMED_MODEL_FILE
    unfused = onnx.load(str(timed))
    assert kokoro_native.edit(unfused, fuse_snakes=False)
    options = ort.SessionOptions()
    onnx_ops.register(options, Path(kokoro.models_dir))
    reference = ort.InferenceSession(unfused.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = kokoro_feed(kokoro, "Watch out, Aldric!", "am_onyx")
    (expected, _), (audio, _) = reference.run(None, feed), kokoro._session.run(None, feed)
    assert np.array_equal(expected, audio)


def test_onnxruntimes_square_by_pow_and_by_product_are_bit_identical():
    """What makes Pow(x, 2) -> Mul(x, x) an exact edit, on values like the Snake's sines."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    graph = helper.make_graph([helper.make_node("Pow", ["x", "two"], ["pow"]), helper.make_node("Mul", ["x", "x"], ["mul"])],
                              "square", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("pow", "mul")], [two])
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).standard_normal(1 << 20).astype(np.float32) * np.float32(1.7)
    x[:4] = [0.0, -0.0, 1e-30, 3e19]
    by_pow, by_product = session.run(None, {"x": x})
    assert np.array_equal(by_pow.view(np.uint32), by_product.view(np.uint32))


def test_native_sin_speech_matches_onnxruntimes_within_tolerance(kokoro, server):
    import onnxruntime as ort

    whisper = server.app.state.voxhost.services.stt_engines.get("whisper-base")
    timed = Path(kokoro.models_dir) / "kokoro" / TIMED_MODEL_FILE
    options = ort.SessionOptions()
    onnx_ops.register(options, Path(kokoro.models_dir))
    stock = ort.InferenceSession(str(timed), providers=["CPUExecutionProvider"])
    native = ort.InferenceSession(str(assemble_native(timed)), options, providers=["CPUExecutionProvider"])
    sentences = tts_sentences()[:4]
    spoken: dict[str, list[np.ndarray]] = {"onnxruntime": [], "native": []}
    for i, text in enumerate(sentences):
        feed = kokoro_feed(kokoro, text, ("am_onyx", "bf_emma")[i % 2])
        (a, frames_a), (b, frames_b) = stock.run(None, feed), native.run(None, feed)
        a, b = a.reshape(-1), b.reshape(-1)
        assert np.array_equal(frames_a, frames_b) and a.size == b.size, text
        assert_sounds_alike(a, b, text, correlation=0.98, spectrum_db=0.5, loudness=0.01)
        spoken["onnxruntime"].append(a)
        spoken["native"].append(b)
    heard = {name: whisper_hears(whisper, waves, kokoro.sample_rate) for name, waves in spoken.items()}
    reference = [" ".join(sentences)]
    stock_wer, native_wer = (wer(reference, [heard[k]]) for k in ("onnxruntime", "native"))
    print(f"\nround-trip WER onnxruntime's Sin {stock_wer:.1%}, voxhost's {native_wer:.1%}")
    assert native_wer <= stock_wer + 0.02, heard["native"]


def test_without_the_kernel_kokoro_runs_onnxruntimes_sin_and_says_so(kokoro, monkeypatch, caplog):
    """No C compiler on the host (or VOXHOST_TTS_NATIVE_OPS=false): the plain timed graph, its
    own cache key, one warning; never a Kokoro that fails to load."""
    import onnxruntime as ort

    timed = Path(kokoro.models_dir) / "kokoro" / TIMED_MODEL_FILE

    def no_compiler(models_dir):
        raise onnx_ops.OpsUnavailable("no C compiler (cc) to build voxhost's onnxruntime kernels")

    monkeypatch.setattr(onnx_ops, "library", no_compiler)
    engine = copy.copy(kokoro)
    engine.device = "cpu"
    with caplog.at_level(logging.WARNING, "voxhost.tts.kokoro"):
        session = engine._session_for(timed, ort.SessionOptions())
    assert Path(session._model_path).name == TIMED_MODEL_FILE and not engine.native_sin
    assert "onnxruntime's own Sin kernel" in caplog.text and "no C compiler" in caplog.text

    engine = copy.copy(kokoro)
    engine.device, engine.native_ops = "cpu", False
    session = engine._session_for(timed, ort.SessionOptions())
    assert Path(session._model_path).name == TIMED_MODEL_FILE and not engine.native_sin


def test_assembly_writes_the_pinned_graph_once(kokoro, tmp_path):
    from voxhost.engines.assembly import sha256_of

    source = tmp_path / TIMED_MODEL_FILE
    source.symlink_to(Path(kokoro.models_dir) / "kokoro" / TIMED_MODEL_FILE)
    built = assemble_native(source)
    assert sha256_of(built) == NATIVE_MODEL_SHA256
    mtime = built.stat().st_mtime_ns
    assert assemble_native(source) == built and built.stat().st_mtime_ns == mtime
