"""docs/deploy.md's runbook, as written: every command runs from a fresh clone's root with
the tools the runbook itself installs, and the offline ones (`# offline`) really run.

A fresh clone is stood in for by a copy of the tracked files with this checkout's venv
linked in (`make install` is the step that builds it; here it is checked with `make -n`,
which needs neither network nor minutes)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "deploy.md"
# What a fresh clone plus the runbook's own steps provide; anything else must be spelled out.
TOOLS = {"aws", "docker", "make", "curl", "cp", "printf", "export", "cd", "sha256sum", "python3"}
FORBIDDEN = {"python", "npx", "voxhost", "cdk", "pip"}  # outside the venv, or not on PATH in a fresh clone


def _commands() -> list[str]:
    text = RUNBOOK.read_text()
    section = text[text.index("## Runbook"):text.index("## The stack")]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]
    return commands


def _first_word(command: str) -> str:
    words = command.split()
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value prefixes
        assignment = words.pop(0)
        inner = re.search(r"\$\((\S+)", assignment)
        if inner:  # KEY=$(tool ...): the tool is what runs
            return inner[1]
    return words[0] if words else ""


def test_every_command_uses_tools_a_fresh_clone_has():
    commands = _commands()
    assert len(commands) > 20
    for command in commands:
        word = _first_word(command)
        assert word not in FORBIDDEN, f"bare {word!r} in the runbook: {command}"
        assert word in TOOLS or word.startswith(".venv/bin/"), f"{word!r} is not installed by the runbook: {command}"
        for inner in re.findall(r"\$\((\S+)", command):
            assert inner not in FORBIDDEN, f"bare {inner!r} inside $(...): {command}"
    every_make = [c for c in commands if c.startswith("make ") and "install" not in c]
    assert every_make and all("ENV=" in c for c in every_make if "bootstrap" not in c)
    text = RUNBOOK.read_text()
    assert "Confirm the alarm email" in text and "PendingConfirmation" in text
    assert "Do not deploy before both are approved" in text


def test_every_make_target_the_runbook_names_exists():
    makefile = (ROOT / "Makefile").read_text()
    for command in _commands():
        if command.startswith("make "):
            target = command.split()[1]
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), target


@pytest.fixture
def clone(tmp_path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    dest = tmp_path / "voxhost"
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


def test_offline_steps_run_as_written(clone):
    offline = [c.rsplit("# offline", 1)[0].strip() for c in _commands() if c.endswith("# offline")]
    assert len(offline) >= 5
    script = ["set -euo pipefail"]
    for command in offline:
        if command.startswith("make install"):
            command = command.replace("make install", "make -n install", 1)  # the venv is there already
        script.append(command)
    script.append('test -s plan/plan.md && test -s plan/plan.png')  # the plan, drawn
    script.append('test ${#KEY} -ge 40 && test ${#HASH} -eq 64')  # a key and its sha256
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=clone, capture_output=True, text=True,
                            env=env, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (clone / "deploy/aws/env/prod.json").is_file()
