"""The README's config table documents every setting (one source of truth, kept in step)."""

from pathlib import Path

from voxhost.ops.settings import Settings


def test_every_setting_is_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`VOXHOST_{name.upper()}`" not in readme]
    assert not missing, f"document these in README.md's config table: {missing}"
