"""The drawing commands without matplotlib (an optional extra): their text still comes out,
with a note naming the extra that draws the plot too."""

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


def test_plan_prints_its_text_and_names_the_extra_without_matplotlib(no_matplotlib, tmp_path):
    result = CliRunner().invoke(app, ["plan", "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.output
    assert "voxhost[plot]" in result.output and "players" in result.output
    assert (tmp_path / "plan" / "plan.md").is_file() and not (tmp_path / "plan" / "plan.png").exists()
    assert "plan.png" not in (tmp_path / "plan" / "plan.md").read_text()  # no link to a plot that isn't there


def test_loadtest_prints_its_table_and_names_the_extra_without_matplotlib(no_matplotlib, base_url, tmp_path):
    result = CliRunner().invoke(app, ["loadtest", "--url", base_url, "--players", "1", "--stage-seconds", "2",
                                      "--think-s", "0.5", "--live-weight", "0", "--tts-weight", "0",
                                      "--plot", str(tmp_path / "load.png")], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "voxhost[plot]" in result.output and not (tmp_path / "load.png").exists()
    assert "rest" in result.output and "p50/p95/p99 ms" in result.output
    assert "{'" not in result.output  # no dict reprs
    assert max(len(line) for line in result.output.splitlines()) <= 80, result.output


def test_plan_draws_when_matplotlib_is_there(tmp_path):
    result = CliRunner().invoke(app, ["plan", "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plan" / "plan.png").stat().st_size > 0
