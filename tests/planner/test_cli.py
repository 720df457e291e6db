"""`voxhost plan` and `voxhost bench` end to end (real eval speech, real models)."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from voxhost.cli.main import app
from voxhost.planner.inputs import load_inputs
from voxhost.planner.model import capacity

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plan_writes_report_and_plot(tmp_path, repo_root):
    result = runner.invoke(app, ["plan", "-i", str(repo_root / "deploy/plan.example.yaml"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "plan.md").read_text()
    for expected in ("$1,087.50", "$10,875.00", "$108,750.00",  # cloud API column, to the cent
                     "| **GPUs needed at the peak** | **2** | **13** | **125** |",
                     "Load grows 100x from 50 to 5,000 players, but the claimed GPUs grow 10x",
                     "STT minutes per player per month | 1,500", "published: XTTS-v2", "![monthly cost"):
        assert expected in report, expected
    png = (tmp_path / "plan.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 20_000


def test_plan_rejects_bad_input(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("usage: {speech_share: 2}\n")
    result = runner.invoke(app, ["plan", "-i", str(bad), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert not (tmp_path / "out" / "plan.md").exists()


def test_bench_output_is_planner_input(tmp_path):
    out = tmp_path / "bench.yaml"
    result = runner.invoke(app, [
        "bench", "-o", str(out), "--clips", "1", "--concurrency", "1,2", "--stt-model", "whisper-tiny.en",
        "--tts-engine", "voxhost.planner.tts_adapters:piper", "--tts-sentences", "1", "--gpu", "cpu",
    ])
    assert result.exit_code == 0, result.output
    rows = {r["kind"]: r for r in yaml.safe_load(out.read_text())["throughput"]}
    assert rows["stt"]["model"] == "whisper-tiny.en" and rows["stt"]["source"].startswith("measured")
    assert 0 < rows["stt"]["rtf"] < 5 and rows["stt"]["streams"] >= 1 / rows["stt"]["rtf"] * 0.999
    assert rows["tts"]["model"] == "piper-joe-medium" and rows["tts"]["rtf"] > 0

    # The planner reads it as-is: a CPU fleet (c7i.xlarge) running the measured models.
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text("fleet: {instance_type: c7i.xlarge}\nstt_model: whisper-tiny.en\n"
                         "tts_model: piper-joe-medium\n")
    inputs = load_inputs([plan_file, out])
    assert inputs.throughput_for("stt", "whisper-tiny.en").rtf == rows["stt"]["rtf"]
    cap = capacity(inputs, 50)
    expected_tts = 50 * 850_000 / 15 / (730 * 3600) * 3 * rows["tts"]["rtf"]
    assert abs(cap.tts_gpu_load_peak - expected_tts) < 1e-9 and cap.gpus_peak >= 1


def test_bench_rejects_bad_concurrency(tmp_path):
    result = runner.invoke(app, ["bench", "-o", str(tmp_path / "b.yaml"), "--concurrency", "0"])
    assert result.exit_code != 0 and not (tmp_path / "b.yaml").exists()
