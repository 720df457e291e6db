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


# Wheels that declare no licence in their metadata, each checked by hand: what it is.
_UNDECLARED = {
    "pyworld-prebuilt": "MIT (pyworld's; the prebuilt wheel declares none)",
    "espeakng-loader": "GPL-3.0 (it carries the espeak-ng library and data)",
}
_GPL = {"espeakng-loader"}


def _licence(dist) -> str:
    meta = dist.metadata
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return " | ".join(filter(None, [meta.get("License-Expression"), (meta.get("License") or "")[:200],
                                    *classifiers]))


def _default_closure() -> dict[str, object]:
    """Every distribution `pip install voxhost` installs (no extras), from the installed metadata."""
    from importlib import metadata

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [(Requirement(spec), "") for spec in project["dependencies"]]
    seen: dict[str, object] = {}
    visited: set[tuple[str, str]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        wanted = [""] + sorted(req.extras)
        if all((name, e) in visited for e in wanted):
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:  # not installed here: cannot be checked, so say so
            raise AssertionError(f"{req.name} (a default dependency) is not installed; run `make install-test`")
        seen[name] = dist
        for e in wanted:
            if (name, e) in visited:
                continue
            visited.add((name, e))
            todo += [(Requirement(spec), e) for spec in dist.requires or []]
    return seen


def test_the_default_install_pulls_no_gpl_code():
    """`pip install voxhost` stays free of GPL code: GPL engines and readers (piper, espeak-ng) live in
    extras. LGPL (num2words) is allowed: it is not the GPL."""
    offenders = {}
    for name, dist in _default_closure().items():
        licence = _licence(dist)
        if not licence or licence.strip().upper() == "UNKNOWN":
            assert name in _UNDECLARED, f"{name} declares no licence: check it and add it to _UNDECLARED"
            if name in _GPL:
                offenders[name] = _UNDECLARED[name]
            continue
        text = licence.upper().replace("LGPL", "").replace("LESSER GENERAL PUBLIC", "")
        if "GPL" in text or "GENERAL PUBLIC LICENSE" in text:
            offenders[name] = licence[:80]
    assert not offenders, f"GPL code in the default install: {offenders}"
