"""voxhost's own onnxruntime kernels (engines/onnx_ops): built with the host's C compiler,
loaded by onnxruntime, and right: Sin within 1.5e-7 of numpy's double-precision sin; Snake
bitwise the five nodes it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from voxhost.engines import onnx_ops


def _session(models_dir, nodes, inputs, outputs, initializers=()):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "ops", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(onnx_ops.DOMAIN, 1)])
    options = ort.SessionOptions()
    onnx_ops.register(options, models_dir)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def sin_session(models_dir):
    from onnx import helper

    return _session(models_dir, [helper.make_node("Sin", ["x"], ["y"], domain=onnx_ops.DOMAIN)], ["x"], ["y"])


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


def test_snake_is_bitwise_the_five_nodes_it_replaces(models_dir):
    """Kokoro's spelling of x + sin(a x)^2 / a against the one Snake node, per channel of
    [N, C, T], on values like the decoder's; and a shape the kernel cannot take gives NaN."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(11)
    channels = 128
    alpha = np.exp(rng.normal(0, 0.5, (1, channels, 1))).astype(np.float32)
    constants = [numpy_helper.from_array(alpha, "a"), numpy_helper.from_array((1 / alpha).astype(np.float32), "r")]
    five = [helper.make_node("Mul", ["a", "x"], ["ax"]), helper.make_node("Sin", ["ax"], ["s"], domain=onnx_ops.DOMAIN),
            helper.make_node("Mul", ["s", "s"], ["s2"]), helper.make_node("Mul", ["r", "s2"], ["w"]),
            helper.make_node("Add", ["x", "w"], ["y5"]),
            helper.make_node("Snake", ["x", "a", "r"], ["y1"], domain=onnx_ops.DOMAIN)]
    session = _session(models_dir, five, ["x"], ["y5", "y1"], constants)
    for shape in [(1, channels, 6601), (2, channels, 1025), (1, channels, 1)]:
        x = (rng.standard_normal(shape) * 4).astype(np.float32)
        by_nodes, by_snake = session.run(None, {"x": x})
        assert np.array_equal(by_nodes.view(np.uint32), by_snake.view(np.uint32)), shape
    alone = _session(models_dir, five[-1:], ["x"], ["y1"], constants)
    (wrong,) = alone.run(None, {"x": np.ones((1, channels // 2, 8), np.float32)})  # 64 channels, alpha has 128
    assert wrong.shape == (1, channels // 2, 8) and np.isnan(wrong).all()


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
