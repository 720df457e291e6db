"""Bundled model assembly: atomic, verified, safe with concurrent processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from voxhost.engines.assembly import AssemblyError, assemble_file
from voxhost.engines.stt.bundled import WHISPER_BASE_SIZE


def test_two_processes_assemble_whisper_base_at_once(tmp_path):
    code = ("import sys; from pathlib import Path; from voxhost.engines.stt.bundled import assemble_whisper_base;"
            "print(assemble_whisper_base(Path(sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    model_dir = Path(outputs[0])
    assert outputs[0] == outputs[1]
    assert (model_dir / "model.bin").stat().st_size == WHISPER_BASE_SIZE
    assert {p.name for p in model_dir.iterdir()} >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.json"}
    assert not list(model_dir.glob("*.tmp")), "no temp files left behind"


def test_corrupt_file_is_reassembled(tmp_path):
    parts = [tmp_path / "a", tmp_path / "b"]
    parts[0].write_bytes(b"hello ")
    parts[1].write_bytes(b"world")
    dest = tmp_path / "out" / "model.bin"
    assemble_file(parts, dest, size=11)
    dest.write_bytes(b"truncated")
    assemble_file(parts, dest, size=11)
    assert dest.read_bytes() == b"hello world"


def test_checksum_mismatch_is_an_error_and_leaves_nothing(tmp_path):
    part = tmp_path / "a"
    part.write_bytes(b"data")
    dest = tmp_path / "out" / "model.bin"
    with pytest.raises(AssemblyError):
        assemble_file([part], dest, sha256="0" * 64)
    assert not dest.exists()
    assert not list(dest.parent.glob("*.tmp"))
