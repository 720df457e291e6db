"""Versioned models: a manifest of every file's sha256, written at release, checked at start.

`voxhost models-manifest DIR --version V` writes DIR/manifest.json
({"version": V, "files": {relative path: sha256}}). A server started with
VOXHOST_MODELS_MANIFEST checks every listed file before it loads a model: a file
missing, truncated by an interrupted sync or changed since the release makes the load
fail, so /ready never turns 200, the load balancer never sends the task traffic, and
the deployment's circuit breaker rolls the service back to the version that worked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

NAME = "manifest.json"
CHUNK = 1 << 20


class ManifestMismatch(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(directory: Path) -> list[Path]:
    # Hidden files and folders (the hub's .locks, partial downloads) are not part of a release.
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != NAME
                  and not any(part.startswith(".") for part in p.relative_to(directory).parts))


def write_manifest(directory: Path, version: str, progress=None) -> dict:
    directory = Path(directory)
    files = _files(directory)
    if not files:
        raise ManifestMismatch(f"{directory} holds no model files")
    entries = {}
    for path in files:
        entries[path.relative_to(directory).as_posix()] = sha256_file(path)
        if progress is not None:
            progress(path)
    manifest = {"version": version, "files": entries}
    (directory / NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def verify_manifest(manifest_path: Path) -> dict:
    """Every file the manifest lists, beside it, with its sha256; raises ManifestMismatch naming each
    one that is missing or differs. Returns the manifest."""
    manifest_path = Path(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise ManifestMismatch(f"model manifest {manifest_path} unreadable: {exc}") from None
    root = manifest_path.parent
    bad = []
    for relative, expected in sorted(files.items()):
        path = root / relative
        if not path.is_file():
            bad.append(f"{relative} missing")
        elif sha256_file(path) != expected:
            bad.append(f"{relative} differs")
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ManifestMismatch(f"models version {manifest.get('version', '?')} at {root} fails its manifest: {shown}")
    return manifest
