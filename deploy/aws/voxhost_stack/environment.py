"""Per-environment settings: deploy/aws/env/<name>.json, read by every step.

A deploy used to take its settings from `-c` flags typed each time: a redeploy without
`-c alarm_email=...` silently unsubscribed the on-call address, one without `max_tasks`
reset the cap. Now each environment's settings are a file in the repository (reviewed,
versioned), `-c env=<name>` reads it, and a key the stack does not know is an error
rather than a setting that silently does nothing. A `-c key=value` on the command line
still wins for that one run (a release's image tag); `make release` writes the tag it
deployed back into the file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from voxhost_stack.config import StackConfig

ENV_DIR = Path(__file__).resolve().parents[1] / "env"
APP_KEYS = {"stack_name", "nag"}  # read by app.py, not StackConfig


def environment_file(name: str) -> Path:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"environment name {name!r}: letters, digits, '-' and '_' only")
    return ENV_DIR / f"{name}.json"


def load_environment(name: str) -> dict:
    path = environment_file(name)
    if not path.is_file():
        known = sorted(p.stem for p in ENV_DIR.glob("*.json"))
        raise FileNotFoundError(f"no environment file {path} (known: {', '.join(known) or 'none'}); "
                                "copy deploy/aws/env/example.json")
    values = json.loads(path.read_text())
    fields = {f.name for f in dataclasses.fields(StackConfig)}
    unknown = sorted(set(values) - fields - APP_KEYS)
    if unknown:
        raise ValueError(f"{path.name}: unknown setting(s) {', '.join(unknown)} (see docs/deploy.md's context table)")
    return values


def apply_environment(node) -> str | None:
    """Fill the app's context from env/<name>.json for every key not given with -c."""
    name = node.try_get_context("env")
    if not name:
        return None
    for key, value in load_environment(name).items():
        if node.try_get_context(key) is None:
            node.set_context(key, value)
    return name
