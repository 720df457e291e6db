"""requirements.lock must cover pyproject.toml: CI, developers and the image install
through it (Makefile: `pip install -c requirements.lock`), so a dependency added without
`make lock` would install unpinned, and a pin outside pyproject's range would not install."""
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.split(";")[0].strip()
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = [project["dependencies"], *project.get("optional-dependencies", {}).values()]
    return [Requirement(spec) for group in groups for spec in group]


def test_every_declared_dependency_is_locked_within_its_range():
    pins = _locked()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}: run `make lock`")


def test_the_install_and_the_image_go_through_the_lock():
    assert "-c requirements.lock" in (ROOT / "Makefile").read_text()
    for dockerfile in ("Dockerfile", "Dockerfile.cpu"):
        assert "requirements.lock" in (ROOT / "deploy" / "docker" / dockerfile).read_text()
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text().splitlines()
