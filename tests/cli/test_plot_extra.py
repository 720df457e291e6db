"""The drawing commands without matplotlib (an optional extra): a clear message
naming the extra, exit 2, and no work done first."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from voxhost.cli.main import app


@pytest.fixture
def no_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError


@pytest.mark.parametrize("args", [["plan", "--out", "{tmp}/plan"], ["loadtest", "--url", "http://127.0.0.1:9"]])
def test_drawing_commands_name_the_extra_to_install(no_matplotlib, tmp_path, args):
    result = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert "voxhost[plot]" in result.output and "matplotlib" in result.output
    assert not (tmp_path / "plan").exists()  # refused before writing anything


def test_plan_draws_when_matplotlib_is_there(tmp_path):
    result = CliRunner().invoke(app, ["plan", "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plan" / "plan.png").stat().st_size > 0
