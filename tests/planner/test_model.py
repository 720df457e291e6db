"""Planner arithmetic, checked against hand-worked figures."""

from __future__ import annotations

import pytest

from voxhost.ops.cost import CLOUD_PRICES, INSTANCE_PRICES_PER_HOUR, blended_hourly
from voxhost.planner.inputs import CpuCost, PlanInputs, Throughput, load_inputs
from voxhost.planner.model import capacity, check_claims, cloud_cost, plan, tier

SECONDS_PER_MONTH = 730 * 3600.0

EXAMPLE = "deploy/plan.example.yaml"


def test_example_file_is_the_defaults(repo_root):
    assert load_inputs(repo_root / EXAMPLE) == PlanInputs()


def test_cloud_api_column_reproduced_exactly():
    """The design document's own inputs: 3,600 min ($1,080 / 50 / $0.006) and
    30,667 characters ($23 / 50 / $15 per 1M) per player per month, given."""
    got = {t.players: (round(t.cloud_stt), round(t.cloud_tts), round(t.cloud)) for t in plan(PlanInputs())}
    assert got == {
        50: (1_080, 23, 1_103),
        500: (10_800, 230, 11_030),
        5000: (108_000, 2_300, 110_300),
    }
    d = PlanInputs().design
    assert got == {n: (d.cloud_stt[n], d.cloud_tts[n], d.cloud_stt[n] + d.cloud_tts[n]) for n in got}


def test_cloud_prices_come_from_the_cost_model():
    inputs = PlanInputs()
    assert inputs.cloud.stt_per_minute == CLOUD_PRICES["whisper-1_per_minute"]
    assert inputs.fleet.hourly == INSTANCE_PRICES_PER_HOUR["g4dn.xlarge"]
    hd = inputs.model_copy(update={"cloud": inputs.cloud.model_copy(update={"tts_model": "tts-1-hd"})})
    assert cloud_cost(hd, 50) == pytest.approx((1080.0, 46.0005))


def _hand_inputs(utilisation: float) -> PlanInputs:
    # 100 players x 438 min x 60 s = 2,628,000 s = one month: 1 audio-s/s on average.
    # 100 x 394,200 chars / 15 chars/s = 2,628,000 s of synthesis: 1 audio-s/s too.
    return PlanInputs.model_validate({
        "players": [100],
        "usage": {"stt_minutes_per_player": 438, "tts_chars_per_player": 394_200, "peak_to_average": 4,
                  "speech_share": 0.5, "chars_per_audio_second": 15},
        "fleet": {"target_utilisation": utilisation, "min_gpus": 1},
        "stt_model": "m-stt", "tts_model": "m-tts",
        "throughput": [
            {"model": "m-stt", "kind": "stt", "gpu": "T4", "rtf": 0.1, "source": "hand"},
            {"model": "m-tts", "kind": "tts", "gpu": "T4", "rtf": 0.25, "source": "hand"},
        ],
    })


def test_capacity_hand_checked():
    assert SECONDS_PER_MONTH == 100 * 438 * 60
    cap = capacity(_hand_inputs(0.6), 100)
    # STT: 1 audio-s/s x 50% speech x 4 peak / 10 streams = 0.2 GPU; TTS: 1 x 4 / 4 streams = 1.0 GPU.
    assert cap.stt_gpu_load_peak == pytest.approx(0.2)
    assert cap.tts_gpu_load_peak == pytest.approx(1.0)
    assert cap.gpus_peak == 2  # 1.2 / 0.6 = 2.0 exactly: float noise must not buy a third GPU
    assert cap.gpus_average == 1  # 0.3 / 0.6 = 0.5 -> 1
    assert capacity(_hand_inputs(0.5), 100).gpus_peak == 3  # 2.4 -> 3


