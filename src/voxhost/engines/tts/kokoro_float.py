"""Kokoro's int8 graph rewritten in float32, for onnxruntime's CUDA provider.

The bundled graph was quantized dynamically (onnxruntime.quantization's
`quantize_dynamic`): each weight is stored int8/uint8 with a scale and zero
point, and each activation is quantized at run time by DynamicQuantizeLinear
before ConvInteger, MatMulInteger or DynamicQuantizeLSTM. The CUDA provider
has no kernels for ConvInteger or DynamicQuantizeLSTM (a contrib op, CPU only),
so on a GPU those nodes, and the copies around them, would run on the CPU.

This module undoes the pattern, weight by weight: the float weight is
(w_q - zero_point) * scale, and

- DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(x_scale * w_scale)
  becomes MatMul(x, w);
- DynamicQuantizeLinear -> ConvInteger [-> Add(round(bias / scale))] -> Cast
  -> Mul(scale) becomes Conv(x, w[, bias]) with the same attributes;
- DynamicQuantizeLSTM becomes LSTM (its W and R are stored transposed);

then drops what no output depends on. The activations are no longer rounded
to 8 bits, so the waveform is close to, not equal to, the int8 one:
tests/engines/test_kokoro_float.py states and checks the tolerance. The weights
stay the int8 values (no precision comes back), stored as float32 (~4x the
file). Written once at assembly, atomically, under the same lock as the other
assembled files.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from voxhost.engines.assembly import AssemblyError, file_lock, write_atomic

log = logging.getLogger("voxhost.tts.kokoro")

FLOAT_SUFFIX = ".float32.onnx"
_LEFT_BEHIND = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM", "DynamicQuantizeLinear"}


def float_path(source: Path) -> Path:
    return source.with_name(source.name.removesuffix(".onnx") + FLOAT_SUFFIX)


class _Graph:
    def __init__(self, model):
        from onnx import numpy_helper

        self.model = model
        self.graph = model.graph
        self.inits = {i.name: i for i in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in self.graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self._array = numpy_helper.to_array

    def array(self, name: str) -> np.ndarray:
        if name not in self.inits:
            raise AssemblyError(f"Kokoro float graph: '{name}' is not a constant.")
        return self._array(self.inits[name])

    def only_consumer(self, name: str, op: str):
        nodes = self.consumers.get(name, [])
        if len(nodes) != 1 or nodes[0].op_type != op:
            raise AssemblyError(f"Kokoro float graph: '{name}' does not feed a single {op}.")
        return nodes[0]

    def weight_scale(self, scales_mul: str) -> np.ndarray:
        """w_scale from Mul(x_scale, w_scale) (the constant side)."""
        node = self.producer.get(scales_mul)
        if node is None or node.op_type != "Mul":
            raise AssemblyError(f"Kokoro float graph: '{scales_mul}' is not x_scale * w_scale.")
        constants = [i for i in node.input if i in self.inits]
        if len(constants) != 1:
            raise AssemblyError(f"Kokoro float graph: no single weight scale in '{node.name}'.")
        return self.array(constants[0]).astype(np.float32)

    def bias(self, add) -> str:
        """The float bias behind Add(int, Reshape(Cast(Floor(Div(bias, scale)))))."""
        name = next(i for i in add.input if i in self.producer and self.producer[i].op_type == "Reshape")
        node = self.producer[name]
        for op in ("Cast", "Floor", "Div"):
            node = self.producer.get(node.input[0])
            if node is None or node.op_type != op:
                raise AssemblyError(f"Kokoro float graph: unexpected bias chain at '{add.name}'.")
        if node.input[0] not in self.inits:
            raise AssemblyError(f"Kokoro float graph: bias of '{add.name}' is not a constant.")
        return node.input[0]


def _float_weight(g: _Graph, weight: str, zero_point: str, scale: np.ndarray, channel_axis: int) -> np.ndarray:
    w = g.array(weight).astype(np.float32) - g.array(zero_point).astype(np.float32)
    if scale.ndim:  # per output channel
        shape = [1] * w.ndim
        shape[channel_axis] = -1
        scale = scale.reshape(shape)
    return (w * scale).astype(np.float32)


def dequantize(model):
    """An onnx ModelProto with every dynamically quantized op replaced by its float op."""
    from onnx import helper, numpy_helper

    g = _Graph(model)
    new_inits: list = []
    replaced: dict[int, Any] = {}  # id(node) -> its float replacement, or None: dropped
    weights: dict = {}
    for node in list(g.graph.node):
        if node.op_type in ("MatMulInteger", "ConvInteger"):
            quantize = g.producer.get(node.input[0])
            if quantize is None or quantize.op_type != "DynamicQuantizeLinear":
                raise AssemblyError(f"Kokoro float graph: '{node.name}' input is not quantized at run time.")
            x, weight, zero_point = quantize.input[0], node.input[1], node.input[3]
            after = g.only_consumer(node.output[0], "Add") if (
                node.op_type == "ConvInteger" and g.consumers[node.output[0]][0].op_type == "Add") else None
            cast = g.only_consumer((after or node).output[0], "Cast")
            mul = g.only_consumer(cast.output[0], "Mul")
            scales = next(i for i in mul.input if i != cast.output[0])
            # The scale Mul for a bias-less op is x_scale * w_scale; with a bias it is the
            # bias scale, itself Mul(x_scale, w_scale): the same node either way.
            scale = g.weight_scale(scales)
            key = (weight, zero_point, scale.tobytes())
            if key not in weights:  # 235 ops share 169 weights: one float copy each
                weights[key] = weight + "_float"
                w = _float_weight(g, weight, zero_point, scale,
                                  channel_axis=-1 if node.op_type == "MatMulInteger" else 0)
                new_inits.append(numpy_helper.from_array(w, weights[key]))
            if node.op_type == "MatMulInteger":
                new = helper.make_node("MatMul", [x, weights[key]], [mul.output[0]], name=node.name + "_float")
            else:
                inputs = [x, weights[key]] + ([g.bias(after)] if after is not None else [])
                new = helper.make_node("Conv", inputs, [mul.output[0]], name=node.name + "_float")
                new.attribute.extend(node.attribute)
            for old in (node, after, cast, mul):
                if old is not None:
                    replaced[id(old)] = None
            replaced[id(mul)] = new
        elif node.op_type == "DynamicQuantizeLSTM":
            # Inputs: X, W, R, B, sequence_lens, initial_h, initial_c, P, W_scale, W_zero_point,
            # R_scale, R_zero_point; W and R are [directions, input, 4 * hidden] (LSTM: transposed).
            ins = list(node.input) + [""] * (12 - len(node.input))
            lstm_in = list(ins[:8])
            for slot, (w, s, z) in ((1, ins[1:2] + ins[8:10]), (2, ins[2:3] + ins[10:12])):
                scale = g.array(s).astype(np.float32).reshape(-1, 1, 1)
                zero = g.array(z).astype(np.float32).reshape(-1, 1, 1)
                value = ((g.array(w).astype(np.float32) - zero) * scale).transpose(0, 2, 1)
                name = f"{node.name}_float_{'WR'[slot - 1]}"
                new_inits.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
                lstm_in[slot] = name
            while lstm_in and not lstm_in[-1]:
                lstm_in.pop()
            new = helper.make_node("LSTM", lstm_in, list(node.output), name=node.name + "_float")
            new.attribute.extend(node.attribute)
            replaced[id(node)] = new
    nodes = []
    for node in g.graph.node:
        if id(node) in replaced:
            if replaced[id(node)] is not None:
                nodes.append(replaced[id(node)])
        else:
            nodes.append(node)
    _keep_needed(model, nodes, list(g.graph.initializer) + new_inits)
    left = {n.op_type for n in model.graph.node} & _LEFT_BEHIND
    if left:
        raise AssemblyError(f"Kokoro float graph: quantized ops left: {sorted(left)}.")
    return model


def _keep_needed(model, nodes: list, initializers: list) -> None:
    """Keep only the nodes and constants some graph output depends on (in order)."""
    producer = {o: n for n in nodes for o in n.output}
    needed = {o.name for o in model.graph.output}
    keep = set()
    stack = list(needed)
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in keep:
            continue
        keep.add(id(node))
        for name in node.input:
            if name and name not in needed:
                needed.add(name)
                stack.append(name)
    del model.graph.node[:]
    model.graph.node.extend(n for n in nodes if id(n) in keep)
    del model.graph.initializer[:]
    model.graph.initializer.extend(i for i in initializers if i.name in needed)


def assemble_float(source: Path) -> Path:
    """The float32 graph of the int8 graph at `source`, next to it (written once).

    Not sha256-pinned as the int8 graphs are: it is derived deterministically
    from a pinned source, and any partial write is excluded by the atomic rename."""
    dest = float_path(source)
    if dest.is_file() and dest.stat().st_mtime_ns >= source.stat().st_mtime_ns:
        return dest
    with file_lock(dest.with_name(dest.name + ".lock")):
        if dest.is_file() and dest.stat().st_mtime_ns >= source.stat().st_mtime_ns:
            return dest
        try:
            import onnx
        except ImportError as exc:
            raise AssemblyError("The 'onnx' package is needed to write Kokoro's float graph.") from exc
        model = dequantize(onnx.load(str(source)))
        write_atomic(dest, model.SerializeToString())
        log.info("wrote Kokoro's float32 graph for the GPU: %s", dest)
    return dest
