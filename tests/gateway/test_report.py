"""`voxhost migrate report`: markdown + PNG, and a recommendation only when every criterion holds."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from voxhost.cli.main import app


def write_log(path, n, *, errors_per_10_words, local_s=0.5, failures=0):
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"ts": 1_800_000_000 + 60 * i, "route": "transcriptions", "model": "whisper-tiny.en",
                                "language": "en", "local_s": local_s, "upstream_s": 0.9, "local_usd": 0.00002,
                                "upstream_usd": 0.0003, "ok": True, "local_ok": True, "words": 10,
                                "errors": errors_per_10_words}) + "\n")
        for i in range(failures):
            f.write(json.dumps({"ts": 1_800_000_000 + 60 * i, "route": "transcriptions", "model": "whisper-tiny.en",
                                "language": "en", "local_s": 0.01, "upstream_s": None, "local_usd": 0.0,
                                "upstream_usd": 0.0, "ok": False, "local_ok": False}) + "\n")
        f.write(json.dumps({"ts": 1_800_000_100, "route": "speech", "model": "other", "language": "auto",
                            "local_s": 0.3, "upstream_s": 0.6, "local_usd": 0.00001, "upstream_usd": 0.0006,
                            "ok": True, "local_ok": True}) + "\n")


def run(tmp_path, log, *args):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["migrate", "report", "--shadow-log", str(log), "--out", str(out),
                                      "--current-share", "0.1", *args])
    assert result.exit_code == 0, result.output
    assert (out / "migration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return (out / "migration.md").read_text()


def test_recommends_the_next_phase_when_every_criterion_holds(tmp_path):
    log = tmp_path / "shadow.jsonl"
    write_log(log, 60, errors_per_10_words=0)
    text = run(tmp_path, log)
    assert "Recommendation: move to local share 50%" in text
    assert "| whisper-tiny.en | en | 60 | 600 | 100.0% |" in text


def test_holds_back_and_says_why(tmp_path):
    log = tmp_path / "shadow.jsonl"
    write_log(log, 60, errors_per_10_words=2, local_s=3.0, failures=5)
    text = run(tmp_path, log)
    assert "Recommendation: stay at local share 10%" in text
    assert "agreement 80.0% < 90%" in text and "p95 latency 3.00 s > 2 s" in text and "error rate" in text
    # The thresholds are the operator's: relaxed, the same evidence passes.
    text = run(tmp_path, log, "--min-agreement", "0.75", "--max-p95-s", "4", "--max-error-rate", "0.1")
    assert "move to local share 50%" in text


def test_too_few_samples_is_no_evidence(tmp_path):
    log = tmp_path / "shadow.jsonl"
    write_log(log, 5, errors_per_10_words=0)
    assert "only 5 samples (need 50)" in run(tmp_path, log)


def test_a_missing_log_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["migrate", "report", "--shadow-log", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "cannot read the shadow log" in result.output
