"""Kokoro's graph with its per-phoneme durations as a second output.

The bundled Kokoro int8 ONNX graph returns only the waveform, yet lip-sync
needs when each phoneme is spoken. Its duration predictor's rounded, clipped
frame counts (`/encoder/Clip_output_0`, the tensor the alignment matrix is
built from by CumSum/Range) are exactly that, so we expose that tensor as an
extra graph output. Nothing else changes: the waveform stays bit-identical
(tests/engines/test_kokoro_timing.py checks it). The edited model is written
once at assembly, atomically and under a lock like the other assembled files,
and its sha256 is checked; it then replaces the plain graph in the engine.
"""

from __future__ import annotations

from pathlib import Path

from voxhost.engines.assembly import AssemblyError, edit_graph

DURATIONS_TENSOR = "/encoder/Clip_output_0"
TIMED_MODEL_FILE = "kokoro-v1.0.int8.durations.onnx"
# sha256 of the edited graph as onnx 1.2x serialises it (the source graph is sha256-pinned too).
TIMED_MODEL_SHA256 = "c05854b3bd1f64417db054d9e0ca1d75448647c72c9dd2a3f50ad365ef8c6b9d"
# The decoder's sound leads the frame counts by about 3 frames (75 ms): at the end of a
# pause, sound starts ~70 ms before the next phoneme's first frame; Kokoro's own pipeline
# (KPipeline.join_timestamps) takes the same 3 frames off. Chosen from those two, not
# tuned against the Whisper benchmark (bench/tts_lip_sync.py), which judges it.
AUDIO_LEAD_FRAMES = 3.0
SAMPLES_PER_FRAME = 600  # one duration frame = 600 samples at 24 kHz = 25 ms (waveform length / sum of frames)


def assemble_timed(source: Path) -> Path:
    """The graph at `source` with the durations output added, next to it."""
    return edit_graph(source, source.with_name(TIMED_MODEL_FILE), TIMED_MODEL_SHA256, _add_durations_output,
                      "expose Kokoro's phoneme durations")


def _add_durations_output(model) -> None:
    from onnx import TensorProto, helper

    if not any(DURATIONS_TENSOR in node.output for node in model.graph.node):
        raise AssemblyError(f"Kokoro's graph has no tensor {DURATIONS_TENSOR}.")
    model.graph.output.append(helper.make_tensor_value_info(DURATIONS_TENSOR, TensorProto.FLOAT, None))
