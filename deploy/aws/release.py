#!/usr/bin/env python3
"""`make release` helpers: the immutable tag for this commit, and recording it in the environment file.

    python deploy/aws/release.py tag                       # v<version>-<commit>, refuses a dirty tree
    python deploy/aws/release.py record ENV --image-tag T  # env/ENV.json gets image_tag T

The tag names the commit the image was built from, so a tag is never reused for other
code (the ECR repository refuses to overwrite it anyway: IMMUTABLE); recording it in the
environment file makes the next plain `make deploy ENV=...` deploy the same image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def tag() -> str:
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    if status.strip():
        raise SystemExit("release: the working tree has uncommitted changes; an image tag must name a commit")
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    version = (ROOT / "src" / "voxhost" / "__init__.py").read_text().split("__version__ = ")[1].split("\n")[0]
    return f"v{version.strip(chr(34) + chr(39))}-{commit}"


def record(env: str, image_tag: str) -> Path:
    from voxhost_stack.environment import environment_file, load_environment

    values = load_environment(env)
    values["image_tag"] = image_tag
    path = environment_file(env)
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tag")
    rec = sub.add_parser("record")
    rec.add_argument("env")
    rec.add_argument("--image-tag", required=True)
    args = parser.parse_args(argv)
    if args.command == "tag":
        print(tag())
    else:
        print(record(args.env, args.image_tag))


if __name__ == "__main__":
    main()
