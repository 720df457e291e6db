"""Phrase cache: synthesised lines, content-addressed, in memory and on disk.

The key hashes everything that shapes the bytes: the normalised text, the
voice's fingerprint (its weights/style data, not just its name, so a changed
definition never serves old audio), the engine and model version, the speed
and the format. Game barks repeat; a hit skips synthesis entirely.

Memory tier: an LRU bounded in bytes, per process.
Disk tier: one file per entry under <dir>/<key[:2]>/<key>, bounded in bytes,
LRU by mtime (touched on a hit). Several processes may share the directory:
writes are temp file + rename (readers see a whole file or none), eviction
runs under an exclusive file lock, and a file evicted under a reader is just
a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from voxhost.ops.locks import file_lock

log = logging.getLogger("voxhost.cache")

CACHE_SCHEMA = 1  # bump when the encoders or the stitching change the bytes
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600


def phrase_key(*, text: str, voice_fingerprint: str, engine_version: str, speed: float, fmt: str,
               languages: list[str] | None = None) -> str:
    """`languages`: each chunk's language. The same text read in another language is other audio;
    an all-English line keys as it always has, so caches warmed before languages existed still hit."""
    fields = {"v": CACHE_SCHEMA, "text": text, "voice": voice_fingerprint, "engine": engine_version,
              "speed": round(float(speed), 4), "format": fmt}
    if languages and set(languages) != {"en"}:
        fields["languages"] = languages
    payload = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class MemoryTier:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def entries(self) -> int:
        return len(self._items)

    @property
    def size(self) -> int:
        return self._bytes


class DiskTier:
    def __init__(self, directory: Path, max_bytes: int):
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self._approx: int | None = None  # this process's running estimate; the truth is on disk
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / key

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            os.utime(path)  # LRU: a hit is a use
        except FileNotFoundError:
            return None
        except OSError as exc:  # unreadable entry: a miss, not an error
            log.warning("phrase cache read failed: %s", exc)
            return None
        return data or None

    def put(self, key: str, data: bytes) -> None:
        if not data or len(data) > self.max_bytes:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a full or read-only disk degrades to no disk tier
            log.warning("phrase cache write failed: %s", exc)
            return
        with self._lock:
            if self._approx is None:
                self._approx = self._scan_total()
            else:
                self._approx += len(data)
            over = self._approx > self.max_bytes
        if over:
            self.evict()

    def _entries(self) -> list[tuple[float, int, Path]]:
        out: list[tuple[float, int, Path]] = []
        if not self.dir.is_dir():
            return out
        now = time.time()
        for sub in os.scandir(self.dir):
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for entry in os.scandir(sub.path):
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                if entry.name.startswith(_TMP_PREFIX):
                    if now - stat.st_mtime > _STALE_TMP_SECONDS:  # left by a killed writer
                        Path(entry.path).unlink(missing_ok=True)
                    continue
                out.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        return out

    def _scan_total(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def evict(self, target_fraction: float = 0.9) -> int:
        """Delete least recently used entries until under target; returns bytes freed."""
        freed = 0
        with file_lock(self.dir / ".evict.lock"):
            entries = sorted(self._entries())
            total = sum(size for _, size, _ in entries)
            target = int(self.max_bytes * target_fraction)
            for _, size, path in entries:
                if total <= target:
                    break
                path.unlink(missing_ok=True)
                total -= size
                freed += size
        with self._lock:
            self._approx = total
        return freed

    def enforce(self) -> int:
        """Rescan and evict if over budget. Each process only counts its own writes
        between scans, so a batch writer calls this when it is done."""
        total = self._scan_total()
        with self._lock:
            self._approx = total
        return self.evict() if total > self.max_bytes else 0

    def clear(self) -> int:
        with file_lock(self.dir / ".evict.lock"):
            entries = self._entries()
            for _, _, path in entries:
                path.unlink(missing_ok=True)
        with self._lock:
            self._approx = 0
        return len(entries)

    def stats(self) -> dict:
        entries = self._entries()
        return {"dir": str(self.dir), "entries": len(entries), "bytes": sum(s for _, s, _ in entries),
                "max_bytes": self.max_bytes}


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stores: int = 0


class PhraseCache:
    def __init__(self, directory: Path, *, memory_bytes: int, disk_bytes: int):
        self.memory = MemoryTier(memory_bytes)
        self.disk = DiskTier(directory, disk_bytes) if disk_bytes > 0 else None
        self.counters = CacheStats()

    def get(self, key: str) -> bytes | None:
        data = self.memory.get(key)
        if data is None and self.disk is not None:
            data = self.disk.get(key)
            if data is not None:
                self.memory.put(key, data)  # promote: the next hit needs no file read
        if data is None:
            self.counters.misses += 1
        else:
            self.counters.hits += 1
        return data

    def put(self, key: str, data: bytes) -> None:
        self.memory.put(key, data)
        if self.disk is not None:
            self.disk.put(key, data)
        self.counters.stores += 1

    def clear(self) -> int:
        self.memory.clear()
        return self.disk.clear() if self.disk is not None else 0

    def stats(self) -> dict:
        return {
            "memory": {"entries": self.memory.entries, "bytes": self.memory.size, "max_bytes": self.memory.max_bytes},
            "disk": self.disk.stats() if self.disk is not None else None,
            "hits": self.counters.hits, "misses": self.counters.misses, "stores": self.counters.stores,
        }

    @classmethod
    def from_settings(cls, settings) -> PhraseCache | None:
        if not settings.tts_cache_enabled:
            return None
        return cls(settings.tts_cache_dir, memory_bytes=settings.tts_cache_memory_bytes,
                   disk_bytes=settings.tts_cache_disk_bytes)