def test_capacity_scales_with_load_not_with_the_design_claims():
    inputs = PlanInputs()
    small, large = capacity(inputs, 50), capacity(inputs, 5000)
    assert large.gpu_load_peak == pytest.approx(100 * small.gpu_load_peak)
    # Published T4 figure: turbo RTF 0.064/2.7. TTS (hibari) runs on the CPU: no GPU load.
    assert small.stt_gpu_load_peak == pytest.approx(50 * 3600 * 60 * 0.5 / SECONDS_PER_MONTH * 3 * (0.064 / 2.7),
                                                    rel=1e-3)
    assert small.tts_gpu_load_peak == 0
    # CPU: hibari's RTF and the server's 0.6 ms per character, plus the measured CPU per ~3.3 s REST upload.
    chars, audio = 50 * 30_667 / SECONDS_PER_MONTH, 50 * 3600 * 60 / SECONDS_PER_MONTH
    rest = inputs.cpu.cpu_s_per_rest_request
    assert small.vcpu_peak == pytest.approx(3 * (chars / 15 * 0.006 + chars * 0.0006 + audio / 3.3 * rest))
    assert [capacity(inputs, n).gpus_peak for n in (50, 500, 5000)] == [1, 3, 21]
    # XTTS-v2 (what the document names) still prices on a T4 when asked for.
    xtts = PlanInputs(tts_model="xtts-v2")
    assert capacity(xtts, 50).tts_gpu_load_peak == pytest.approx(50 * 30_667 / 15 / SECONDS_PER_MONTH * 3 / 4)


