"""Kokoro's timed graph as voxhost's CPU engine runs it: its Sin nodes on voxhost's vectorised
kernel (engines/onnx_ops), and its squares as products.

- Every Sin node (the decoder's Snake activations, x + sin(a x)^2 / a, and the harmonic source)
  moves to the "ai.voxhost" domain. The kernel computes sin within 1.5e-7 of numpy's
  double-precision sin (tests/engines/test_onnx_ops.py) but not bit for bit as onnxruntime's
  does, and Kokoro's harmonic source turns any such difference into a phase drift: the waves
  decorrelate while the spectrum stays (long-term spectra 0.15-0.35 dB apart, three times
  closer than the GPU's float32 graph: tests/engines/test_kokoro_native.py). So the engine's
  model version, and every cached line's key, says which kernel spoke.
- Every Pow(x, 2) becomes Mul(x, x): onnxruntime's Pow runs a general power on the pool, a Mul
  is cheaper, and the result is bit-identical (the test checks onnxruntime's two).

Nothing else changes. Written once at assembly, atomically, under a lock, sha256-pinned.
"""

from __future__ import annotations

from pathlib import Path

from voxhost.engines.assembly import AssemblyError, file_lock, sha256_of, verified, write_atomic
from voxhost.engines.onnx_ops import DOMAIN

NATIVE_SUFFIX = ".native.onnx"
# sha256 of the edited graph as onnx 1.2x serialises it (its source, the timed graph, is pinned too).
NATIVE_MODEL_SHA256 = "32b9d773d8eaf165570b09821aa62bdbe0f58de25b2b176c36385eb907cab092"


def assemble_native(source: Path) -> Path:
    """The graph at `source` with Sin on voxhost's kernel and squares as products, next to it."""
    dest = source.with_name(source.name.removesuffix(".onnx") + NATIVE_SUFFIX)
    if verified(dest, None, NATIVE_MODEL_SHA256):
        return dest
    with file_lock(dest.with_name(dest.name + ".lock")):
        if verified(dest, None, NATIVE_MODEL_SHA256):
            return dest
        try:
            import onnx
        except ImportError as exc:
            raise AssemblyError("The 'onnx' package is needed to edit Kokoro's graph.") from exc
        model = onnx.load(str(source))
        if not _move_sin(model) or not _square_by_product(model):
            raise AssemblyError(f"{source.name} is not the Kokoro graph this edit was written for.")
        model.opset_import.append(onnx.helper.make_opsetid(DOMAIN, 1))
        write_atomic(dest, model.SerializeToString())
        if sha256_of(dest) != NATIVE_MODEL_SHA256:
            dest.unlink(missing_ok=True)
            raise AssemblyError(f"{dest.name}: sha256 mismatch after editing the graph.")
        verified(dest, None, NATIVE_MODEL_SHA256)
    return dest


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
