"""`voxhost loadtest` refuses a remote server unless told it is the operator's own (runbook step 10)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from voxhost.cli.main import app
from voxhost.loadtest.runner import check_local


def test_remote_url_refused_without_the_flag():
    result = CliRunner().invoke(app, ["loadtest", "--url", "https://voice.studio.example"])
    assert result.exit_code == 2 and "--allow-remote" in result.output


def test_remote_url_allowed_with_the_flag():
    check_local("http://127.0.0.1:8000")
    check_local("https://voice.studio.example", allow_remote=True)
    with pytest.raises(ValueError, match="only targets this machine"):
        check_local("https://voice.studio.example")
