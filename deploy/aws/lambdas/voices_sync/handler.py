"""Designed voices (and their consent records) in every region within a minute.

Each region's tasks keep voices on their EFS (VOXHOST_VOICES_DIR); S3 in the primary region
is the source of truth between regions. Every minute, in every region, this function
reconciles the region's voices directory (EFS, mounted here) with s3://<bucket>/voices/,
both ways, against the state of its last run (kept beside the voices, `.sync-state.json`):

- changed or added on one side only since the last run: copied to the other side;
- deleted on one side only: deleted on the other (a voice deleted through the API stays
  deleted everywhere instead of coming back from the other copy);
- changed on both sides (two regions edited one voice within the same minute): S3, the
  source of truth, wins, and the run says so in its log.

Files are small JSON documents; each is written to EFS atomically (temp file, rename), as
the server writes them, so a server never reads half a voice. Content is compared by MD5
(S3's ETag of a single-part upload).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger()
log.setLevel(logging.INFO)

STATE = ".sync-state.json"


def _local(root: Path) -> dict[str, str]:
    out = {}
    for path in root.rglob("*.json"):
        rel = path.relative_to(root).as_posix()
        if path.name == STATE or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        out[rel] = hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - S3's ETag, not security
    return out


def _remote(s3, bucket: str, prefix: str) -> dict[str, str]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents") or []:
            rel = obj["Key"][len(prefix):]
            if rel.endswith(".json"):
                out[rel] = obj["ETag"].strip('"')
    return out


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def sync(s3, bucket: str, root: Path, prefix: str = "voices/") -> dict:
    root.mkdir(parents=True, exist_ok=True)
    state_path = root / STATE
    base = json.loads(state_path.read_text()) if state_path.is_file() else {}
    local, remote = _local(root), _remote(s3, bucket, prefix)
    counts = {"uploaded": 0, "downloaded": 0, "deleted_remote": 0, "deleted_local": 0, "conflicts": 0}
    state = {}
    for rel in sorted(set(local) | set(remote) | set(base)):
        here, there, was = local.get(rel), remote.get(rel), base.get(rel)
        if here == there:
            if here is not None:
                state[rel] = here
            continue
        if there == was:  # only this region changed it
            if here is None:
                s3.delete_object(Bucket=bucket, Key=prefix + rel)
                counts["deleted_remote"] += 1
            else:
                s3.put_object(Bucket=bucket, Key=prefix + rel, Body=(root / rel).read_bytes(),
                              ContentType="application/json")
                state[rel] = here
                counts["uploaded"] += 1
            continue
        if here != was:  # changed on both sides since the last run: the source of truth wins
            counts["conflicts"] += 1
            log.warning("voice %s changed here and in S3 since the last sync: keeping S3's", rel)
        if there is None:
            (root / rel).unlink(missing_ok=True)
            counts["deleted_local"] += 1
        else:
            _write(root / rel, s3.get_object(Bucket=bucket, Key=prefix + rel)["Body"].read())
            state[rel] = there
            counts["downloaded"] += 1
    _write(state_path, json.dumps(state, sort_keys=True).encode())
    return counts


def handler(event, context=None, s3=None, environ=os.environ) -> dict:
    if s3 is None:
        import boto3

        s3 = boto3.client("s3", region_name=environ["BUCKET_REGION"])
    counts = sync(s3, environ["BUCKET"], Path(environ["VOICES_DIR"]))
    log.info("voices sync: %s", json.dumps(counts))
    return counts
