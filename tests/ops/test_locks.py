"""The shared file lock: exclusive across processes, and owned by ops/ so that
cache/ needs nothing from engines/."""

from __future__ import annotations

import ast
import multiprocessing
import time
from pathlib import Path

import voxhost
from voxhost.ops.locks import file_lock


def _hold(path: str, entered, seconds: float) -> None:
    with file_lock(Path(path)):
        entered.set()
        time.sleep(seconds)
        Path(path + ".released").touch()  # written inside the lock, just before letting go


def test_a_second_process_waits_for_the_lock(tmp_path):
    lock = tmp_path / "sub" / "x.lock"  # its folder is made on demand
    entered = multiprocessing.get_context("fork").Event()
    holder = multiprocessing.get_context("fork").Process(target=_hold, args=(str(lock), entered, 0.5))
    holder.start()
    try:
        assert entered.wait(10)
        with file_lock(lock):
            assert Path(str(lock) + ".released").exists()  # we got it only once the holder let go
    finally:
        holder.join(10)


def test_cache_imports_nothing_from_engines():
    cache = Path(voxhost.__file__).parent / "cache"
    imported = set()
    for path in cache.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert not [m for m in imported if m.startswith("voxhost.engines")]
