"""Kokoro's timed graph as voxhost's CPU engine runs it: its Snake activations and Sin nodes on
voxhost's vectorised kernels (engines/onnx_ops), and its squares as products.

- Every Pow(x, 2) becomes Mul(x, x): onnxruntime's Pow runs a general power on the pool, a Mul
  is cheaper, and the result is bit-identical (the test checks onnxruntime's two).
- Each of the decoder's 48 Snake activations, x + sin(a x)^2 / a, which the graph spells as
  Mul(a, x) -> Sin -> Mul(s, s) -> Mul(1/a, .) -> Add(x, .), becomes one ai.voxhost Snake node:
  one pass instead of five, bitwise the same as those five nodes on voxhost's Sin.
- The other Sin nodes (the harmonic source's) move to the "ai.voxhost" domain.

Sin is where the sound changes. The kernel computes sin within 1.5e-7 of numpy's
  double-precision sin (tests/engines/test_onnx_ops.py) but not bit for bit as onnxruntime's
  does, and Kokoro's harmonic source turns any such difference into a phase drift: the waves
  decorrelate while the spectrum stays (long-term spectra 0.17-0.35 dB apart, three times
  closer than the GPU's float32 graph: tests/engines/test_kokoro_native.py). So the engine's
  model version, and every cached line's key, says which kernel spoke.

Nothing else changes. Written once at assembly, atomically, under a lock, sha256-pinned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voxhost.engines.assembly import AssemblyError, edit_graph
from voxhost.engines.onnx_ops import DOMAIN

NATIVE_SUFFIX = ".native.onnx"
# sha256 of the edited graph as onnx 1.2x serialises it (its source, the timed graph, is pinned too).
NATIVE_MODEL_SHA256 = "a52e2b9955f2503ee5ecdd138f1592b7bfa63ea3f12c152975adf0b5c0999fcc"


def assemble_native(source: Path) -> Path:
    """The graph at `source` with Snake and Sin on voxhost's kernels and squares as products,
    next to it."""

    def change(model) -> None:
        if not edit(model):
            raise AssemblyError(f"{source.name} is not the Kokoro graph this edit was written for.")

    dest = source.with_name(source.name.removesuffix(".onnx") + NATIVE_SUFFIX)
    return edit_graph(source, dest, NATIVE_MODEL_SHA256, change, "edit Kokoro's graph")


def edit(model, fuse_snakes: bool = True) -> bool:
    """Make the edits above on an onnx ModelProto, in place; False if the graph has none of
    them (not Kokoro's). `fuse_snakes` False: Sin and squares only (a test's reference)."""
    from onnx import helper

    squared = _square_by_product(model)
    fused = _fuse_snakes(model) if fuse_snakes else 0
    moved = _move_sin(model)
    model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return bool(squared and moved and (fused or not fuse_snakes))


def _fuse_snakes(model) -> int:
    """Mul(a, x) -> Sin -> Mul(s, s) -> Mul(r, .) -> Add(x, .), a and r [1, C, 1] constants and
    nothing else reading the intermediates, as one Snake(x, a, r) node; returns how many."""
    from onnx import helper

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def only_reader(name: str, op_type: str) -> Any:  # the node, or None
        nodes = readers.get(name, [])
        one = len(nodes) == 1 and name not in outputs and nodes[0].op_type == op_type
        return nodes[0] if one else None

    def channel_constant(name: str) -> bool:
        init = constants.get(name)
        return init is not None and len(init.dims) == 3 and init.dims[0] == 1 and init.dims[2] == 1

    def snake_from(scale) -> tuple[list[Any], Any] | None:
        """The pattern's five nodes and Snake's inputs, starting at its first Mul; or None."""
        if scale.op_type != "Mul" or len(scale.input) != 2:
            return None
        alpha, x = scale.input if channel_constant(scale.input[0]) else scale.input[::-1]
        sin = only_reader(scale.output[0], "Sin")
        square = sin and only_reader(sin.output[0], "Mul")
        if not channel_constant(alpha) or square is None or list(square.input) != [sin.output[0]] * 2:
            return None
        weigh = only_reader(square.output[0], "Mul")
        add = weigh and only_reader(weigh.output[0], "Add")
        if add is None:
            return None
        inv_alpha = next((i for i in weigh.input if i != square.output[0]), "")
        if not channel_constant(inv_alpha) or constants[inv_alpha].dims != constants[alpha].dims or \
                sorted(add.input) != sorted([x, weigh.output[0]]):
            return None
        return [scale, sin, square, weigh, add], [x, alpha, inv_alpha]

    drop: set[int] = set()
    fused: dict[int, Any] = {}
    for node in graph.node:
        found = snake_from(node)
        if found is not None:
            (*replaced, add), inputs = found
            drop.update(id(n) for n in replaced)
            fused[id(add)] = helper.make_node("Snake", inputs, list(add.output), name=add.name + "_snake",
                                              domain=DOMAIN)
    kept = [fused.get(id(node), node) for node in graph.node if id(node) not in drop]
    del graph.node[:]
    graph.node.extend(kept)
    return len(fused)


def _move_sin(model) -> int:
    """Sin nodes to voxhost's domain; returns how many."""
    moved = 0
    for node in model.graph.node:
        if node.op_type == "Sin" and node.domain in ("", "ai.onnx"):
            node.domain = DOMAIN
            moved += 1
    return moved


def _square_by_product(model) -> int:
    """Pow(x, 2) with a constant 2 as Mul(x, x), in place; returns how many."""
    from onnx import numpy_helper

    constants = {init.name: init for init in model.graph.initializer}
    squared = 0
    for node in model.graph.node:
        exponent = constants.get(node.input[1]) if node.op_type == "Pow" and len(node.input) == 2 else None
        if exponent is not None and numpy_helper.to_array(exponent).size == 1 and \
                float(numpy_helper.to_array(exponent).reshape(-1)[0]) == 2.0:
            node.op_type = "Mul"
            node.input[1] = node.input[0]
            squared += 1
    return squared
