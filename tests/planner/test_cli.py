"""`voxhost plan` and `voxhost bench` end to end (real eval speech, real models)."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from voxhost.cli.main import app
from voxhost.planner.inputs import load_inputs
from voxhost.planner.model import capacity, cpu_per_unit

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plan_writes_report_and_plot(tmp_path, repo_root):
    result = runner.invoke(app, ["plan", "-i", str(repo_root / "deploy/plan.example.yaml"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "plan.md").read_text()
    for expected in ("| **Total** | **$1,103** | **$11,030** | **$110,300** |",  # the document's cloud column
                     "| Total, design document | $1,103 | $11,030 | $110,300 |",
                     "| **GPU instances at the peak** | **1** (GPU) | **3** (GPU) | **21** (GPU) |",
                     "Load grows 100x from 50 to 5,000 players, but the claimed GPUs grow 10x",
                     "STT minutes per player per month (given) | 3,600", "TTS model: hibari on cpu",
                     "max_tasks=10: deploy with -c max_tasks=21", "![monthly cost"):
        assert expected in report, expected
    png = (tmp_path / "plan.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 20_000
    # The terminal summary: transposed, nothing cut at 80 columns, the max_tasks warning.
    lines = result.output.splitlines()
    assert "…" not in result.output and "$110,300" in result.output
    assert any(line.startswith("│ cloud API /mo") for line in lines)
    assert "warning: 5,000 players need 21 tasks" in result.output


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
        "--tts-engine", "piper", "--tts-sentences", "1", "--gpu", "cpu",
    ])
    assert result.exit_code == 0, result.output
    rows = {r["kind"]: r for r in yaml.safe_load(out.read_text())["throughput"]}
    assert rows["stt"]["model"] == "whisper-tiny.en" and rows["stt"]["source"].startswith("measured")
    assert 0 < rows["stt"]["rtf"] < 5 and rows["stt"]["streams"] >= 1 / rows["stt"]["rtf"] * 0.999
    assert rows["tts"]["model"] == "piper" and rows["tts"]["rtf"] > 0
    # CPU as process time (a CPU run: the model's included), read by the planner's CPU budget.
    assert rows["stt"]["cpu_s_per_request"] > 0 and rows["tts"]["cpu_s_per_char"] > 0

    # The planner reads it as-is: a CPU fleet (c7i.xlarge) running the measured models.
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text("fleet: {instance_type: c7i.xlarge}\nstt_model: whisper-tiny.en\n"
                         "tts_model: piper\n")
    inputs = load_inputs([plan_file, out])
    assert inputs.throughput_for("stt", "whisper-tiny.en").rtf == rows["stt"]["rtf"]
    cap = capacity(inputs, 50)
    expected_tts = 50 * 30_667 / 15 / (730 * 3600) * 3 * rows["tts"]["rtf"]
    assert abs(cap.tts_gpu_load_peak - expected_tts) < 1e-9 and cap.gpus_peak >= 1
    assert cpu_per_unit(inputs) == (rows["stt"]["cpu_s_per_request"], rows["tts"]["cpu_s_per_char"])


def test_bench_rejects_bad_concurrency(tmp_path):
    result = runner.invoke(app, ["bench", "-o", str(tmp_path / "b.yaml"), "--concurrency", "0"])
    assert result.exit_code != 0 and not (tmp_path / "b.yaml").exists()
