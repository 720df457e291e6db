"""What each loaded model costs in resident memory: the default server's models
loaded (and warmed up) one by one in this process, RSS and anonymous memory after each.

  python bench/server_memory.py                  # the defaults (VOXHOST_STT_MODELS, VOXHOST_TTS_ENGINES)

The issue's goal is the whole default server <= 800 MB RSS after warm-up; this says
where the memory goes (py-spy samples CPU, not memory). Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import gc
from pathlib import Path


def memory() -> dict[str, float]:
    """MB, from /proc/self/smaps_rollup (Rss: resident; Anonymous: heap and arenas,
    not file-backed pages such as mapped model files and shared libraries)."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) / 1024
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {"rss": fields["Rss"], "anonymous": fields["Anonymous"], "hwm": int(status["VmHWM"].split()[0]) / 1024}


def main() -> None:
    from voxhost.ops.memory import configure_allocator, trim

    configure_allocator()  # as the server does at start-up
    rows = [("python + numpy", memory())]
    from voxhost.api.app import create_app  # noqa: F401 - everything the server imports
    from voxhost.engines.stt.registry import SttRegistry
    from voxhost.engines.tts.registry import TtsRegistry
    from voxhost.ops.settings import Settings
    rows.append(("voxhost imported", memory()))
    settings = Settings()
    stt, tts = SttRegistry(settings), TtsRegistry(settings)
    for name in settings.stt_models:
        stt.load(name)
        gc.collect()
        rows.append((f"+ STT {name} (warmed up)", memory()))
    for name in settings.tts_engines:
        tts.load(name)
        gc.collect()
        rows.append((f"+ TTS {name} (warmed up)", memory()))
    trim()  # the server trims when idle (ops/memory.py)
    rows.append(("after malloc_trim (as the idle server)", memory()))
    print("| after | RSS MB | step MB | anonymous MB | VmHWM MB |\n|---|---|---|---|---|")
    previous = 0.0
    for label, m in rows:
        print(f"| {label} | {m['rss']:.0f} | {m['rss'] - previous:+.0f} | {m['anonymous']:.0f} | {m['hwm']:.0f} |")
        previous = m["rss"]


if __name__ == "__main__":
    main()
