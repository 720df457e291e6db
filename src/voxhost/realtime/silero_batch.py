"""Silero VAD with live sessions on the batch axis: one ONNX call scores many streams.

faster-whisper's bundled `silero_vad_v6.onnx` takes windows [count, 576] (64
samples of context + a 512-sample window per row) and state h/c [1, 1, 128];
its `/Transpose` (perm [0, 2, 1]) makes the rows the LSTM's *time* axis, so
the graph as shipped can follow one stream only. This module rewrites a copy
of it at load time (the model file stays faster-whisper's; nothing is
committed or downloaded) so that:

- the per-window encoder (STFT and convolutions, stateless) runs on every
  new window of every stream at once, flattened: input [M, 576], as before;
- `slots` [T, N] lays its rows out as the LSTM's [T, N, 128] (time, stream),
  with h/c [1, N, 128] and `lengths` [N] (ONNX
  LSTM's `sequence_lens`), so a stream with fewer than T new windows ends with
  the state of its own last window (onnxruntime's CPU LSTM honours it; checked
  in tests/realtime/test_vad_batch.py);
- the decoder (a kernel-1 convolution) maps back to probabilities [N, T];
  those past a stream's length are padding, to be ignored.

Nothing else changes: the weights and every other node are the original's,
so each stream's probabilities equal what the original graph gives it alone
(to float rounding; the largest difference on eval speech is in the tests).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WINDOW = 512  # samples at 16 kHz (32 ms): Silero's frame
CONTEXT = 64  # samples of the previous window each row carries
HIDDEN = 128


def bundled_model_path() -> str:
    from faster_whisper.utils import get_assets_path

    return os.path.join(get_assets_path(), "silero_vad_v6.onnx")


def _node(graph: onnx.GraphProto, op_type: str, name: str) -> onnx.NodeProto:
    matches = [n for n in graph.node if n.op_type == op_type and n.name == name]
    if len(matches) != 1:  # a different Silero export: refuse rather than guess
        raise ValueError(f"Silero graph has no single {op_type} node named {name!r}")
    return matches[0]


def batched_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the Silero v6 graph with streams on the batch axis (see module doc)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    pad = _node(graph, "Pad", "/encoder/feature_extractor/padding/Pad")
    to_time = _node(graph, "Transpose", "/Transpose")
    lstm = _node(graph, "LSTM", "/decoder/rnn/LSTM")
    out = _node(graph, "Reshape", "/Reshape")
    if list(pad.input[:1]) != ["input"] or len(lstm.input) < 7 or lstm.input[4]:
        raise ValueError("Silero graph's inputs are not the v6 layout this rewrite expects")

    graph.initializer.extend([
        numpy_helper.from_array(np.array([-1, HIDDEN], dtype=np.int64), "batch/rows_shape"),
        numpy_helper.from_array(np.zeros((1, HIDDEN), dtype=np.float32), "batch/padding_row"),
        numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "batch/probs_shape"),
    ])
    # The encoder's [M, 128, 1] (one row per real window, as in the original) is laid
    # out as the LSTM's [T, N, 128] (time, stream, features) by gathering rows through
    # `slots`; a slot past a stream's length points at an appended row of zeros.
    # The original's Transpose made it [M, 1, 128] instead: M steps of one stream.
    index = list(graph.node).index(to_time)
    graph.node.remove(to_time)
    for offset, node in enumerate([
        helper.make_node("Reshape", [to_time.input[0], "batch/rows_shape"], ["batch/rows"], name="batch/Rows"),
        helper.make_node("Concat", ["batch/rows", "batch/padding_row"], ["batch/rows_padded"], axis=0,
                         name="batch/Pad"),
        helper.make_node("Gather", ["batch/rows_padded", "slots"], [to_time.output[0]], axis=0,
                         name="batch/ToLstm"),
    ]):
        graph.node.insert(index + offset, node)
    lstm.input[4] = "lengths"
    # The decoder's kernel-1 conv already gives [N, 1, T]; the original flattened it to [M].
    flat_shape, out.input[1] = out.input[1], "batch/probs_shape"
    if not any(flat_shape in node.input for node in graph.node):
        graph.initializer.remove(next(t for t in graph.initializer if t.name == flat_shape))

    del graph.input[:]
    graph.input.extend([
        helper.make_tensor_value_info("input", TensorProto.FLOAT, ["windows", CONTEXT + WINDOW]),
        helper.make_tensor_value_info("slots", TensorProto.INT64, ["time", "streams"]),
        helper.make_tensor_value_info("lengths", TensorProto.INT32, ["streams"]),
        helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "streams", HIDDEN]),
        helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, "streams", HIDDEN]),
    ])
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info("speech_probs", TensorProto.FLOAT, ["streams", "time"]),
        helper.make_tensor_value_info("hn", TensorProto.FLOAT, [1, "streams", HIDDEN]),
        helper.make_tensor_value_info("cn", TensorProto.FLOAT, [1, "streams", HIDDEN]),
    ])
    del graph.value_info[:]  # shapes inferred for the old layout no longer hold
    # Not onnx.checker here: its schema registry stays resident (+7.5 MiB RSS) and
    # onnxruntime validates the graph when it loads it; the tests run the checker.
    return model


@functools.lru_cache
def batched_session():
    """One onnxruntime session of the rewritten graph per process, built on first use
    (thread-safe to run; options as faster-whisper's own VAD session; its threads: engines/threads.py)."""
    import onnxruntime

    from voxhost.engines.threads import VAD

    opts = VAD.apply(onnxruntime.SessionOptions())
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    model = batched_graph(onnx.load(bundled_model_path()))
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"],
                                        sess_options=opts)
