"""voxhost's own onnxruntime kernels (engines/onnx_ops): built with the host's C compiler,
loaded by onnxruntime, and right: Sin within 1.5e-7 of numpy's double-precision sin."""

from __future__ import annotations

import numpy as np
import pytest

from voxhost.engines import onnx_ops


@pytest.fixture(scope="module")
def sin_session(tmp_path_factory):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Sin", ["x"], ["y"], domain=onnx_ops.DOMAIN)], "sin",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(onnx_ops.DOMAIN, 1)])
    options = ort.SessionOptions()
    onnx_ops.register(options, tmp_path_factory.mktemp("models"))
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_sin_through_onnxruntime_matches_numpy(sin_session):
    rng = np.random.default_rng(7)
    # Snake activations' range, the harmonic source's growing phase (past the fast path's limit),
    # and a length that is no multiple of the kernel's block or vector width.
    for scale in (0.01, 3.0, 300.0, 7000.0, 1e5):
        x = (rng.standard_normal((1, 128, 1031)) * scale).astype(np.float32)
        (y,) = sin_session.run(None, {"x": x})
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.abs(y - np.sin(x.astype(np.float64))).max() <= 1.5e-7, scale


def test_sin_keeps_ieee_special_values_and_odd_shapes(sin_session):
    special = np.array([0.0, -0.0, np.pi, -np.pi / 2, 1e-40, np.nan, np.inf, -np.inf, 3e38], np.float32)
    (y,) = sin_session.run(None, {"x": special})
    assert y[0] == 0 and not np.signbit(y[0]) and y[1] == 0 and np.signbit(y[1])
    assert abs(y[2]) < 1e-6 and y[3] == -1.0 and y[4] == special[4]
    assert np.isnan(y[5:8]).all() and abs(y[8] - np.sin(np.float64(special[8]))) < 1e-7
    for shape in [(), (0,), (3, 0, 2), (2, 3, 4, 5)]:
        x = np.full(shape, 0.5, np.float32)
        (y,) = sin_session.run(None, {"x": x})
        assert y.shape == x.shape and np.allclose(y, np.sin(x), atol=1e-7)


def test_the_library_is_built_once_and_a_failed_build_says_why(tmp_path, monkeypatch):
    built = onnx_ops.library(tmp_path)
    mtime = built.stat().st_mtime_ns
    assert onnx_ops.library(tmp_path) == built and built.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in built.parent.iterdir() if not p.name.endswith(".lock")) == [built.name]

    other = tmp_path / "elsewhere"
    monkeypatch.setenv("CC", "false")  # a compiler that fails
    with pytest.raises(onnx_ops.OpsUnavailable, match="building voxhost_ops.c failed"):
        onnx_ops.library(other)
    assert not any(p.suffix == ".so" for p in other.rglob("*"))  # nothing half-built left behind
