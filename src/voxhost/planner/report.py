"""Markdown report: the inputs, then the design document's tables, then the checks."""

from __future__ import annotations

from collections.abc import Callable

from voxhost.planner.inputs import PlanInputs
from voxhost.planner.model import Tier, check_claims, cloud_cost, cpu_per_unit, plan, tts_on_cpu


def usd(value: float) -> str:
    return f"${value:,.0f}" if abs(value) >= 100 else f"${value:,.2f}"




def months(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def dollars(value: float) -> str:
    """Whole dollars, as the design document prints its tables."""
    return f"${value:,.0f}"


def _inputs_section(inputs: PlanInputs, tiers: list[Tier]) -> str:
    u, c, f, p = inputs.usage, inputs.cloud, inputs.fleet, inputs.platform
    stt = inputs.throughput_for("stt", inputs.stt_model)
    tts, tts_cpu = tts_on_cpu(inputs)
    per_request, per_char = cpu_per_unit(inputs)
    tts_row = (f"CPU: RTF {tts.rtf:g} = {tts.rtf / u.chars_per_audio_second * 1000:.2f} CPU-ms per character "
               f"({tts.source})" if tts_cpu else
               f"RTF {tts.rtf:g}, {tts.capacity:.1f} real-time streams/GPU ({tts.source})")
    rows = [
        ["STT minutes per player per month (given)", f"{u.stt_minutes_per_player:,.0f}"],
        ["TTS characters per player per month (given)", f"{u.tts_chars_per_player:,.0f}"],
        ["Share of STT minutes as live sessions", f"{u.live_share:.0%}"],
        ["Peak-to-average load", f"{u.peak_to_average:g}x"],
        ["Share of STT audio that is speech (after VAD)", f"{u.speech_share:.0%}"],
        ["Characters per second of synthesised speech", f"{u.chars_per_audio_second:g}"],
        [f"Cloud STT: {c.stt_model}", f"${c.stt_per_minute:g} per minute"],
        [f"Cloud TTS: {c.tts_model}", f"${c.tts_per_million_chars:g} per 1M characters"],
        [f"Instance: {f.instance_type} ({f.gpu}, {f.vcpus} vCPU)", f"${f.hourly:g}/h on demand"],
        ["Hours per month", f"{inputs.hours_per_month:g} (AWS bills 730; the design document prices 720)"],
        ["Spot mix (the stack's)", f"{f.on_demand_base} on demand, then {f.on_demand_percent_above_base:g}% "
         f"on demand: spot share {', '.join(f'{t.self_hosted.spot_share:.0%}' for t in tiers)}"],
        ["Spot discount, reserved discount", f"{f.spot_discount:.0%}, {f.reserved_discount:.0%}"],
        ["Target GPU / CPU utilisation at the peak",
         f"{f.target_utilisation:.0%} / {inputs.cpu.target_utilisation:.0%}"],
        ["CPU per live session", f"{inputs.cpu.vcpu_per_live_stream:g} vCPU"],
        ["CPU per REST STT request, per TTS character",
         f"{per_request * 1000:.1f} ms per ~{u.rest_clip_seconds:g} s upload, {per_char * 1000:.2f} ms per character "
         f"({inputs.cpu.source}; a measured throughput row wins)"],
        [f"Memory per instance ({f.memory_gb:g} GB)",
         f"{inputs.memory.workers} worker(s) x {inputs.memory.server_gb:g} GB of models, "
         f"{inputs.memory.reserved_gb:g} GB reserved, {inputs.memory.gb_per_live_stream * 1000:g} MB per live session"],
        [f"STT model: {stt.model} on {stt.gpu}",
         f"RTF {stt.rtf:g}, {stt.capacity:.1f} real-time streams/GPU ({stt.source})"],
        [f"TTS model: {tts.model} on {tts.gpu}", tts_row],
        ["Egress", f"{p.egress} ({p.egress_gb_per_month:g} GB/month)"],
        ["One-time cost (migration, engineering)",
         ", ".join(f"{usd(inputs.one_time(n))} at {n:,}" for n in inputs.players)],
        ["Total cost of ownership horizon", f"{inputs.tco_months} months"],
    ]
    return "## Inputs\n\n" + _table(["input", "value"], rows)


def _money_tables(inputs: PlanInputs, tiers: list[Tier]) -> str:
    head = [f"{t.players:,} players" for t in tiers]
    d = inputs.design

    def doc(values: dict[int, float], t: Tier) -> str:
        return dollars(values[t.players]) if t.players in values else "-"

    cloud = _table(["Cloud API (monthly)", *head], [
        ["STT", *[dollars(t.cloud_stt) for t in tiers]],
        ["STT, design document", *[doc(d.cloud_stt, t) for t in tiers]],
        ["TTS", *[dollars(t.cloud_tts) for t in tiers]],
        ["TTS, design document", *[doc(d.cloud_tts, t) for t in tiers]],
        ["**Total**", *[f"**{dollars(t.cloud)}**" for t in tiers]],
        ["Total, design document",
         *[dollars(d.cloud_stt[t.players] + d.cloud_tts[t.players])
           if t.players in d.cloud_stt and t.players in d.cloud_tts else "-" for t in tiers]],
    ])
    cap = _table(["Capacity at the peak", *head], [
        ["STT load (GPUs at 100%)", *[f"{t.capacity.stt_gpu_load_peak:.2f}" for t in tiers]],
        ["TTS load (GPUs at 100%)", *[f"{t.capacity.tts_gpu_load_peak:.2f}" for t in tiers]],
        ["CPU load (vCPUs at 100%)", *[f"{t.capacity.vcpu_peak:.2f}" for t in tiers]],
        ["Instances the GPUs need", *[str(t.capacity.gpu_bound) for t in tiers]],
        ["Instances the CPUs need", *[str(t.capacity.cpu_bound) for t in tiers]],
        ["Live sessions open", *[f"{t.capacity.live_streams_peak:.0f}" for t in tiers]],
        ["Instances the memory needs", *[str(t.capacity.memory_bound) for t in tiers]],
        ["**GPU instances at the peak**", *[f"**{t.capacity.gpus_peak}** ({t.capacity.limited_by})" for t in tiers]],
        ["GPU instances for the average load", *[str(t.capacity.gpus_average) for t in tiers]],
    ])
    other_h = 720.0 if inputs.hours_per_month != 720.0 else 730.0
    other = plan(inputs.model_copy(update={"hours_per_month": other_h}))
    lines = list(tiers[0].self_hosted.lines)
    selfhost = _table(["Self-hosted (monthly, peak fleet all month)", *head], [
        *[[name, *[usd(t.self_hosted.lines[name]) for t in tiers]] for name in lines],
        ["**Total, on demand**", *[f"**{usd(t.self_hosted.on_demand)}**" for t in tiers]],
        [f"Total, on demand, {other_h:g} h month", *[usd(t.self_hosted.on_demand) for t in other]],
        ["Total, spot mix", *[usd(t.self_hosted.spot_mix) for t in tiers]],
        ["Total, reserved", *[usd(t.self_hosted.reserved) for t in tiers]],
    ])
    summary = _table(["Savings and payback", *head], [
        ["Savings per month, on demand", *[usd(t.savings(t.self_hosted.on_demand)) for t in tiers]],
        ["Savings %, on demand", *[f"{t.savings_pct(t.self_hosted.on_demand):.0f}%" for t in tiers]],
        ["Savings %, spot mix", *[f"{t.savings_pct(t.self_hosted.spot_mix):.0f}%" for t in tiers]],
        ["One-time cost", *[usd(t.one_time) for t in tiers]],
        ["Break-even months, on demand", *[months(t.break_even_months(t.self_hosted.on_demand)) for t in tiers]],
        ["Break-even months, spot mix", *[months(t.break_even_months(t.self_hosted.spot_mix)) for t in tiers]],
        [f"{tiers[0].tco_months}-month TCO, cloud API", *[usd(t.tco_cloud()) for t in tiers]],
        [f"{tiers[0].tco_months}-month TCO, self-hosted on demand",
         *[usd(t.tco_self(t.self_hosted.on_demand)) for t in tiers]],
        [f"{tiers[0].tco_months}-month TCO, self-hosted spot mix",
         *[usd(t.tco_self(t.self_hosted.spot_mix)) for t in tiers]],
    ])
    return "\n\n".join(["## Cloud API cost", cloud, "## GPUs", cap, "## Self-hosted cost", selfhost,
                        "## Savings, break-even, total cost of ownership", summary])


def _claims_section(inputs: PlanInputs, tiers: list[Tier]) -> str:
    checks = check_claims(inputs)
    if not checks:
        return ""
    d = inputs.design
    rows = [[f"{c.players:,}", str(c.claimed_gpus), f"{c.needed_gpus} ({c.limited_by})",
             f"{c.claimed_savings_pct:.0f}%", months(c.claimed_break_even),
             usd(c.implied_one_time) if c.implied_one_time is not None else "-",
             months(c.break_even_from_implied), months(c.break_even_needed)]
            for c in checks]
    notes = []
    first, last = checks[0], checks[-1]
    if last.players > first.players:
        load_x = last.players / first.players
        gpu_x = last.claimed_gpus / first.claimed_gpus
        notes.append(
            f"- Load grows {load_x:,.0f}x from {first.players:,} to {last.players:,} players, but the claimed "
            f"GPUs grow {gpu_x:,.0f}x ({first.claimed_gpus} -> {last.claimed_gpus}). From the same inputs the "
            f"peak needs {first.needed_gpus} -> {last.needed_gpus} GPUs: the claimed fleet does not follow "
            "from the inputs."
        )
    notes.append(
        "- The claimed break-even months imply one-time costs the document never states "
        f"({', '.join(usd(c.implied_one_time) for c in checks if c.implied_one_time is not None)}: "
        "break-even months x its own monthly savings), yet its 3-year totals include no one-time cost. "
        "Here the one-time cost is an input (`one_time_usd`) and is included in the TCO."
    )
    lo, hi = min(c.claimed_savings_pct for c in checks), max(c.claimed_savings_pct for c in checks)
    notes.append(
        f"- Its summary says {d.summary_savings_pct[0]:.0f}-{d.summary_savings_pct[1]:.0f}% savings; its tables "
        f"say {d.table_savings_pct[0]:.0f}-{d.table_savings_pct[1]:.0f}% (these inputs, priced at the claimed "
        f"GPU counts, give {lo:.0f}-{hi:.0f}%). With the GPUs the load needs, see the savings table above."
    )
    return "\n\n".join([
        "## The design document's claims, checked",
        _table(["players", "claimed GPUs", "GPUs needed (peak, limit)", "savings at claimed GPUs",
                "claimed break-even (months)", "implied one-time cost", "break-even from it",
                "break-even, GPUs needed"], rows),
        "\n".join(notes),
    ])


def max_tasks_warnings(inputs: PlanInputs, tiers: list[Tier]) -> list[str]:
    """The stack's `max_tasks` must cover the plan's peak, or autoscaling stops short."""
    return [f"{t.players:,} players need {t.capacity.gpus_peak} tasks at the peak, above the stack's "
            f"max_tasks={inputs.stack_max_tasks}: deploy with -c max_tasks={t.capacity.gpus_peak}"
            for t in tiers if t.capacity.gpus_peak > inputs.stack_max_tasks]


def _stack_section(inputs: PlanInputs, tiers: list[Tier]) -> str:
    rows = [[f"{t.players:,}", str(t.capacity.gpus_peak),
             f"`make deploy CDK_ARGS='-c max_tasks={t.capacity.gpus_peak}'`"] for t in tiers]
    warnings = max_tasks_warnings(inputs, tiers)
    text = [f"## The stack's max_tasks\n\nThe plan's peak is the stack's `max_tasks` (the group may hold "
            f"twice that, for deploys). Assumed deployed: max_tasks={inputs.stack_max_tasks} "
            "(`stack_max_tasks`).", _table(["players", "max_tasks", "deploy"], rows)]
    if warnings:
        text.append("\n".join(f"- **Warning:** {w}" for w in warnings))
    return "\n\n".join(text)


def _alternatives(inputs: PlanInputs, tiers: list[Tier]) -> str:
    rows = []
    for stt_model in ("whisper-1", "gpt-4o-mini-transcribe"):
        for tts_model in ("tts-1", "tts-1-hd"):
            variant = inputs.model_copy(update={"cloud": inputs.cloud.model_copy(
                update={"stt_model": stt_model, "tts_model": tts_model})})
            if f"{stt_model}_per_minute" not in variant.cloud.prices or \
                    f"{tts_model}_per_million_chars" not in variant.cloud.prices:
                continue
            rows.append([f"{stt_model} + {tts_model}",
                         *[usd(sum(cloud_cost(variant, n))) for n in inputs.players]])
    return "## Other cloud API choices (monthly)\n\n" + _table(
        ["cloud models", *[f"{n:,} players" for n in inputs.players]], rows)


def summary_rows(tiers: list[Tier]) -> list[list[str]]:
    """The terminal summary, transposed as plan.md is: one row per figure, one column
    per player count, so it stays readable at 80 columns."""
    months_ = tiers[0].tco_months
    rows = [
        ("cloud API /mo", lambda t: dollars(t.cloud)),
        ("GPU instances at peak", lambda t: f"{t.capacity.gpus_peak} ({t.capacity.limited_by})"),
        ("self-hosted /mo, on demand", lambda t: dollars(t.self_hosted.on_demand)),
        ("self-hosted /mo, spot mix", lambda t: dollars(t.self_hosted.spot_mix)),
        ("savings, on demand", lambda t: f"{t.savings_pct(t.self_hosted.on_demand):.0f}%"),
        ("break-even (months)", lambda t: months(t.break_even_months(t.self_hosted.on_demand))),
        (f"{months_}-mo TCO, cloud", lambda t: dollars(t.tco_cloud())),
        (f"{months_}-mo TCO, self-hosted", lambda t: dollars(t.tco_self(t.self_hosted.on_demand))),
    ]
    return [[label, *[cell(t) for t in tiers]] for label, cell in rows]


# Each section renders from the inputs and the tiers; a planner module adds its
# own table by appending to this list (or passing `sections`).
Section = Callable[[PlanInputs, list[Tier]], str]
def _layouts_section(inputs: PlanInputs, tiers: list[Tier]) -> str:
    from voxhost.planner.layouts import cheapest, compare

    rows = []
    for players, costs in compare(inputs).items():
        best = cheapest(costs)
        for c in costs:
            pools = ", ".join(f"{n} {pool}" for pool, n in c.instances.items())
            rows.append([f"{players:,}", c.name + (" **(cheapest)**" if c is best else ""), pools,
                         dollars(c.on_demand), dollars(c.spot_mix),
                         f"{dollars(c.reserved_base)} ({c.reserved_instances} reserved)"])
    lay = inputs.layout
    return "\n".join([
        "## Layouts: combined or dedicated pools, one or two regions, CDN",
        "",
        f"Each pool at least {lay.min_tasks_per_pool} tasks (the stack's floor, two AZs); dedicated puts TTS on "
        f"{lay.tts_instance_type} (CPU engines); each region a whole stack sized for its share at the same peak, "
        f"plus Route 53 latency records and a health check per region; CDN: {lay.cdn_share:.0%} of the TTS "
        "characters as published lines from CloudFront. Reserved base: the instances the average load keeps "
        "running all month on 1-year reserved prices, the rest at the stack's spot mix (planner/layouts.py).",
        "",
        _table(["players", "layout", "instances at the peak", "on demand / month", "spot mix / month",
                "reserved base + spot / month"], rows),
        "",
    ])


SECTIONS: list[Section] = [_inputs_section, _money_tables, _claims_section, _stack_section, _alternatives,
                           _layouts_section]


def render_report(inputs: PlanInputs, plot_name: str | None = None,
                  sections: list[Section] | None = None) -> str:
    tiers = plan(inputs)
    parts = [
        "# voxhost cost and capacity plan",
        "Generated by `voxhost plan`. Prices: src/voxhost/ops/cost.py unless the plan file overrides them. "
        "Self-hosted cost prices the GPU instances the peak needs (GPU, CPU or memory, whichever binds), running all "
        "month (autoscaling only lowers it, towards the average-load count).",
        *[section(inputs, tiers) for section in (SECTIONS if sections is None else sections)],
    ]
    if plot_name:
        parts.append(f"## Monthly cost against players\n\n![monthly cost against players]({plot_name})")
    return "\n\n".join(p for p in parts if p) + "\n"
