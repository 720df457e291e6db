"""Pre-rendered lines on a CDN: render each (voice, text) once, upload it content-addressed, and
write the manifest a game looks lines up in (`voxhost cache publish`).

Barks and scripted dialogue never change, so a game can fetch them from CloudFront (the stack's
`cdn` bucket, private, behind origin access control) at patch time or on demand, and no GPU or
CPU renders them again. Layout under the destination prefix:

    lines/<sha256 of the audio>.<format>    the audio; a changed line is a new file, so every
                                            file is immutable (cached a year at the edge)
    manifests/<sha256 of the manifest>.json this publication's manifest, immutable too
    manifest.json                           the latest manifest (cached a minute)

A manifest entry maps what the game asks for (voice, model, text, speed, format) and what
the audio was made from (the engine, its version, the voice's design fingerprint, the
phrase-cache key) to the file's URL (relative to the prefix), its sha256 and size. Rows the
phrase cache already holds are not synthesised again; files already in the bucket are not
uploaded again (their name is their content).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlparse

CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                 "wav": "audio/wav", "pcm": "application/octet-stream"}
IMMUTABLE = "public, max-age=31536000, immutable"
LATEST = "public, max-age=60"


@dataclass(frozen=True)
class Destination:
    bucket: str
    prefix: str  # without a trailing slash; may be empty

    @classmethod
    def parse(cls, url: str) -> Destination:
        parts = urlparse(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"--to must be s3://bucket/prefix, got {url!r}")
        return cls(parts.netloc, parts.path.strip("/"))

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative


@dataclass(frozen=True)
class Rendered:
    voice: str
    text: str
    audio: bytes
    engine: str
    engine_version: str
    voice_fingerprint: str
    phrase_key: str
    cache: str  # "hit" (the phrase cache had it) or "miss"


def _exists(s3, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


async def publish(rows: Iterable[tuple[str, str]], render: Callable[[str, str], Awaitable[Rendered]], s3,
                  destination: Destination, *, model: str, fmt: str, speed: float,
                  on_row: Callable[[Rendered | None, str | None], None] = lambda r, e: None) -> dict:
    """Render every row (through `render`), upload what the bucket lacks, write the manifests.
    Returns the manifest; rows that fail are listed under "failed" and published without."""
    entries, failed, uploaded = [], [], 0
    for voice, text in rows:
        try:
            line = await render(voice, text)
        except Exception as exc:  # a bad row (unknown voice, nothing pronounceable) must not stop the rest
            message = getattr(exc, "message", None) or str(exc)
            failed.append({"voice": voice, "text": text, "error": message})
            on_row(None, message)
            continue
        digest = hashlib.sha256(line.audio).hexdigest()
        relative = f"lines/{digest}.{fmt}"
        key = destination.key(relative)
        if not _exists(s3, destination.bucket, key):
            s3.put_object(Bucket=destination.bucket, Key=key, Body=line.audio,
                          ContentType=CONTENT_TYPES.get(fmt, "application/octet-stream"), CacheControl=IMMUTABLE)
            uploaded += 1
        entries.append({"voice": voice, "text": text, "model": model, "speed": speed, "format": fmt,
                        "engine": line.engine, "engine_version": line.engine_version,
                        "voice_fingerprint": line.voice_fingerprint, "phrase_key": line.phrase_key,
                        "url": relative, "sha256": digest, "bytes": len(line.audio)})
        on_row(line, None)
    manifest = {"published_at": int(time.time()), "lines": entries, "failed": failed,
                "uploaded": uploaded}
    body = json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False).encode()
    manifest_digest = hashlib.sha256(body).hexdigest()
    s3.put_object(Bucket=destination.bucket, Key=destination.key(f"manifests/{manifest_digest}.json"), Body=body,
                  ContentType="application/json", CacheControl=IMMUTABLE)
    s3.put_object(Bucket=destination.bucket, Key=destination.key("manifest.json"), Body=body,
                  ContentType="application/json", CacheControl=LATEST)
    manifest["manifest"] = f"manifests/{manifest_digest}.json"
    return manifest