def test_cpu_budget_is_never_hidden_by_the_gpu_count():
    """TTS and live sessions run on the CPU: 4 vCPU per instance bind before the T4 does (here
    with live sessions as heavy as the H200 run's upper bound, 0.3 vCPU each)."""
    inputs = PlanInputs.model_validate({"usage": {"live_share": 0.5}, "cpu": {"vcpu_per_live_stream": 0.3}})
    cap = capacity(inputs, 5000)
    audio_rate = 5000 * 3600 * 60 / SECONDS_PER_MONTH
    chars = 5000 * 30_667 / SECONDS_PER_MONTH
    rest = inputs.cpu.cpu_s_per_rest_request
    expected_vcpu = 3 * (audio_rate * 0.5 * 0.3 + audio_rate * 0.5 / 3.3 * rest + chars / 15 * 0.006 + chars * 0.0006)
    assert cap.vcpu_peak == pytest.approx(expected_vcpu)
    assert cap.cpu_bound == -(-round(expected_vcpu / 4 / 0.7, 9) // 1) > cap.gpu_bound == 21
    assert cap.gpus_peak == cap.cpu_bound and cap.limited_by == "CPU"


def test_rest_requests_cost_cpu_and_a_measured_row_wins_over_the_default():
    """REST uploads were priced at 0 CPU: 5,000 players' uploads alone now need vCPUs."""
    rest_only = {"usage": {"tts_chars_per_player": 0}}
    cap = capacity(PlanInputs.model_validate(rest_only), 5000)
    uploads = 5000 * 3600 * 60 / SECONDS_PER_MONTH / 3.3  # one ~3.3 s clip per request
    assert cap.vcpu_peak == pytest.approx(3 * uploads * CpuCost().cpu_s_per_rest_request) and cap.vcpu_peak > 4
    measured = PlanInputs.model_validate({**rest_only, "throughput": [
        {"model": "large-v3-turbo", "kind": "stt", "gpu": "T4", "rtf": 0.0237, "cpu_s_per_request": 0.01,
         "source": "voxhost bench"}]})
    assert capacity(measured, 5000).vcpu_peak == pytest.approx(3 * uploads * 0.01)


def test_a_measured_tts_cpu_figure_replaces_the_rtf_estimate():
    inputs = PlanInputs.model_validate({"usage": {"stt_minutes_per_player": 0}, "throughput": [
        {"model": "hibari", "kind": "tts", "gpu": "cpu", "rtf": 0.006, "cpu_s_per_char": 0.002, "source": "bench"}]})
    chars = 5000 * 30_667 / SECONDS_PER_MONTH
    assert capacity(inputs, 5000).vcpu_peak == pytest.approx(3 * chars * 0.002)


def test_the_plan_says_which_resource_binds():
    """Live sessions' buffers fill a g4dn.xlarge's 16 GB before its GPU or CPU when each holds enough."""
    base = {"usage": {"live_share": 1.0}, "cpu": {"vcpu_per_live_stream": 0.0}}
    assert capacity(PlanInputs.model_validate(base), 5000).limited_by == "GPU"
    heavy = PlanInputs.model_validate({**base, "memory": {"gb_per_live_stream": 0.5, "workers": 2}})
    cap = capacity(heavy, 5000)
    live_peak = 5000 * 3600 * 60 / SECONDS_PER_MONTH * 3
    free = 16 - 2 * 0.965 - 1.5  # two workers' models and the OS come first
    assert cap.live_streams_peak == pytest.approx(live_peak)
    assert cap.memory_bound == -(-round(live_peak * 0.5 / free / 0.9, 9) // 1) > cap.gpu_bound
    assert cap.gpus_peak == cap.memory_bound and cap.limited_by == "memory"
    heavy_live = {"usage": {"live_share": 0.5}, "cpu": {"vcpu_per_live_stream": 0.3}}  # the H200 run's upper bound
    assert capacity(PlanInputs.model_validate(heavy_live), 5000).limited_by == "CPU"
    # At the CPU per session measured unpinned (the default), the T4 binds first.
    assert capacity(PlanInputs.model_validate({"usage": {"live_share": 0.5}}), 5000).limited_by == "GPU"
    with pytest.raises(ValueError, match="no room"):
        capacity(PlanInputs.model_validate({"memory": {"workers": 16}}), 50)


def test_hours_per_month_both_shown():
    """AWS bills 730 h; the document prices 720 h. The rate of audio per second, and the
    hours paid, both follow the month's length."""
    at_720 = PlanInputs(hours_per_month=720)
    t730, t720 = tier(PlanInputs(), 50), tier(at_720, 50)
    assert t730.self_hosted.lines["GPU instances"] == pytest.approx(730 * 0.526)
    assert t720.self_hosted.lines["GPU instances"] == pytest.approx(720 * 0.526)
    assert capacity(at_720, 5000).gpus_peak == 22  # same minutes in fewer hours
    from voxhost.planner.report import render_report

    assert "Total, on demand, 720 h month" in render_report(PlanInputs())


def test_spot_share_is_what_the_stack_runs():
    """One instance on demand, then half of the rest: the stack's instances distribution."""
    import sys
    from pathlib import Path

    fleet = PlanInputs().fleet
    assert [fleet.spot_share(n) for n in (1, 2, 3, 21)] == [0.0, 0.25, pytest.approx(1 / 3), pytest.approx(10 / 21)]
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy" / "aws"))
    from voxhost_stack.config import StackConfig

    stack = StackConfig()
    assert (fleet.on_demand_base, fleet.on_demand_percent_above_base) == \
        (stack.on_demand_base, stack.on_demand_percent_above_base)
    assert PlanInputs().stack_max_tasks == stack.max_tasks


def test_summary_fits_80_columns():
    from rich.console import Console
    from rich.table import Table

    from voxhost.planner.report import summary_rows

    tiers = plan(PlanInputs())
    table = Table("", *[f"{t.players:,} players" for t in tiers])
    for row in summary_rows(tiers):
        table.add_row(*row)
    console = Console(width=80, record=True, color_system=None)
    console.print(table)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "$110,300" in text and "21 (GPU)" in text


def test_measured_throughput_wins_over_published():
    inputs = PlanInputs.model_validate({"throughput": [
        {"model": "large-v3-turbo", "kind": "stt", "gpu": "t4", "rtf": 0.5, "streams": 3, "source": "measured"}]})
    row = inputs.throughput_for("stt", "large-v3-turbo")
    assert (row.source, row.capacity) == ("measured", 3)
    assert Throughput(model="x", kind="tts", gpu="T4", rtf=0.25, source="s").capacity == 4


def test_unknown_gpu_is_a_clear_error():
    inputs = PlanInputs.model_validate({"fleet": {"instance_type": "g5.xlarge"}})
    with pytest.raises(ValueError, match="no stt throughput for large-v3-turbo on A10G"):
        capacity(inputs, 50)


def test_every_stack_instance_type_is_priced():
    """The stack mixes g4dn, g5 and g6: each has its own price and vCPUs, and the cost header prices each."""
    from voxhost.ops.cost import INSTANCE_VCPUS, ComputeCost

    for instance in ("g4dn.xlarge", "g5.xlarge", "g6.xlarge"):
        fleet = PlanInputs.model_validate({"fleet": {"instance_type": instance}}).fleet
        assert fleet.hourly == INSTANCE_PRICES_PER_HOUR[instance] == ComputeCost(instance).hourly
        assert fleet.vcpus == INSTANCE_VCPUS[instance] == 4
    assert len({INSTANCE_PRICES_PER_HOUR[t] for t in ("g4dn.xlarge", "g5.xlarge", "g6.xlarge")}) == 3


def test_cost_header_prices_the_type_the_task_runs_on():
    """The stack sets VOXHOST_INSTANCE_TYPE=auto: a task on a g5 must not be priced as a g4dn."""
    from voxhost.ops.cost import instance_type_for_gpu, resolve_instance_type

    assert [instance_type_for_gpu(n) for n in ("Tesla T4", "NVIDIA A10G", "NVIDIA L4", "NVIDIA H200")] == \
        ["g4dn.xlarge", "g5.xlarge", "g6.xlarge", None]
    assert resolve_instance_type("auto", detect=lambda: "NVIDIA A10G") == "g5.xlarge"
    assert resolve_instance_type("auto", detect=lambda: None) == "g4dn.xlarge"  # no GPU: the design's type
    assert resolve_instance_type("g6.xlarge", detect=lambda: "Tesla T4") == "g6.xlarge"  # explicit wins


def test_self_hosted_cost_and_break_even_by_hand():
    inputs = PlanInputs.model_validate({"one_time_usd": {50: 1000, 500: 1, 5000: 1}})
    t = tier(inputs, 500)  # 3 instances: 1 on demand, then 1 of the other 2 on spot
    assert t.self_hosted.lines["GPU instances"] == pytest.approx(3 * 730 * 0.526)
    assert t.self_hosted.spot_mix == pytest.approx(t.self_hosted.on_demand - 3 * 730 * 0.526 * (1 / 3) * 0.6)
    t = tier(inputs, 50)
    saved = t.cloud - t.self_hosted.on_demand
    assert t.break_even_months(t.self_hosted.on_demand) == pytest.approx(1000 / saved)
    assert t.tco_self(t.self_hosted.on_demand) == pytest.approx(1000 + 36 * t.self_hosted.on_demand)
    tiny = tier(PlanInputs(one_time_usd=1000), 5)  # 5 players: a whole GPU costs more than the cloud bill
    assert tiny.break_even_months(tiny.self_hosted.on_demand) is None


def test_blended_hourly():
    assert blended_hourly(1.0, spot_share=0.5, spot_discount=0.6) == pytest.approx(0.7)
    assert blended_hourly(1.0, reserved_share=1.0, reserved_discount=0.37) == pytest.approx(0.63)
    with pytest.raises(ValueError):
        blended_hourly(1.0, spot_share=0.8, reserved_share=0.5)


def test_design_claims_checked():
    checks = {c.players: c for c in check_claims(PlanInputs())}
    assert {n: c.claimed_gpus for n, c in checks.items()} == {50: 1, 500: 3, 5000: 10}
    # It holds at 50 and 500 players and fails at 5,000.
    assert {n: c.needed_gpus for n, c in checks.items()} == {50: 1, 500: 3, 5000: 21}
    # Its own tables' 57-96% savings follow from pricing its claimed GPUs.
    assert round(checks[500].claimed_savings_pct) == 88 and round(checks[5000].claimed_savings_pct) == 96
    # Break-even months x its own savings ($632, $9,663, $105,751): the one-time costs it implies...
    assert {n: round(c.implied_one_time, 1) for n, c in checks.items()} == \
        {50: 1453.6, 500: 10629.3, 5000: 42300.4}
    # ...which give its break-even months back, exactly.
    assert {n: c.break_even_from_implied for n, c in checks.items()} == \
        {50: pytest.approx(2.3), 500: pytest.approx(1.1), 5000: pytest.approx(0.4)}
    # The default one-time cost is that implied one.
    assert PlanInputs().one_time(500) == pytest.approx(10629.3)


def test_bench_decodes_with_the_stt_services_defaults(english):
    """`voxhost bench` measures what the server does: its options are the service's."""
    from voxhost.ops.settings import Settings
    from voxhost.planner.bench import bench_options
    from voxhost.stt.service import options_from

    settings = Settings(stt_beam_size=2, stt_vad_filter=False)
    clips = english[:2]
    assert bench_options(settings, clips) == [options_from(settings, language=c.lang) for c in clips]
    assert {(o.beam_size, o.vad_filter) for o in bench_options(settings, clips)} == {(2, False)}


def test_capacity_results_become_the_plans_cpu_figures(repo_root, tmp_path):
    """bench/capacity.py's measured stages (simulated GPU) -> the `cpu:` section the planner reads."""
    import json
    import statistics

    import yaml

    from voxhost.planner.bench import cpu_from_capacity, to_plan_yaml

    stages = json.loads((repo_root / "bench/results/capacity_unpinned.json").read_text())
    cpu = cpu_from_capacity(stages)
    # Only this tree's unpinned stages: not the --baseline run beside it, never a pinned core, and
    # none in which sessions failed (clients that fell behind measure less than the work).
    failed = {**next(s for s in stages if s["kind"] == "live"), "side": "this tree", "live_errors": 3,
              "cpu_s_per_player_minute": 0.001}
    stages = [*stages, failed]
    ours = [s for s in stages if s["side"] == "this tree" and s["pinned"] is None and not s.get("live_errors")]
    live = [s["cpu_s_per_player_minute"] / 60 for s in ours if s["kind"] == "live"]
    rest = [s["cpu_ms_per_request"] / 1000 for s in ours if s["kind"] == "rest"]
    assert live and rest and len(ours) < len(stages)
    assert cpu["vcpu_per_live_stream"] == pytest.approx(statistics.median(live), abs=1e-5)
    assert cpu["cpu_s_per_rest_request"] == pytest.approx(statistics.median(rest), abs=1e-5)
    assert cpu["source"].startswith("measured: bench/capacity.py (simulated GPU, unpinned)")
    with pytest.raises(ValueError, match="unpinned"):  # the old pinned-core stages no longer count
        cpu_from_capacity(json.loads((repo_root / "bench/results/capacity.json").read_text()))
    out = tmp_path / "cpu.yaml"
    out.write_text(to_plan_yaml("cpu", [], [], cpu))
    inputs = load_inputs([repo_root / EXAMPLE, out])
    assert inputs.cpu.vcpu_per_live_stream == cpu["vcpu_per_live_stream"]
    assert inputs.cpu.target_utilisation == 0.7  # the rest of the section stays as given
    assert yaml.safe_load(out.read_text())["throughput"] == []
    with pytest.raises(ValueError, match="no unpinned live or rest"):
        cpu_from_capacity([s for s in stages if s["kind"] == "tts"])
